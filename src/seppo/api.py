"""The Python API: what `seppo train`, `seppo eval` and `seppo report` do, as functions.

    import seppo

    cfg = seppo.load_config("configs/digits-seppo.yaml", ["train.iterations=2", "output_dir=runs/api"])
    run = seppo.align(cfg)              # builds the embedded world where cfg names it, trains, exports run/final
    result = seppo.evaluate_models([run], prompts="digits", judges=["digit"], per_prompt=2)
    print(result.table_markdown())
    seppo.write_report([run], "report.html", eval_result=result)

`seppo/__init__.py` loads these names on first use, so `from seppo.losses import seppo`
still imports only the losses.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from seppo.card import add_evaluation, is_seppo_card
from seppo.config import Config, load_config
from seppo.embedded.world import ensure_world
from seppo.evaluate import EvalResult, evaluate
from seppo.prompts import load_prompts
from seppo.run_dir import RunDir
from seppo.train import train


def align(config: Config | str | Path, overrides: Sequence[str] = (), *, progress: bool | None = None) -> Path:
    """Train one run (`seppo train`) and return its directory; its model is `RUN/final`.

    `config` is a loaded `Config` or a YAML path (then `overrides`, `key.sub=value`, apply).
    What the config names from the embedded world (`embedded:digits`, `data.source:
    embedded`) is built first, once per machine, and cached under $SEPPO_CACHE; under a
    multi-process launch the first process of each machine builds it and the others wait
    for it when the loop sets up.
    """
    cfg = config if isinstance(config, Config) else load_config(config, list(overrides))
    RunDir(cfg.output_dir).refuse_if_taken(cfg)  # before building anything
    show = cfg.log.progress if progress is None else progress
    if int(os.environ.get("LOCAL_RANK", "0")) == 0:
        ensure_world(cfg, progress=show)
    return train(cfg, progress=progress)


def evaluate_models(models: Sequence[str | Path], *, prompts: str | Sequence[str] = "digits",
                    judges: Sequence[str] = ("digit",), seeds: Sequence[int] = (0,), per_prompt: int = 8,
                    steps: int = 20, guidance: float = 3.0, out: str | Path | None = None,
                    names: Sequence[str] | None = None, update_cards: bool = True, **options) -> EvalResult:
    """Score `models` (run directories, diffusers folders, `BASE+LORA`) with `judges` on the
    same noise keys (`seppo eval`); return the `EvalResult` (`.table_markdown()`, `.summary`).

    `prompts` is a prompt set's name (`digits`, `moving-digits`, `pickapic:PATH`, a text
    file: seppo.prompts) or a list of prompts. With `update_cards`, the Evaluation section of
    each evaluated run's model card (`RUN/final/README.md`) becomes this table. `options`
    go to `seppo.evaluate.evaluate` (judge_paths, batch_size, unit, samples, ...).
    """
    label = prompts if isinstance(prompts, str) else f"{len(prompts)} prompts"
    prompt_list = load_prompts(prompts) if isinstance(prompts, str) else list(prompts)
    out = Path(out) if out is not None else None
    result = evaluate([str(m) for m in models], prompts=prompt_list, judges=list(judges), seeds=list(seeds),
                      per_prompt=per_prompt, steps=steps, guidance=guidance, out=out,
                      names=list(names) if names is not None else None, **options)
    if update_cards:
        record_in_cards(result, prompts=label)
    return result


def record_in_cards(result: EvalResult, *, prompts: str) -> list[Path]:
    """Write `result`'s table into the model card of every evaluated model that has a seppo card
    (a run directory's `final/`, or an export folder itself); return the cards written."""
    written = []
    table = result.table_markdown()
    for name, spec in result.settings["models"].items():
        run = RunDir.of(spec)
        folder = run.final if run is not None else Path(spec.partition("+")[0])
        if is_seppo_card(folder):
            written.append(add_evaluation(folder, name=name, table=table, summary=result.summary,
                                          prompts=f"{prompts} ({result.settings['prompts']} prompts)"))
    return written
