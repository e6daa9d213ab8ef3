"""`seppo benchmark`: a comparison of methods that a user can trust (DESIGN.md §3).

Two phases, each a set of `seppo train` runs (one thread each, `jobs` at a time):

1. **Tuning.** For each tuned method (SFT, Diffusion-DPO, SePPO) a grid of learning rates,
   and of β for the preference methods, each point trained with `tune_seeds` training seeds
   of its own and scored by the selection judge (the learned preference judge) on
   *validation* noise keys. The best point by mean score is selected; where it sits on an
   edge of the grid, the grid grows one step past that edge (at most `max_widen` times).
2. **Final.** Every arm is trained at its method's selected settings with fresh training
   seeds 0..S−1 and evaluated on *final* noise keys, which no tuning run ever saw (checked:
   the two key sets are disjoint, or the benchmark stops). The ablation arms (flipper and
   reference variants, SPIN and DITTO presets) use SePPO's selected settings, as the paper's
   Table 5 does. Every arm has the same updates and examples seen.
3. **Guidance** (GA-Eval, arXiv 2602.22570: an update can act like more classifier-free
   guidance, and a judge then rewards the scale, not the method). The base, and each tuned
   method at its selected point (its tuning runs), is scored on the validation keys at every
   scale of `guidances`; the best mean selection-judge score picks each one's own scale
   (ablation arms take SePPO's). Every arm is then evaluated on the final keys at its own
   scale too: a second, guidance-aware table beside the one at the shared scale.

Training seed s of every arm is evaluated on its own evaluation set (eval seed
`FINAL_EVAL_SEED + s`), and the untrained base on all of them, so the arms are paired by
seed: same training seed, same base, same data order, same evaluation images. Statistics
(`seppo.benchmark_tables`) take the run as the unit.

**Two worlds.** The image world (Pick-a-Digit, the config's embedded base and pairs) by default;
with `video` (`seppo benchmark CONFIG --video`) the video world of `seppo demo --video`
(Moving Digits: the base video model and its pairs at `seppo.embedded.video_budget.FULL`, or
`QUICK`), every run configured by `video_run_overrides` on top of CONFIG, only the motion
modules training, evaluated on the 40 (digit, direction) prompts. The same phases, tables and
report; the report shows seed 0's clips of every arm side by side as animated GIFs (also
written to `gifs/`). The video world has no learned preference judge, and the judge that
selects must not be the oracle that is reported (tuning on the reported oracle would be
dishonest), so it selects by `video-prompt` = ½ per-frame digit judge + ½ motion judge: the
prompt's two asks weighted equally, from the public evaluation judges only (another classifier
and another motion estimator than the annotator's, and not its weights); the video annotator's
own utility (`video-oracle`) is reported beside it, labelled as the simulation's oracle, with
`motion`, `video-digit` and `consistency`. Phase 3 (guidance) is off by default for video
(`video_plan`), to keep the whole benchmark within 90 minutes on two cores.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import shutil
import sys
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple, Sequence

import pandas as pd
from tqdm.auto import tqdm

from seppo import paths, workers
from seppo.benchmark_tables import write_outputs
from seppo.config import load_config, save_config
from seppo.embedded.budget import EVAL_GUIDANCE, EVAL_STEPS, IMAGE_JUDGES, IMAGE_UNIT, QUICK
from seppo.embedded.clips import gif_bytes
from seppo.embedded.preference import ensure_preference_judge
from seppo.embedded.video_budget import FULL as VIDEO_FULL
from seppo.embedded.video_budget import QUICK as VIDEO_QUICK
from seppo.embedded.video_budget import VideoBudget, video_prompts, video_run_overrides
from seppo.embedded.video_world import ensure_moving_digits, ensure_video_base
from seppo.embedded.world import ensure_world
from seppo.errors import ConfigError, SeppoError
from seppo.evaluate import EvalResult, evaluate, sample_plan
from seppo.methods import ARMS
from seppo.prompts import DIGIT_PROMPTS
from seppo.report import write_page
from seppo.report.grid import Comparison, by_sampling
from seppo.report.headline import seed_headline
from seppo.run_dir import RunDir

# The tuned methods and the settings they are tuned over.
TUNED = OrderedDict([("sft", ("train.lr",)), ("dpo", ("train.lr", "beta")), ("seppo", ("train.lr", "beta"))])
# Seed ranges (ours): tuning runs and validation keys never overlap the final ones.
TUNE_SEED0 = 1000  # training seeds of tuning runs: 1000, 1001, ...
VALIDATION_EVAL_SEED = 5000  # eval seed of the validation keys
FINAL_EVAL_SEED = 100  # final evaluation set of training seed s: eval seed 100 + s


@dataclass
class BenchmarkPlan:
    """What a benchmark runs; every number is recorded in its output."""

    seeds: int = 8  # final training seeds per arm
    tune_seeds: int = 2  # training seeds per grid point
    lrs: list = field(default_factory=lambda: [1e-5, 3e-5, 1e-4, 3e-4])
    betas: list = field(default_factory=lambda: [500.0, 2000.0, 5000.0])
    max_widen: int = 2  # times a grid may grow past an edge, per setting
    select_judge: str = "preference"  # never the oracle: the module's docstring says why
    judges: list = field(default_factory=lambda: list(IMAGE_JUDGES))
    validation_per_prompt: int = 10  # validation images per prompt per tuning run
    final_per_prompt: int = 10  # final images per prompt per run: the unit is the run, so 100 images per run suffice
    eval_steps: int = EVAL_STEPS
    eval_guidance: float = EVAL_GUIDANCE
    arms: list = field(default_factory=lambda: list(ARMS))
    tune: bool = True  # False: every arm at the config's own settings (no selection)
    # Evaluation scales each arm's own is selected from on validation keys (phase 3); [] skips it.
    guidances: list = field(default_factory=lambda: [2.0, 2.5, 3.0, 3.5, 4.0])


# The video world's judges (seppo.judges.registry), the selection judge first; the oracle is reported, never selected by.
VIDEO_JUDGES = ["video-prompt", "video-oracle", "video-digit", "motion", "consistency"]
VIDEO_ARMS = ["base", "sft", "dpo", "seppo", "seppo-noflip"]


def video_plan(budget: VideoBudget = VIDEO_FULL) -> BenchmarkPlan:
    """The video benchmark's plan: the evaluation of `budget` (clips per cell, steps, guidance),
    a grid sized so the whole benchmark fits 90 minutes on two cores at `--jobs 2` (one tuning
    seed per point; no guidance phase). Each method's best image-world settings lie inside it."""
    return BenchmarkPlan(seeds=5, tune_seeds=1, lrs=[1e-4, 3e-4, 1e-3], betas=[200.0, 2000.0], max_widen=1,
                         select_judge=VIDEO_JUDGES[0], judges=list(VIDEO_JUDGES), validation_per_prompt=1,
                         final_per_prompt=budget.eval_per_cell, eval_steps=budget.eval_steps,
                         eval_guidance=budget.guidance, arms=list(VIDEO_ARMS), guidances=[])


class EvalRequest(NamedTuple):
    """One evaluation: `models` (named `names`) on eval seed `eval_seed`'s keys at `guidance`."""

    models: list
    names: list
    eval_seed: int
    per_prompt: int
    out: Path
    judges: Sequence[str]
    guidance: float


# ---------------------------------------------------------------- the grid


def widen(values: Sequence[float], best: float) -> float | None:
    """The next grid value past the edge where `best` sits (one geometric step), or None
    when `best` is interior. Values are positive and the grid is sorted before use."""
    v = sorted(values)
    if len(v) < 2 or v[0] < best < v[-1]:
        return None
    if best == v[-1]:
        return _round(v[-1] * v[-1] / v[-2])
    return _round(v[0] * v[0] / v[1])


def _round(x: float) -> float:
    """The nearest (in log scale) of 1, 2, 3, 5 × 10^k: grids stay readable (3e-4 → 1e-3, 5000 → 1e4)."""
    k = math.floor(math.log10(x))
    candidates = [m * 10.0 ** e for e in (k, k + 1) for m in (1, 2, 3, 5)]
    return float(f"{min(candidates, key=lambda c: abs(math.log(c / x))):.3g}")


def select_guidance(scores: pd.DataFrame, default: float) -> float:
    """The scale with the highest mean score over a model's runs; ties go to the one nearest
    `default` (the shared evaluation scale). `scores`: one row per (run, scale): `guidance`, `score`."""
    means = scores.groupby("guidance")["score"].mean().reset_index()
    means["distance"] = (means["guidance"] - default).abs()
    return float(means.sort_values(["score", "distance"], ascending=[False, True]).iloc[0]["guidance"])


def select(scores: pd.DataFrame, settings: Sequence[str]) -> dict:
    """The grid point with the highest mean score over its tuning seeds; ties go to the
    smaller learning rate. `scores` has one row per tuning run: the settings, `score`."""
    means = scores.groupby(list(settings))["score"].mean().reset_index()
    means = means.sort_values(["score", "train.lr"], ascending=[False, True])
    best = means.iloc[0]
    return {s: float(best[s]) for s in settings}


def overrides_of(point: dict) -> list[str]:
    return [f"{key}={value:g}" for key, value in point.items()]


def check_disjoint(validation: pd.DataFrame, final: pd.DataFrame) -> None:
    """Tuning must never read the final evaluation's noise keys."""
    shared = set(validation["key"]) & set(final["key"])
    if shared:
        raise SeppoError(f"validation and final evaluation share {len(shared)} noise keys (e.g. {min(shared)})")


# ---------------------------------------------------------------- running


def train_run(config: Path, overrides: list[str], run_dir: Path) -> Path:
    """One `seppo train` in a one-thread worker process; a finished run (summary.json) is reused.
    A run whose worker server ended under it (`workers.LostServer`) counts if it finished, and is
    otherwise started once more (a new server starts with it)."""
    argv = ["train", str(config), *overrides, f"output_dir={run_dir}", "overwrite=true", "log.progress=false"]
    for attempt in (1, 2):
        if RunDir(run_dir).summary_path.is_file():  # finished before: an interrupted benchmark resumes
            return run_dir
        run_dir.parent.mkdir(parents=True, exist_ok=True)
        try:
            workers.run(f"benchmark run {run_dir.name}", run_dir.parent / f"{run_dir.name}.log", workers.run_module,
                        "seppo", argv)
            return run_dir
        except workers.LostServer as e:
            if attempt == 2:
                raise
            print(f"{e}; starting it again", file=sys.stderr, flush=True)


def run_all(jobs_list: list[tuple[Path, list[str], Path]], jobs: int) -> None:
    """Train every (config, overrides, run_dir), `jobs` at a time. Runs that need the same
    latent cache may build it at once: seppo.data.cache builds under a temporary name and
    renames, so one complete copy wins and the other is dropped."""
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        list(pool.map(lambda job: train_run(*job), jobs_list))


class Benchmark:
    def __init__(self, config: Path, overrides: Sequence[str], out: Path, plan: BenchmarkPlan, *, jobs: int = 2,
                 quick: bool = False, progress: bool = True, video: VideoBudget | None = None):
        self.config, self.out, self.plan, self.jobs, self.progress = Path(config), Path(out), plan, jobs, progress
        self.video = video  # None: the image world
        self.overrides = [*(QUICK if quick and video is None else []), *overrides]
        self.cfg = load_config(self.config, [*(video.pretrain if video else []), *self.overrides])
        self.start: dict[str, list[str]] = {}  # per tuned method: the world's overrides its runs start from (prepare)
        for arm in plan.arms:
            if ARMS[arm] is not None:
                try:
                    load_config(self.config, [*self.overrides, *ARMS[arm][1]])
                except ConfigError as e:
                    raise SeppoError(f"benchmark arm {arm}: {e}") from None
        self.prompts = video_prompts(video) if video else list(DIGIT_PROMPTS)
        self.validation_plan = sample_plan(self.prompts, [VALIDATION_EVAL_SEED], plan.validation_per_prompt)
        self.final_plan = sample_plan(self.prompts, [FINAL_EVAL_SEED + s for s in range(plan.seeds)],
                                      plan.final_per_prompt)
        check_disjoint(self.validation_plan, self.final_plan)
        self.world_config = self.out / "world.yaml"  # names the world whose judge pairs fit the learned judge

    def prepare(self) -> dict:
        """Build the world (base, pairs, judges) once, before any run starts; returns its settings
        as benchmark.json records them. For video, each tuned method's runs start from the video
        model and its data (`video_run_overrides`), and `self.cfg` becomes the SePPO run's config."""
        if self.video is None:
            ensure_world(self.cfg, progress=self.progress)
            save_config(self.cfg, self.world_config)
            judge = ensure_preference_judge(self.cfg.pretrain, progress=self.progress)
            self.base = str(paths.model_folder(self.cfg))
            return {**_world_settings(self.cfg), "preference_judge": judge.meta}
        folders = ensure_video_base(self.cfg.pretrain, self.video.video, progress=self.progress)
        data, stats = ensure_moving_digits(self.cfg.pretrain, self.video.video, progress=self.progress)
        self.base = str(folders["base"])
        self.start = {method: video_run_overrides(method, folders["base"], data, self.video) for method in TUNED}
        self.cfg = load_config(self.config, [*self.start["seppo"], *self.overrides])
        return {**_world_settings(self.cfg), "unit": "clips", "video": dataclasses.asdict(self.video),
                "moving_digits": {"folder": str(data), **stats}}

    def run_overrides(self, method: str) -> list[str]:
        """What every run of tuned method `method` starts from. The runs keep their reference samples by
        content in one folder (seppo.shared_samples): every SePPO-like run of a seed draws θ_0 first,
        whatever its settings. A user's override comes after the world's."""
        return [f"sampler.share_dir={self.out / 'reference-samples'}", *self.start.get(method, []), *self.overrides]

    def _evaluate_many(self, requests: list[EvalRequest]) -> list[tuple]:
        """(scores, diversity) of each request: one alone in this process, several `jobs` at a
        time in worker processes, each on one thread like the training runs, so the scores do not
        depend on how they were spread."""
        calls = [dict(models=r.models, names=r.names, prompts=self.prompts, judges=list(r.judges), seeds=[r.eval_seed],
                      judge_paths={"preference": {"config": str(self.world_config)}}, per_prompt=r.per_prompt,
                      steps=self.plan.eval_steps, guidance=r.guidance, resolution=self.cfg.data.resolution,
                      num_frames=self.video.video.num_frames if self.video else 0, batch_size=32 if self.video else 64,
                      out=str(r.out), progress=False, unit=list(IMAGE_UNIT))
                 for r in requests]
        if self.jobs <= 1 or len(calls) <= 1:
            return [_evaluate_here(call) for call in calls]
        bar = tqdm(total=len(calls), desc="evaluate", unit="set", disable=not self.progress)

        def one(call: dict) -> tuple:
            result = _evaluate_apart(call)
            bar.update()
            return result

        with ThreadPoolExecutor(max_workers=self.jobs) as pool:
            results = list(pool.map(one, calls))
        bar.close()
        return results

    # ─── phase 1: tuning ───
    def tune(self) -> tuple[dict[str, dict], pd.DataFrame]:
        """Selected settings per tuned method, and every tuning run's validation score. Each round
        trains the grids of every method still growing at once (`jobs` runs at a time)."""
        methods = [m for m in TUNED if any(ARMS[a] and ARMS[a][0] == m for a in self.plan.arms)]
        values = {"train.lr": self.plan.lrs, "beta": self.plan.betas}
        axes = {m: {s: list(values[s]) for s in TUNED[m]} for m in methods}
        widened = {m: {s: 0 for s in TUNED[m]} for m in methods}
        selected, scores, growing = {}, {}, methods
        while growing:
            run_all([(self.config, [*self.run_overrides(m), f"method={m}", *overrides_of(p), f"seed={TUNE_SEED0 + i}"],
                      self._tune_dir(m, p, i)) for m in growing for p in _grid_points(axes[m])
                     for i in range(self.plan.tune_seeds)], self.jobs)  # finished runs are kept, not trained again
            grown = []
            for m in growing:
                scores[m] = self._validation_scores(m, _grid_points(axes[m]))
                selected[m] = best = select(scores[m], TUNED[m])
                for s in TUNED[m]:
                    nxt = widen(axes[m][s], best[s])
                    if nxt is not None and widened[m][s] < self.plan.max_widen and nxt > 0:
                        axes[m][s] = sorted([*axes[m][s], nxt])
                        widened[m][s] += 1
                        grown.append(m)
            growing = list(dict.fromkeys(grown))
        rows = [scores[m].assign(method=m) for m in methods]
        grid = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()
        return selected, grid

    def _tune_dir(self, method: str, point: dict, i: int) -> Path:
        tag = "-".join(f"{k.split('.')[-1]}{v:g}" for k, v in point.items())
        return self.out / "tuning" / "runs" / f"{method}-{tag}-s{TUNE_SEED0 + i}"

    def _validation_scores(self, method: str, points: list[dict]) -> pd.DataFrame:
        """Mean selection-judge score of each tuning run on the validation keys (cached per run).
        The runs not yet scored are split into `jobs` evaluations of several models each (a
        model's scores do not depend on the others in its evaluation), to start fewer processes."""
        runs = [(p, i, self._tune_dir(method, p, i)) for p in points for i in range(self.plan.tune_seeds)]
        todo = [run_dir for _, _, run_dir in runs if not (run_dir / "validation.json").is_file()]
        judge = self.plan.select_judge
        n = max(1, self.jobs)
        groups = [todo[k::n] for k in range(min(n, len(todo)))]
        folder = self.out / "tuning" / "validation"
        requests = [EvalRequest([str(d) for d in group], [d.name for d in group], VALIDATION_EVAL_SEED,
                                self.plan.validation_per_prompt, folder / group[0].name, [judge], self.plan.eval_guidance)
                    for group in groups]
        for group, (scores, _) in zip(groups, self._evaluate_many(requests)):
            for run_dir in group:
                rows = scores[scores["model"] == run_dir.name]
                (run_dir / "validation.json").write_text(json.dumps({"score": float(rows[judge].mean()), "judge": judge,
                                                                     "keys": len(rows)}))
        rows = [{**p, "seed": TUNE_SEED0 + i, "score": json.loads((d / "validation.json").read_text())["score"]}
                for p, i, d in runs]
        return pd.DataFrame(rows)

    # ─── phase 2: final runs ───
    def final(self, selected: dict[str, dict]) -> tuple[pd.DataFrame, dict[str, list[Path]]]:
        """Train every arm × seed at its selected settings, evaluate on the final keys."""
        runs: dict[str, list[Path]] = {}
        jobs = []
        for arm in self.plan.arms:
            if ARMS[arm] is None:
                continue
            method, arm_overrides = ARMS[arm]
            chosen = overrides_of(selected.get(method, {}))
            for s in range(self.plan.seeds):
                run_dir = self.out / "runs" / f"{arm}-s{s}"
                jobs.append((self.config, [*self.run_overrides(method), *chosen, *arm_overrides, f"seed={s}"], run_dir))
                runs.setdefault(arm, []).append(run_dir)
        t0 = time.time()
        run_all(jobs, self.jobs)
        self.train_seconds = time.time() - t0
        base = self.base
        names = (["base"] if "base" in self.plan.arms else []) + list(runs)
        requests = [EvalRequest(([base] if "base" in self.plan.arms else []) + [str(runs[a][s]) for a in runs], names,
                                FINAL_EVAL_SEED + s, self.plan.final_per_prompt, self.out / "eval" / f"s{s}",
                                self.plan.judges, self.plan.eval_guidance)
                    for s in range(self.plan.seeds)]
        return self._final_tables(requests, list(range(self.plan.seeds))), runs

    def _final_tables(self, requests: list[EvalRequest], seeds: list[int]) -> pd.DataFrame:
        """The final keys' per-image scores of each request (training seed `seeds[i]`), one table."""
        tables = []
        for s, request, (scores, diversity) in zip(seeds, requests, self._evaluate_many(requests)):
            table = scores.rename(columns={"model": "arm"})
            table = table.assign(train_seed=s, guidance=request.guidance)
            if diversity:  # the digit judge's diversity of the images; clips have none
                table = table.assign(diversity=table["arm"].map(diversity))
            tables.append(table)
        return pd.concat(tables, ignore_index=True)

    # ─── phase 3: each arm at its own guidance scale ───
    def guidance_of_arms(self, selected: dict[str, dict]) -> tuple[dict[str, float], pd.DataFrame]:
        """Each arm's own evaluation scale, and every validation score it was chosen from: the
        base on its own, each tuned method on its tuning runs at the selected point (the final
        runs are never looked at); the ablation arms take their method's (SePPO's)."""
        families = {"base": [("base", self.base)]} if "base" in self.plan.arms else {}
        for method, point in selected.items():
            dirs = [self._tune_dir(method, point, i) for i in range(self.plan.tune_seeds)]
            families[method] = [(d.name, str(d)) for d in dirs]
        judge, root = self.plan.select_judge, self.out / "tuning" / "guidance"
        cells = [(family, run, model, g) for family, members in families.items() for run, model in members
                 for g in self.plan.guidances]

        def saved(run: str, g: float) -> Path:  # one model's validation score at one scale
            return root / f"g{g:g}" / f"{run}.json"

        todo: dict[float, list[tuple[str, str]]] = {}  # per scale, one evaluation of every model not yet scored
        for family, run, model, g in cells:
            validation = Path(model) / "validation.json"  # a tuning run's score on these keys at the shared scale
            if family != "base" and g == self.plan.eval_guidance and validation.is_file() and not saved(run, g).is_file():
                saved(run, g).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(validation, saved(run, g))
        for _, run, model, g in cells:
            if not saved(run, g).is_file():
                todo.setdefault(g, []).append((run, model))
        requests = [EvalRequest([m for _, m in members], [r for r, _ in members], VALIDATION_EVAL_SEED,
                                self.plan.validation_per_prompt, root / f"g{g:g}", [judge], g) for g, members in todo.items()]
        for request, (scores, _) in zip(requests, self._evaluate_many(requests)):
            for run, rows in scores.groupby("model"):
                saved(run, request.guidance).write_text(json.dumps({"score": float(rows[judge].mean()), "judge": judge,
                                                                    "keys": len(rows)}))
        grid = pd.DataFrame([{"model": family, "run": run, "guidance": g,
                              "score": json.loads(saved(run, g).read_text())["score"]} for family, run, _, g in cells])
        own = {family: select_guidance(rows, self.plan.eval_guidance) for family, rows in grid.groupby("model")}
        grid["selected"] = grid["guidance"] == grid["model"].map(own)
        arms = {arm: own.get("base" if ARMS[arm] is None else ARMS[arm][0], self.plan.eval_guidance)
                for arm in self.plan.arms}
        return arms, grid

    def final_guided(self, arm_guidance: dict[str, float], runs: dict[str, list[Path]],
                     scores: pd.DataFrame) -> pd.DataFrame:
        """The final keys' scores with every arm at its own scale: an arm whose scale is the shared
        one keeps its rows from `scores`; the others are evaluated (per seed, one set per scale)."""
        shared = self.plan.eval_guidance
        base = self.base
        arms = [a for a in self.plan.arms if a == "base" or a in runs]
        requests, seeds = [], []
        for s in range(self.plan.seeds):
            by_scale: dict[float, list[str]] = {}
            for arm in arms:
                if arm_guidance[arm] != shared:
                    by_scale.setdefault(arm_guidance[arm], []).append(arm)
            for g, group in sorted(by_scale.items()):
                models = [base if a == "base" else str(runs[a][s]) for a in group]
                requests.append(EvalRequest(models, group, FINAL_EVAL_SEED + s, self.plan.final_per_prompt,
                                            self.out / "eval-guided" / f"s{s}-g{g:g}", self.plan.judges, g))
                seeds.append(s)
        kept = scores[scores["arm"].map(arm_guidance) == shared]
        tables = [kept, self._final_tables(requests, seeds)] if requests else [kept]
        return pd.concat(tables, ignore_index=True)


def _evaluate_here(call: dict) -> tuple[pd.DataFrame, dict]:
    """`seppo.evaluate.evaluate(**call)` in this process, on one thread: per-image scores, diversity."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result = evaluate(**call)
    finally:
        torch.set_num_threads(before)
    return result.scores, result.diversity


def _evaluate_apart(call: dict) -> tuple[pd.DataFrame, dict]:
    """The same in a worker process of its own: it writes `call["out"]`, read back here."""
    out = Path(call["out"])
    out.mkdir(parents=True, exist_ok=True)
    (out / "call.json").write_text(json.dumps(call))
    workers.run(f"benchmark evaluation into {out}", out / "eval.log", evaluate_call_file, str(out / "call.json"))
    result = EvalResult.read(out)
    return result.scores, result.diversity


def evaluate_call_file(path: str) -> None:
    """The worker's side of `_evaluate_apart`: `evaluate(**call)` from its JSON, which writes `out`."""
    _evaluate_here(json.loads(Path(path).read_text()))


def _grid_points(axes: dict[str, list[float]]) -> list[dict]:
    points = [{}]
    for key, values in axes.items():
        points = [{**p, key: v} for p in points for v in values]
    return points


def run_benchmark(config: str | Path, overrides: Sequence[str] = (), *, out: Path, plan: BenchmarkPlan | None = None,
                  quick: bool = False, jobs: int = 2, progress: bool = True, video: bool | VideoBudget = False) -> Path:
    """Tune, train every arm × seed, evaluate, write the tables; returns `benchmark.md`. `video`:
    in the video world (`video_plan` by default) at the budget given, or with True at the demo's
    (`QUICK` with `quick`, else `FULL`). Its jobs' worker processes are forked from a server that
    this ends on the way out (seppo.workers)."""
    try:
        return _run_benchmark(config, overrides, out=out, plan=plan, quick=quick, jobs=jobs, progress=progress,
                              video=video)
    finally:
        workers.stop()


def _video_budget(video: bool | VideoBudget, quick: bool) -> VideoBudget | None:
    if video is True:
        return VIDEO_QUICK if quick else VIDEO_FULL
    return video or None


def default_plan(video: bool | VideoBudget = False, quick: bool = False) -> BenchmarkPlan:
    """The plan a benchmark runs unless told otherwise: the image world's, or the video world's at its budget."""
    budget = _video_budget(video, quick)
    return video_plan(budget) if budget else BenchmarkPlan()


def _run_benchmark(config: str | Path, overrides: Sequence[str], *, out: Path, plan: BenchmarkPlan | None, quick: bool,
                   jobs: int, progress: bool, video: bool | VideoBudget) -> Path:
    plan = plan or default_plan(video, quick)
    wall0 = time.time()
    bench = Benchmark(Path(config), overrides, Path(out), plan, jobs=jobs, quick=quick, progress=progress,
                      video=_video_budget(video, quick))
    bench.out.mkdir(parents=True, exist_ok=True)
    world = bench.prepare()  # base, pairs and judges once, before any run starts
    world_seconds = time.time() - wall0
    if plan.tune:
        selected, grid = bench.tune()
    else:
        selected, grid = {}, pd.DataFrame()
    tune_seconds = time.time() - wall0
    scores, runs = bench.final(selected)
    guided = None
    if plan.tune and plan.guidances:
        t0 = time.time()
        arm_guidance, guidance_grid = bench.guidance_of_arms(selected)
        guided = {"scores": bench.final_guided(arm_guidance, runs, scores), "arms": arm_guidance,
                  "grid": guidance_grid, "seconds": round(time.time() - t0, 1)}
    timing = {"world_seconds": round(world_seconds, 1), "tune_seconds": round(tune_seconds - world_seconds, 1),
              "final_train_seconds": round(bench.train_seconds, 1),
              **({"guidance_seconds": guided["seconds"]} if guided else {}), "total_seconds": round(time.time() - wall0, 1)}
    table = write_outputs(bench.out, scores=scores, runs=runs, selected=selected, grid=grid, plan=plan,
                          config=str(config), overrides=bench.overrides, timing=timing,
                          keys={"validation": len(bench.validation_plan), "final": len(bench.final_plan)},
                          world=world, guided=guided)
    write_benchmark_report(bench, runs)
    return table


# Under each judge's name in the report's headline.
JUDGE_NOTES = {"preference": "learned Bradley–Terry judge (selection judge)",
               "oracle": "the annotator's own utility: the simulation's oracle", "digit": "class correctness",
               "stroke": "the annotator's stroke term",
               "video-prompt": "½ per-frame digit + ½ motion, public judges only (selection judge)",
               "video-oracle": "the video annotator's own utility: the simulation's oracle",
               "video-digit": "class correctness, mean over frames", "motion": "share of frame steps moving the prompted way",
               "consistency": "similarity of consecutive frames"}


def report_prompts(bench: Benchmark) -> list[str]:
    """The side-by-side rows: the ten digits; for clips one prompt per direction (direction j with digit j)."""
    if bench.video is None:
        return bench.prompts
    return [bench.prompts[4 * (j % bench.video.eval_digits) + j] for j in range(4)]  # cell 4·d + direction


def write_gifs(comparison: Comparison, folder: Path, *, scale: int = 8) -> Comparison:
    """Each clip of `comparison` as an animated GIF file in `folder` (`seppo.embedded.clips.gif_bytes`:
    every frame kept), and in the comparison the same bytes, linked to their file."""
    folder.mkdir(parents=True, exist_ok=True)
    cells, links = [], []
    for prompt, row in zip(comparison.rows, comparison.cells):
        slug = re.sub(r"[^a-z0-9]+", "-", prompt.lower()).strip("-")
        cells.append([])
        links.append([])
        for column, clip in zip(comparison.columns, row):
            path = folder / f"{slug}--{column}.gif"
            data = gif_bytes(clip, scale=scale)
            path.write_bytes(data)
            cells[-1].append(data)
            links[-1].append(f"{folder.name}/{path.name}")
    return dataclasses.replace(comparison, cells=cells, links=links,
                               caption=comparison.caption + f" Each clip is also a GIF file in {folder.name}/ (click it).")


def write_benchmark_report(bench: Benchmark, runs: dict[str, list[Path]]) -> Path:
    """report.html: the seed-level table and verdicts first, then seed 0's final models side by
    side (the ten prompts, or for clips one prompt per direction, as GIFs also written to gifs/;
    the same noise in a row), their curves, pools and configs."""
    data = json.loads((bench.out / "benchmark.json").read_text())
    arms = [a for a in bench.plan.arms if a == "base" or a in runs]
    headline = seed_headline(data["summary"], data["paired"], arms=arms, primary=bench.plan.select_judge,
                             notes=JUDGE_NOTES, extra=data["extra"])
    if data.get("guided"):
        scales = {arm: f"{data['guided']['arms'][arm]:g}" for arm in arms}
        headline += (f"<h3>Every arm at its own guidance scale</h3><p class=\"note\">Above, every arm is sampled at "
                     f"guidance {bench.plan.eval_guidance:g}. Here each arm is sampled at its own scale, chosen on "
                     "validation keys (the base; each tuned method's tuning runs; ablation arms take SePPO's), on the "
                     "same final keys: an update that acts like more guidance is not rewarded for the scale alone "
                     "(GA-Eval, arXiv 2602.22570).</p>"
                     + seed_headline(data["guided"]["summary"], data["guided"]["paired"], arms=arms,
                                     primary=bench.plan.select_judge, notes=JUDGE_NOTES, extra={"guidance": scales}))
    seed0 = {arm: dirs[0] for arm, dirs in runs.items()}
    columns = ({"base": (bench.base, None)} if "base" in arms else {}) | {arm: (str(d), None) for arm, d in seed0.items()}
    shown = report_prompts(bench)
    comparison = by_sampling(columns, shown, seed=FINAL_EVAL_SEED, steps=bench.plan.eval_steps,
                             guidance=bench.plan.eval_guidance,
                             num_frames=bench.video.video.num_frames if bench.video is not None else 0)
    if bench.video is not None:
        comparison = write_gifs(comparison, bench.out / "gifs")
    world = "Moving Digits (video)" if bench.video is not None else "Pick-a-Digit"
    return write_page(bench.out / "report.html", title=f"seppo benchmark: {world}", headline=headline,
                      runs={f"{arm} (seed 0)": d for arm, d in seed0.items()}, comparison=comparison,
                      prompts=shown[:4], seed=FINAL_EVAL_SEED, steps=bench.plan.eval_steps,
                      guidance=bench.plan.eval_guidance,
                      intro=f"{bench.plan.seeds} training seeds per arm; "
                            f"{'clips' if bench.video is not None else 'pictures'} and curves from seed 0's runs")


def _world_settings(cfg) -> dict:
    return {"pretrain": {k: v for k, v in vars(cfg.pretrain).items() if not hasattr(v, "__dataclass_fields__")},
            "budget": {"iterations": cfg.train.iterations, "updates_per_iteration": cfg.train.updates_per_iteration,
                       "batch_size": cfg.train.batch_size, "reference_sampler_steps": cfg.sampler.steps},
            "updates": cfg.train.iterations * cfg.train.updates_per_iteration,
            "examples_seen": cfg.train.iterations * cfg.train.updates_per_iteration * cfg.train.batch_size}
