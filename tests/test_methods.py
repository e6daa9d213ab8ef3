"""The method table resolves into the config: what ran is what `RUN/config.yaml` says, and a
config that gives a method's fixed field another value is refused, even the default."""

import pytest
import yaml

from seppo.config import load_config
from seppo.errors import ConfigError
from seppo.methods import METHODS, OPEN


def write(tmp_path, **fields):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(fields))
    return path


@pytest.mark.parametrize("method, flipper, reference, redraw", [
    ("seppo", "sign", "uniform", "iteration"),
    ("sft", None, None, None),
    ("dpo", None, "initial", "iteration"),
    ("spin", "none", "latest", "iteration"),
    ("ditto", "none", "initial", "iteration"),
])
def test_the_config_records_what_the_method_runs(tmp_path, method, flipper, reference, redraw):
    cfg = load_config(write(tmp_path, method=method))
    assert (cfg.flipper, cfg.reference, cfg.redraw) == (flipper, reference, redraw)
    assert cfg.needs_pairs == (method == "dpo")


def test_a_preset_given_its_default_is_still_a_conflict(tmp_path):
    # `flipper: sign` is the dataclass default, and spin fixes `none`: refused, not turned into none.
    with pytest.raises(ConfigError, match="config key flipper: method spin is a preset with flipper none, got 'sign'"):
        load_config(write(tmp_path, method="spin", flipper="sign"))
    with pytest.raises(ConfigError, match="config key reference: method dpo is a preset with reference initial"):
        load_config(write(tmp_path, method="dpo", reference="uniform"))
    with pytest.raises(ConfigError, match="config key redraw: method sft uses no reference model"):
        load_config(None, ["method=sft", "redraw=iteration"])
    with pytest.raises(ConfigError, match="config key flipper: method dpo has no flipper"):
        load_config(None, ["method=dpo", "flipper=none"])


def test_the_fixed_value_itself_and_open_fields_are_accepted(tmp_path):
    assert load_config(write(tmp_path, method="spin", flipper="none", reference="latest")).flipper == "none"
    assert load_config(None, ["method=sft", "flipper=null", "reference=~"]).flipper is None
    assert load_config(None, ["method=seppo", "flipper=indicator", "reference=latest"]).reference == "latest"
    with pytest.raises(ConfigError, match="config key flipper: None is not one of"):
        load_config(None, ["flipper=null"])  # seppo leaves the flipper open: null is not a flipper


def test_a_saved_config_loads_back_unchanged(tmp_path):
    """`RUN/config.yaml` of every method loads again (resume, eval): its nulls are the method's."""
    from seppo.config import save_config, to_dict

    for method in METHODS:
        cfg = load_config(None, [f"method={method}"])
        save_config(cfg, tmp_path / f"{method}.yaml")
        assert to_dict(load_config(tmp_path / f"{method}.yaml")) == to_dict(cfg)


def test_an_old_run_config_reads_as_what_ran(tmp_path):
    """A run directory written before the method table said `reference: uniform` for DPO; read
    without validation (as eval and report read runs), it resolves to what ran: θ_0."""
    old = write(tmp_path, method="dpo", flipper="sign", reference="uniform")
    cfg = load_config(old, check=False)
    assert (cfg.reference, cfg.flipper) == ("initial", None)


def test_open_fields_are_marked_open():
    assert METHODS["seppo"].reference is OPEN and METHODS["seppo"].flipper is OPEN
    assert METHODS["sft"].fixed() == {"reference": None, "flipper": None, "redraw": None}
