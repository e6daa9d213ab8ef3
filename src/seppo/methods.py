"""What each method is, in one table (DESIGN.md §1, "Baselines in the same loop").

A method fixes where the second half of each batch comes from, which loss it takes, and,
where it has no choice, the reference strategy and the flipper:

| method  | second half of the batch       | loss    | reference           | flipper             |
|---------|--------------------------------|---------|---------------------|---------------------|
| `seppo` | samples of the drawn reference | `seppo` | the config's choice | the config's choice |
| `sft`   | none                           | `sft`   | none (null)         | none (null)         |
| `dpo`   | the data's losers              | `dpo`   | `initial` (θ_0)     | none (null)         |
| `spin`  | samples of the drawn reference | `seppo` | `latest`            | `none` (s = 1)      |
| `ditto` | samples of the drawn reference | `seppo` | `initial`           | `none` (s = 1)      |

`load_config` writes the fixed values into the config, so `RUN/config.yaml` records what ran.
A field that does not apply is recorded as null (YAML `~`): SFT has no reference model, so
its `reference`, `flipper` and `redraw` are null, and DPO's `flipper` is null. Null is never
the flipper `none`, which is the SPIN/DITTO rule s = 1. A config that gives a fixed field any
other value, in the file or on the command line, default or not, is an error naming the field.

This module is data only: the loss is named here and looked up in `seppo.losses.LOSSES`, so
`seppo.config` can resolve methods without importing a loss.
"""

from __future__ import annotations

from dataclasses import dataclass

# Values the config may choose where a method leaves the choice open.
FLIPPERS = ("sign", "indicator", "none")  # implemented by seppo.losses.sign_of_gap
REFERENCES = ("uniform", "initial", "latest")  # implemented by seppo.pool.ReferencePool.draw
REDRAWS = ("iteration", "update")


class _Open:
    """Marks a field the method leaves to the config."""

    def __repr__(self) -> str:
        return "OPEN"


OPEN = _Open()


@dataclass(frozen=True)
class Method:
    second_half: str | None  # "reference" (samples of π_ref), "loser" (the data's), or None (winners only)
    loss: str  # a key of seppo.losses.LOSSES
    reference: str | None | _Open  # a fixed strategy, None (no reference model), or OPEN
    flipper: str | None | _Open  # a fixed flipper, None (no flipper), or OPEN

    @property
    def needs_pairs(self) -> bool:
        return self.second_half == "loser"

    def fixed(self) -> dict[str, str | None]:
        """The config fields this method decides, with their values. Without a reference
        model there is nothing to redraw either."""
        fixed = {k: v for k, v in (("reference", self.reference), ("flipper", self.flipper)) if v is not OPEN}
        if self.reference is None:
            fixed["redraw"] = None
        return fixed


METHODS: dict[str, Method] = {
    "seppo": Method(second_half="reference", loss="seppo", reference=OPEN, flipper=OPEN),
    "sft": Method(second_half=None, loss="sft", reference=None, flipper=None),
    "dpo": Method(second_half="loser", loss="dpo", reference="initial", flipper=None),
    "spin": Method(second_half="reference", loss="seppo", reference="latest", flipper="none"),
    "ditto": Method(second_half="reference", loss="seppo", reference="initial", flipper="none"),
}

# The benchmark's arms (`seppo benchmark`): the methods and SePPO's ablations.
# arm -> (the tuned method whose selected settings it takes, its own overrides); None: the base.
ARMS: dict[str, tuple[str, list[str]] | None] = {
    "base": None,
    "sft": ("sft", ["method=sft"]),
    "dpo": ("dpo", ["method=dpo"]),
    "seppo": ("seppo", ["method=seppo"]),
    "seppo-indicator": ("seppo", ["method=seppo", "flipper=indicator"]),
    "seppo-noflip": ("seppo", ["method=seppo", "flipper=none"]),
    "seppo-initial": ("seppo", ["method=seppo", "reference=initial"]),
    "seppo-latest": ("seppo", ["method=seppo", "reference=latest"]),
    "spin": ("seppo", ["method=spin"]),
    "ditto": ("seppo", ["method=ditto"]),
}
