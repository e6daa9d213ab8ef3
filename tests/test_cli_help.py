"""The CLI explains itself: every option of every command has a help line showing its default."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from seppo import __version__
from seppo.cli import build_parser

PARSER = build_parser()
COMMANDS = next(a for a in PARSER._actions if isinstance(a, argparse._SubParsersAction)).choices


def test_every_command_is_listed():
    assert set(COMMANDS) == {"pretrain", "train", "sample", "eval", "demo", "report", "benchmark", "ablate",
                             "diagnose-flipper"}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_help_describes_every_option_with_its_default(command, capsys):
    with pytest.raises(SystemExit) as e:
        PARSER.parse_args([command, "--help"])
    assert e.value.code == 0
    text = "".join(capsys.readouterr().out.split())  # argparse wraps lines, also at hyphens: compare without spaces
    for action in COMMANDS[command]._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        assert action.help, f"seppo {command}: {action.dest} has no help"
        if action.option_strings:  # an option: its line ends with its default
            line = " ".join(PARSER._subparsers._group_actions[0].choices[command].formatter_class("x")
                            ._get_help_string(action).split())
            assert "(default" in line or "required" in line, f"seppo {command} {action.option_strings[0]}: {line}"
            shown = line.replace("%(default)s", str(action.default))
            assert "".join(shown.split()) in text, shown
        else:
            assert "".join(action.help.split()) in text, action.help


def test_the_process_answers_help_and_version():
    help_ = subprocess.run([sys.executable, "-m", "seppo", "eval", "--help"], capture_output=True, text=True, timeout=300)
    assert help_.returncode == 0, help_.stderr
    flat = " ".join(help_.stdout.split())
    for option in ("--seeds", "--per-prompt", "--steps", "--guidance"):
        assert option in flat
    assert "samples per prompt and seed (default: 8)" in flat and "(default: '0,1,2')" in flat
    version = subprocess.run([sys.executable, "-m", "seppo", "--version"], capture_output=True, text=True, timeout=300)
    assert version.returncode == 0 and version.stdout.strip() == f"seppo {__version__}"
