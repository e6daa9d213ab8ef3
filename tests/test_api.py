"""The Python API, run exactly as the README shows it; the losses import on their own."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from huggingface_hub import ModelCard

import seppo

ROOT = Path(__file__).parents[1]


def readme_example() -> str:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("### From Python"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_readme_example_runs(tmp_path, monkeypatch, capsys):
    shutil.copytree(ROOT / "configs", tmp_path / "configs")
    monkeypatch.chdir(tmp_path)  # the example's relative paths: configs/, runs/
    exec(compile(readme_example(), "README.md", "exec"), {})
    run = tmp_path / "runs" / "api-example"
    assert "| seppo |" in capsys.readouterr().out
    assert (run / "final" / "unet").is_dir() and (run / "report.html").is_file()
    assert "| seppo |" in ModelCard.load(run / "final" / "README.md").text


def test_the_api_names():
    assert set(seppo.__all__) >= {"load_config", "align", "evaluate_models", "write_report", "__version__"}
    for name in seppo.__all__:
        assert getattr(seppo, name) is not None


def test_the_losses_import_alone():
    code = ("import sys; from seppo.losses import seppo, LOSSES; "
            "print(sorted(m for m in sys.modules if m.startswith('seppo')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['seppo', 'seppo.losses']"
