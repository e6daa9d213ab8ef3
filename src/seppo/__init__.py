"""seppo: align diffusion models with human preference from winning examples only.

SePPO (Semi-Policy Preference Optimization, Zhang et al., arXiv 2410.05255) and the
baselines it is compared with (SFT, Diffusion-DPO, SPIN- and DITTO-style self-play),
all in one training loop. See docs/ and DESIGN.md for the algorithm and the architecture.

The Python API (README, "From Python"):

    from seppo import load_config, align, evaluate_models, write_report

Its names are loaded on first use (PEP 562, as diffusers and transformers load theirs), so
importing one module, `from seppo.losses import seppo`, loads only that module.
"""

import importlib

__version__ = "0.1.0"

# public name -> the module that defines it
_API = {
    "load_config": "seppo.config",
    "Config": "seppo.config",
    "align": "seppo.api",
    "evaluate_models": "seppo.api",
    "EvalResult": "seppo.evaluate",
    "write_report": "seppo.report",
}
__all__ = ["__version__", *_API]


def __getattr__(name: str):
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'seppo' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API))
