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
"""

from __future__ import annotations

import json
import math
import shutil
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
from seppo.embedded.budget import EVAL_GUIDANCE, EVAL_STEPS, IMAGE_UNIT, QUICK
from seppo.embedded.preference import ensure_preference_judge
from seppo.embedded.world import ensure_world
from seppo.errors import ConfigError, SeppoError
from seppo.evaluate import EvalResult, evaluate, sample_plan
from seppo.methods import ARMS
from seppo.prompts import DIGIT_PROMPTS
from seppo.report import write_page
from seppo.report.grid import by_sampling
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
    select_judge: str = "preference"
    judges: list = field(default_factory=lambda: ["preference", "oracle", "digit", "stroke"])
    validation_per_prompt: int = 10  # validation images per prompt per tuning run
    final_per_prompt: int = 10  # final images per prompt per run: the unit is the run, so 100 images per run suffice
    eval_steps: int = EVAL_STEPS
    eval_guidance: float = EVAL_GUIDANCE
    arms: list = field(default_factory=lambda: list(ARMS))
    tune: bool = True  # False: every arm at the config's own settings (no selection)
    # Evaluation scales each arm's own is selected from on validation keys (phase 3); [] skips it.
    guidances: list = field(default_factory=lambda: [2.0, 2.5, 3.0, 3.5, 4.0])


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
    """One `seppo train` in a one-thread worker process; a finished run (summary.json) is reused."""
    if RunDir(run_dir).summary_path.is_file():  # finished before: an interrupted benchmark resumes
        return run_dir
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    argv = ["train", str(config), *overrides, f"output_dir={run_dir}", "overwrite=true", "log.progress=false"]
    workers.run(f"benchmark run {run_dir.name}", run_dir.parent / f"{run_dir.name}.log", workers.run_module, "seppo", argv)
    return run_dir


def run_all(jobs_list: list[tuple[Path, list[str], Path]], jobs: int) -> None:
    """Train every (config, overrides, run_dir), `jobs` at a time. Runs that need the same
    latent cache may build it at once: seppo.data.cache builds under a temporary name and
    renames, so one complete copy wins and the other is dropped."""
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        list(pool.map(lambda job: train_run(*job), jobs_list))


class Benchmark:
    def __init__(self, config: Path, overrides: Sequence[str], out: Path, plan: BenchmarkPlan, *, jobs: int = 2,
                 quick: bool = False, progress: bool = True):
        self.config, self.out, self.plan, self.jobs, self.progress = Path(config), Path(out), plan, jobs, progress
        self.overrides = [*(QUICK if quick else []), *overrides]
        self.cfg = load_config(self.config, self.overrides)
        # The runs keep their reference samples by content in one folder (seppo.shared_samples): every
        # SePPO-like run of a seed draws θ_0 first, whatever its settings. A user's override comes after.
        self.run_overrides = [f"sampler.share_dir={self.out / 'reference-samples'}", *self.overrides]
        for arm in plan.arms:
            if ARMS[arm] is not None:
                try:
                    load_config(self.config, [*self.overrides, *ARMS[arm][1]])
                except ConfigError as e:
                    raise SeppoError(f"benchmark arm {arm}: {e}") from None
        self.prompts = list(DIGIT_PROMPTS)
        self.validation_plan = sample_plan(self.prompts, [VALIDATION_EVAL_SEED], plan.validation_per_prompt)
        self.final_plan = sample_plan(self.prompts, [FINAL_EVAL_SEED + s for s in range(plan.seeds)],
                                      plan.final_per_prompt)
        check_disjoint(self.validation_plan, self.final_plan)
        self.world_config = self.out / "world.yaml"  # names the world whose judge pairs fit the learned judge

    def _evaluate_many(self, requests: list[EvalRequest]) -> list[tuple]:
        """(scores, diversity) of each request: one alone in this process, several `jobs` at a
        time in worker processes, each on one thread like the training runs, so the scores do not
        depend on how they were spread."""
        calls = [dict(models=r.models, names=r.names, prompts=self.prompts, judges=list(r.judges), seeds=[r.eval_seed],
                      judge_paths={"preference": {"config": str(self.world_config)}}, per_prompt=r.per_prompt,
                      steps=self.plan.eval_steps, guidance=r.guidance, resolution=self.cfg.data.resolution,
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
        """Selected settings per tuned method, and every tuning run's validation score."""
        selected, rows = {}, []
        for method, settings in TUNED.items():
            if not any(ARMS[a] and ARMS[a][0] == method for a in self.plan.arms):
                continue
            axes = {"train.lr": list(self.plan.lrs), "beta": list(self.plan.betas)}
            axes = {s: axes[s] for s in settings}
            widened = {s: 0 for s in settings}
            while True:
                points = _grid_points(axes)
                jobs = [(self.config, [*self.run_overrides, f"method={method}", *overrides_of(p), f"seed={TUNE_SEED0 + i}"],
                         self._tune_dir(method, p, i)) for p in points for i in range(self.plan.tune_seeds)]
                run_all(jobs, self.jobs)
                scores = self._validation_scores(method, points)
                best = select(scores, settings)
                grown = False
                for s in settings:
                    nxt = widen(axes[s], best[s])
                    if nxt is not None and widened[s] < self.plan.max_widen and nxt > 0:
                        axes[s] = sorted([*axes[s], nxt])
                        widened[s] += 1
                        grown = True
                if not grown:
                    break
            selected[method] = best
            rows.append(scores.assign(method=method))
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
                jobs.append((self.config, [*self.run_overrides, *chosen, *arm_overrides, f"seed={s}"], run_dir))
                runs.setdefault(arm, []).append(run_dir)
        t0 = time.time()
        run_all(jobs, self.jobs)
        self.train_seconds = time.time() - t0
        base = str(paths.model_folder(self.cfg))
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
            tables.append(table.assign(train_seed=s, diversity=table["arm"].map(diversity), guidance=request.guidance))
        return pd.concat(tables, ignore_index=True)

    # ─── phase 3: each arm at its own guidance scale ───
    def guidance_of_arms(self, selected: dict[str, dict]) -> tuple[dict[str, float], pd.DataFrame]:
        """Each arm's own evaluation scale, and every validation score it was chosen from: the
        base on its own, each tuned method on its tuning runs at the selected point (the final
        runs are never looked at); the ablation arms take their method's (SePPO's)."""
        families = {"base": [("base", str(paths.model_folder(self.cfg)))]} if "base" in self.plan.arms else {}
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
        base = str(paths.model_folder(self.cfg))
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
                  quick: bool = False, jobs: int = 2, progress: bool = True) -> Path:
    """Tune, train every arm × seed, evaluate, write the tables; returns `benchmark.md`. Its jobs'
    worker processes are forked from a server that this ends on the way out (seppo.workers)."""
    try:
        return _run_benchmark(config, overrides, out=out, plan=plan, quick=quick, jobs=jobs, progress=progress)
    finally:
        workers.stop()


def _run_benchmark(config: str | Path, overrides: Sequence[str], *, out: Path, plan: BenchmarkPlan | None, quick: bool,
                   jobs: int, progress: bool) -> Path:
    plan = plan or BenchmarkPlan()
    wall0 = time.time()
    bench = Benchmark(Path(config), overrides, Path(out), plan, jobs=jobs, quick=quick, progress=progress)
    bench.out.mkdir(parents=True, exist_ok=True)
    ensure_world(bench.cfg, progress=progress)  # base, pairs and judges once, before any run starts
    save_config(bench.cfg, bench.world_config)
    judge = ensure_preference_judge(bench.cfg.pretrain, progress=progress)
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
    timing = {"tune_seconds": round(tune_seconds, 1), "final_train_seconds": round(bench.train_seconds, 1),
              **({"guidance_seconds": guided["seconds"]} if guided else {}), "total_seconds": round(time.time() - wall0, 1)}
    table = write_outputs(bench.out, scores=scores, runs=runs, selected=selected, grid=grid, plan=plan,
                          config=str(config), overrides=bench.overrides, timing=timing,
                          keys={"validation": len(bench.validation_plan), "final": len(bench.final_plan)},
                          world={**_world_settings(bench.cfg), "preference_judge": judge.meta}, guided=guided)
    write_benchmark_report(bench, runs)
    return table


# Under each judge's name in the report's headline.
JUDGE_NOTES = {"preference": "learned Bradley–Terry judge (selection judge)",
               "oracle": "the annotator's own utility: the simulation's oracle", "digit": "class correctness",
               "stroke": "the annotator's stroke term"}


def write_benchmark_report(bench: Benchmark, runs: dict[str, list[Path]]) -> Path:
    """report.html: the seed-level table and verdicts first, then seed 0's final models side by
    side (the ten prompts, the same noise in a row), their curves, pools and configs."""
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
    columns = {"base": (str(paths.model_folder(bench.cfg)), None)} | {arm: (str(d), None) for arm, d in seed0.items()}
    comparison = by_sampling(columns, bench.prompts, seed=FINAL_EVAL_SEED, steps=bench.plan.eval_steps,
                             guidance=bench.plan.eval_guidance)
    return write_page(bench.out / "report.html", title="seppo benchmark: Pick-a-Digit", headline=headline,
                      runs={f"{arm} (seed 0)": d for arm, d in seed0.items()}, comparison=comparison,
                      prompts=bench.prompts[:4], seed=FINAL_EVAL_SEED, steps=bench.plan.eval_steps,
                      guidance=bench.plan.eval_guidance,
                      intro=f"{bench.plan.seeds} training seeds per arm; pictures and curves from seed 0's runs")


def _world_settings(cfg) -> dict:
    return {"pretrain": {k: v for k, v in vars(cfg.pretrain).items() if not hasattr(v, "__dataclass_fields__")},
            "budget": {"iterations": cfg.train.iterations, "updates_per_iteration": cfg.train.updates_per_iteration,
                       "batch_size": cfg.train.batch_size, "reference_sampler_steps": cfg.sampler.steps},
            "updates": cfg.train.iterations * cfg.train.updates_per_iteration,
            "examples_seen": cfg.train.iterations * cfg.train.updates_per_iteration * cfg.train.batch_size}
