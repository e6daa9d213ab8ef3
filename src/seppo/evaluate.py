"""`seppo eval`: generate with shared noise keys, score with judges, summarise with intervals.

Pairing: image (seed s, prompt p, k) gets the noise key `eval_seeds(s, n)[k·P + p]` (P
prompts) in *every* model, so two models' images of the same (s, p, k) differ only by the
model, and comparisons are paired. Raising `per_prompt` keeps the earlier images unchanged.

Summary unit: one (prompt, seed), its k samples averaged first. The per-model mean comes
with a percentile-bootstrap 95% interval over these units, and each pair of models gets a
paired win rate over the same units (`seppo.stats.paired_win_rate`: bootstrap interval,
Wilcoxon and paired-t p-values).

| column in `scores`  | meaning                                         |
|---------------------|-------------------------------------------------|
| model               | the model's display name                        |
| prompt, prompt_idx  | the prompt and its index in the prompt set      |
| seed, k, key        | evaluation seed, sample number, the noise key   |
| <judge>             | one score per judge (higher is better)          |
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from seppo.embedded.digits import diversity as digit_diversity
from seppo.embedded.digits import from_pil, parse_digit
from seppo.errors import DataError
from seppo.judges.base import Judge
from seppo.judges.registry import load_judge
from seppo.models import eval_seeds, grid, load_for_sampling, sample
from seppo.run_dir import RunDir
from seppo.stats import bootstrap_ci, paired_win_rate

UNIT = ("prompt_idx", "seed")  # the bootstrap unit; samples k are averaged within it


def default_resolution(spec: str, backbone) -> int:
    """A run's `data.resolution`; otherwise the UNet's native size in pixels."""
    run = RunDir.of(spec)
    if run is not None:
        return run.config().data.resolution
    return int(backbone.unet.config.sample_size) * backbone.vae_scale_factor


# ---------------------------------------------------------------- scoring


def score_images(images: Sequence, prompts: Sequence[str], judges: Mapping[str, Judge] | Sequence[Judge]) -> dict[str, np.ndarray]:
    """One float array per judge, shape (len(images),); keys are the judges' names."""
    named = judges if isinstance(judges, Mapping) else {j.name: j for j in judges}
    return {name: np.asarray(judge.score(list(images), list(prompts)), dtype=np.float64) for name, judge in named.items()}


def summarize(scores: pd.DataFrame, judges: Sequence[str], *, by: str = "model", unit: Sequence[str] = UNIT,
              n_boot: int = 2000) -> tuple[list[dict], list[dict]]:
    """Per group (`by`) and judge: mean and bootstrap interval over units; per pair of groups:
    the paired win rate. Scores are averaged within (group, unit) first, over k and anything else."""
    per_unit = scores.groupby([by, *unit], sort=False)[list(judges)].mean()
    groups = list(dict.fromkeys(scores[by]))
    summary, pairs = [], []
    for judge in judges:
        table = per_unit[judge].unstack(by)[groups]  # (units, groups), rows aligned on the unit
        for g in groups:
            mean, lo, hi = bootstrap_ci(table[g].to_numpy(), n_boot=n_boot)
            summary.append({by: g, "judge": judge, "mean": mean, "lo": lo, "hi": hi, "n": int(table[g].size)})
        for a, b in itertools.combinations(groups, 2):
            pairs.append({"a": a, "b": b, "judge": judge,
                          **paired_win_rate(table[a].to_numpy(), table[b].to_numpy(), n_boot=n_boot)})
    return summary, pairs


# ---------------------------------------------------------------- result


@dataclass
class EvalResult:
    """Per-image scores, their summary and the settings that produced them."""

    scores: pd.DataFrame
    judges: list[str]
    summary: list[dict]
    pairs: list[dict]
    settings: dict
    diversity: dict[str, float] = field(default_factory=dict)
    scales: dict[str, str] = field(default_factory=dict)
    samples: dict[str, list] = field(default_factory=dict)  # model → kept pictures (`evaluate(samples=n)`)

    @property
    def models(self) -> list[str]:
        return list(dict.fromkeys(self.scores["model"]))

    def to_dict(self) -> dict:
        return {"settings": self.settings, "judges": self.judges, "scales": self.scales, "summary": self.summary,
                "pairs": self.pairs, "diversity": self.diversity}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)

    def table_markdown(self) -> str:
        """The summary table (mean [95% interval]) and the paired win-rate table, as markdown."""
        return summary_markdown(self.summary, self.pairs, self.judges, diversity=self.diversity, settings=self.settings)

    def write(self, out: Path) -> None:
        """`scores.parquet`, `eval.md` and `eval.json` under `out`."""
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        self.scores.to_parquet(out / "scores.parquet", index=False)
        (out / "eval.md").write_text(self.table_markdown())
        (out / "eval.json").write_text(self.to_json())

    @classmethod
    def read(cls, out: Path) -> EvalResult:
        """What `write` wrote to `out` (the kept pictures are not written)."""
        out = Path(out)
        missing = [n for n in ("scores.parquet", "eval.json") if not (out / n).is_file()]
        if missing:
            raise DataError(f"{out}: no {missing[0]} (not a folder written by seppo eval --out)")
        data = json.loads((out / "eval.json").read_text())
        return cls(scores=pd.read_parquet(out / "scores.parquet"), judges=data["judges"], summary=data["summary"],
                   pairs=data["pairs"], settings=data["settings"], diversity=data.get("diversity", {}),
                   scales=data.get("scales", {}))


def summary_markdown(summary: list[dict], pairs: list[dict], judges: Sequence[str], *, by: str = "model",
                     diversity: Mapping[str, float] | None = None, settings: Mapping | None = None,
                     extra: Mapping[str, Mapping[str, str]] | None = None) -> str:
    """Markdown tables; `extra` adds columns {column: {group: text}} (wall time, flip rate...)."""
    groups = list(dict.fromkeys(row[by] for row in summary))
    cell = {(row[by], row["judge"]): f"{row['mean']:.4g} [{row['lo']:.4g}, {row['hi']:.4g}]" for row in summary}
    columns = [*judges, *(["diversity"] if diversity else []), *(extra or {})]
    lines = []
    if settings:
        lines += ["Settings: " + ", ".join(f"{k}={v}" for k, v in settings.items() if not isinstance(v, (list, dict))), ""]
    lines += [f"| {by} | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for g in groups:
        row = [cell[(g, j)] for j in judges]
        if diversity:
            row.append(f"{diversity[g]:.3f}")
        row += [extra[c].get(g, "") for c in (extra or {})]
        lines.append(f"| {g} | " + " | ".join(row) + " |")
    unit = ", ".join((settings or {}).get("unit", UNIT))
    lines.append(f"\nMean [95% bootstrap interval] over ({unit}) units, n = {summary[0]['n']}.")
    if pairs:
        lines += ["", "| a vs b | judge | win rate of a [95%] | p (Wilcoxon) | p (paired t) | mean diff | n |",
                  "|---|---|---|---|---|---|---|"]
        for p in pairs:
            lines.append(f"| {p['a']} vs {p['b']} | {p['judge']} | {p['win_rate']:.3f} [{p['lo']:.3f}, {p['hi']:.3f}] "
                         f"| {p['p_value']:.3g} | {p['p_value_t']:.3g} | {p['mean_diff']:+.3g} | {p['n']} |")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- evaluate


def sample_plan(prompts: Sequence[str], seeds: Sequence[int], per_prompt: int) -> pd.DataFrame:
    """One row per image: prompt_idx, prompt, seed, k and its noise key (shared by all models)."""
    rows = []
    n = per_prompt * len(prompts)
    for seed in seeds:
        keys = eval_seeds(seed, n)
        for p, prompt in enumerate(prompts):
            for k in range(per_prompt):
                rows.append({"prompt_idx": p, "prompt": prompt, "seed": seed, "k": k, "key": keys[k * len(prompts) + p]})
    return pd.DataFrame(rows)


def _names(models: Sequence[str], names: Sequence[str] | None) -> list[str]:
    if names is not None:
        if len(names) != len(models) or len(set(names)) != len(names):
            raise ValueError("names must be distinct, one per model")
        return list(names)
    base = [Path(m.partition("+")[0]).name + ("+lora" if "+" in m else "") for m in models]
    return [b if base.count(b) == 1 else f"{b}-{i}" for i, b in enumerate(base)]


def evaluate(models: list[str], *, prompts: list[str], judges: list[str], judge_paths: Mapping[str, Mapping] | None = None,
             seeds: Sequence[int] = (0,), per_prompt: int = 1, steps: int, guidance: float, eta: float = 0.0,
             resolution: int | None = None, num_frames: int = 0, batch_size: int = 64, device="cpu",
             out: Path | None = None, names: list[str] | None = None, progress=True, n_boot: int = 2000,
             unit: Sequence[str] = UNIT, samples: int = 0) -> EvalResult:
    """Generate every (prompt, seed, k) with every model, score with every judge, summarise.

    `judge_paths` maps a judge name to its local weight paths. With the `digit` judge, the
    per-model `diversity` of the digits (DESIGN: a gamed judge gives ~0) is reported too.
    `out` receives `scores.parquet`, `eval.md`, `eval.json` and one sample grid per model.
    `unit` is the bootstrap and pairing unit: (prompt, seed) by default, with k averaged
    within; ("prompt_idx", "seed", "k") makes every image a unit (its noise key is shared
    across models, so the pairing holds), for small prompt sets such as the ten digits.
    Video models sample clips of `num_frames` (0: a run's own, else 8). `samples` keeps, per
    model, the first seed's k = 0 picture of the first `samples` prompts in `result.samples`.
    """
    names = _names(models, names)
    judge_paths = judge_paths or {}
    loaded = {name: load_judge(name, judge_paths.get(name), device) for name in judges}
    plan = sample_plan(prompts, list(seeds), per_prompt)
    settings = {"unit": list(unit), "steps": steps, "guidance": guidance, "eta": eta, "seeds": list(seeds), "per_prompt": per_prompt,
                "prompts": len(prompts), "judges": list(judges), "resolution": {}, "models": dict(zip(names, models))}
    # The sample grid: the first ≤ 10 prompts in columns, up to 6 (seed, k) draws in rows.
    grid_columns = min(len(prompts), 10)
    picked = plan[plan["prompt_idx"] < grid_columns]
    grid_rows = list(picked.sort_values(["seed", "k", "prompt_idx"]).index[:6 * grid_columns])
    kept_rows = list(plan[(plan["seed"] == plan["seed"].iloc[0]) & (plan["k"] == 0)].index[:samples])
    bar = tqdm(total=len(plan) * len(models), desc="eval", unit="img", disable=not progress)
    tables, diversity, kept = [], {}, {}
    for name, spec in zip(names, models):
        backbone = load_for_sampling(spec, device=device, num_frames=num_frames)
        res = resolution or default_resolution(spec, backbone)
        settings["resolution"][name] = res
        scores = {j: [] for j in judges}
        digit_arrays, shown = [], {}
        for start in range(0, len(plan), batch_size):
            chunk = plan.iloc[start:start + batch_size]
            images = sample(backbone, chunk["prompt"].tolist(), seeds=chunk["key"].tolist(), resolution=res,
                            steps=steps, guidance=guidance, eta=eta, batch_size=batch_size, progress=bar)
            for j, values in score_images(images, chunk["prompt"].tolist(), loaded).items():
                scores[j].append(values)
            if "digit" in judges:
                digit_arrays += [from_pil(im) for im in images]
            shown.update({i: im for i, im in zip(chunk.index, images) if i in grid_rows or i in kept_rows})
        del backbone  # one model in memory at a time
        kept[name] = [shown[i] for i in kept_rows]
        table = plan.assign(model=name, **{j: np.concatenate(v) for j, v in scores.items()})
        tables.append(table)
        if digit_arrays:
            labels = np.array([parse_digit(p) for p in table["prompt"]])
            diversity[name] = digit_diversity(np.stack(digit_arrays), labels)
        if out is not None:
            Path(out).mkdir(parents=True, exist_ok=True)
            grid([shown[i] for i in grid_rows], columns=grid_columns, scale=4 if res <= 64 else 1).save(
                Path(out) / f"samples-{name.replace('/', '_')}.png")  # arm/seed names in ablations
    bar.close()
    scores = pd.concat(tables, ignore_index=True)[["model", "prompt_idx", "prompt", "seed", "k", "key", *judges]]
    summary, pairs = summarize(scores, judges, n_boot=n_boot, unit=unit)
    result = EvalResult(scores=scores, judges=list(judges), summary=summary, pairs=pairs, settings=settings,
                        diversity=diversity, scales={n: getattr(j, "scale", "") for n, j in loaded.items()},
                        samples=kept)
    if out is not None:
        result.write(Path(out))
    return result
