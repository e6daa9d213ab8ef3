"""World calibration for Pick-a-Digit (issue 16): helpers and the experiments, one subcommand each.

Only base, SFT and Diffusion-DPO are ever trained or scored here (issue 16, rule 3: a world
setting is never chosen by how SePPO scores).

    SEPPO_CACHE=/tmp/cache-world/v0 python benchmarks/world-calibration/calib.py SUBCOMMAND --out DIR

Every training run is a `seppo train` subprocess on one thread, two at a time; a run whose
`summary.json` exists is reused. Evaluation uses `seppo.evaluate.evaluate` with noise keys
shared by every model (paired), on evaluation seeds that the demo and the benchmark do not
use (`EVAL_SEEDS`), with the judges digit, stroke, oracle (the simulation's oracle) and
preference (the learned Bradley–Terry judge).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch
from scipy import stats as st

from seppo.config import load_config
from seppo.embedded.budget import EVAL_GUIDANCE, EVAL_STEPS, IMAGE_UNIT
from seppo.embedded.pretrain import ensure_embedded_base
from seppo.evaluate import evaluate
from seppo.prompts import DIGIT_PROMPTS

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
CONFIG = REPO / "configs" / "digits-seppo.yaml"
EVAL_SEEDS = [1000]  # calibration's own evaluation noise: the demo uses seed 0
PER_PROMPT = 20  # 200 images per model
JUDGES = ["digit", "stroke", "oracle", "preference"]
JOBS = int(os.environ.get("CALIB_JOBS", "2"))
COMMON = ["log.progress=false", "log.report_to=none", "checkpoints.every=0", "overwrite=true"]


# ---------------------------------------------------------------- runs


def train_run(run_dir: Path, overrides: list[str], config: Path = CONFIG) -> Path:
    if (run_dir / "summary.json").is_file():
        return run_dir
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "SEPPO_THREADS": "1"}
    cmd = [sys.executable, "-m", "seppo", "train", str(config), *overrides, *COMMON, f"output_dir={run_dir}"]
    t0 = time.time()
    with open(run_dir.parent / f"{run_dir.name}.log", "w") as log:
        done = subprocess.run(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        raise RuntimeError(f"{run_dir.name} failed (exit {done.returncode}); see {run_dir.parent / (run_dir.name + '.log')}")
    print(f"  trained {run_dir.name} in {time.time() - t0:.0f} s", flush=True)
    return run_dir


def train_many(jobs: list[tuple[Path, list[str]]], config: Path = CONFIG) -> list[Path]:
    with ThreadPoolExecutor(JOBS) as pool:
        return list(pool.map(lambda job: train_run(job[0], job[1], config), jobs))


def base_folder(config: Path = CONFIG, overrides: list[str] = ()) -> Path:
    return ensure_embedded_base(load_config(config, list(overrides)).pretrain, progress=False)["base"]


def evaluate_models(models: dict[str, str], out: Path, world_config: Path = CONFIG, judges=JUDGES, *,
                    per_prompt: int = PER_PROMPT, guidance: float = EVAL_GUIDANCE) -> dict[str, dict]:
    """{name: {judge: mean over the images, "_scores": {judge: per-image list}}} plus diversity.
    Cached by model name in `out/scores.json`: one `out` per sampling setting."""
    torch.set_num_threads(1)
    cache = out / "scores.json"
    known = json.loads(cache.read_text()) if cache.is_file() else {}
    todo = {n: _plain(m) for n, m in models.items() if n not in known}
    if todo:
        result = evaluate(list(todo.values()), prompts=list(DIGIT_PROMPTS), judges=list(judges),
                          judge_paths={"preference": {"config": str(world_config)}}, seeds=EVAL_SEEDS,
                          per_prompt=per_prompt, steps=EVAL_STEPS, guidance=guidance, names=list(todo),
                          progress=False, unit=IMAGE_UNIT, n_boot=200)
        for name in todo:
            rows = result.scores[result.scores["model"] == name]
            known[name] = {j: float(rows[j].mean()) for j in judges}
            known[name]["diversity"] = result.diversity.get(name)
            known[name]["_scores"] = {j: rows[j].round(5).tolist() for j in judges}
        out.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(known))
    return {n: known[n] for n in models}


def _plain(path: str) -> str:
    """A run folder whose name holds "+" (read as BASE+LORA) through a symlink without it."""
    p = Path(path)
    if "+" not in p.name:
        return path
    link = p.with_name(p.name.replace("+", "-and-"))
    if not link.exists():
        link.symlink_to(p.name)
    return str(link)


def seed_level(scores: dict[str, dict], base: str, groups: dict[str, list[str]], judges=JUDGES) -> list[dict]:
    """Per group of runs (one per training seed): mean of the run means − base, with a 95%
    t-interval over seeds (the unit of evidence is a run), the seed spread and how many seeds are ahead."""
    rows = []
    for group, names in groups.items():
        row = {"setting": group, "seeds": len(names)}
        for j in judges + ["diversity"]:
            diffs = np.array([scores[n][j] - scores[base][j] for n in names])
            mean = float(diffs.mean())
            if len(diffs) > 1:
                half = float(st.t.ppf(0.975, len(diffs) - 1) * diffs.std(ddof=1) / np.sqrt(len(diffs)))
            else:
                half = float("nan")
            row[j] = {"mean": float(np.mean([scores[n][j] for n in names])), "diff": mean, "lo": mean - half,
                      "hi": mean + half, "min_diff": float(diffs.min()), "max_diff": float(diffs.max()),
                      "ahead": int((diffs > 0).sum())}
        rows.append(row)
    return rows


def markdown(rows: list[dict], base_scores: dict, judges=JUDGES) -> str:
    head = "| setting | seeds | " + " | ".join(f"{j} (Δ vs base [95% t over seeds])" for j in judges) + " | diversity |"
    lines = [head, "|---" * (len(judges) + 3) + "|"]
    lines.append("| base | – | " + " | ".join(f"{base_scores[j]:.3f}" for j in judges)
                 + f" | {base_scores['diversity']:.2f} |")
    for r in rows:
        cells = []
        for j in judges:
            c = r[j]
            ci = "" if np.isnan(c["lo"]) else f" [{c['lo']:+.3f}, {c['hi']:+.3f}]"
            cells.append(f"{c['mean']:.3f} ({c['diff']:+.3f}{ci})")
        lines.append(f"| {r['setting']} | {r['seeds']} | " + " | ".join(cells) + f" | {r['diversity']['mean']:.2f} |")
    return "\n".join(lines)


# ---------------------------------------------------------------- pair subsets


def subset_parquet(src: Path, out: Path, rows: np.ndarray) -> Path:
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        table = pq.read_table(src)
        pq.write_table(table.take(np.sort(rows)), out)
    return out


def per_digit_rows(src: Path, per_digit: int) -> np.ndarray:
    """The first `per_digit` rows of each digit (the builder writes digits in blocks)."""
    captions = pq.read_table(src, columns=["caption"]).column("caption").to_pylist()
    seen: dict[str, int] = {}
    keep = []
    for i, c in enumerate(captions):
        if seen.get(c, 0) < per_digit:
            keep.append(i)
            seen[c] = seen.get(c, 0) + 1
    return np.array(keep)


def pair_stats(parquet: Path) -> dict:
    t = pq.read_table(parquet, columns=["label_0", "utility_0", "utility_1", "model_0", "model_1"]).to_pydict()
    lab = np.array(t["label_0"])
    u = np.stack([t["utility_0"], t["utility_1"]], 1)
    dec = lab != 0.5
    gap = np.abs(u[:, 0] - u[:, 1])[dec]
    win = np.where(lab[dec] == 1.0, u[dec, 0], u[dec, 1])
    lose = np.where(lab[dec] == 1.0, u[dec, 1], u[dec, 0])
    return {"rows": int(len(lab)), "usable": int(dec.sum()), "gap_mean": float(gap.mean()),
            "gap_median": float(np.median(gap)), "winner_u": float(win.mean()), "loser_u": float(lose.mean())}


if __name__ == "__main__":
    from experiments import main  # noqa: E402  (the subcommands live beside this file)

    main(argparse.ArgumentParser(description=__doc__))
