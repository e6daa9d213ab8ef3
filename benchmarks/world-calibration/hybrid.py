"""Does Diffusion-DPO's loss come through the unconditional prediction? (issue 16, diagnosis)

`drift.py` found that both updates move the unconditional prediction ε_u as far as the
conditional one ε_c. This samples with the two halves of classifier-free guidance taken from
different models, ε̂ = ε_u(U) + w·(ε_c(C) − ε_u(U)), at the evaluation's w = 3, 20 DDIM steps:

- C = U = base: the base; C = U = run: the run as evaluated;
- C = run, U = base: the run's conditional prediction guided against the base's unconditional one;
- C = base, U = run: the reverse.

For the benchmark's 8 SFT and 8 Diffusion-DPO final runs, 100 images each (10 per digit, the
calibration's noise, shared by every variant), scored by the learned judge, the oracle, the
digit judge and the stroke term; each variant minus the base, 95% t-interval over training
seeds. Only base, SFT and Diffusion-DPO are looked at (issue 16, rule 3).

    SEPPO_CACHE=... python benchmarks/world-calibration/hybrid.py --bench BENCH
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import calib
import numpy as np
import torch

from seppo import rng
from seppo.embedded.budget import EVAL_GUIDANCE, EVAL_STEPS
from seppo.embedded.digits import digit_prompt, to_pil
from seppo.judges.registry import load_judge
from seppo.models import load_for_sampling
from seppo.sampler import ddim_schedule
from seppo.stats import t_interval

JUDGES = ["preference", "oracle", "digit", "stroke"]
PER_DIGIT = 10
SEED = 1000  # the calibration's evaluation noise


@torch.no_grad()
def sample(cond_model, uncond_model, digits: list[int], *, guidance: float = EVAL_GUIDANCE, steps: int = EVAL_STEPS):
    """ε̂ = ε_u(uncond_model) + w·(ε_c(cond_model) − ε_u(uncond_model)), DDIM → x_0 (B, 1, 16, 16)."""
    scheduler, timesteps = ddim_schedule(cond_model, steps)
    cond = cond_model.encode_prompts([digit_prompt(d) for d in digits])
    empty = uncond_model.encode_prompts([""] * len(digits))
    x = rng.per_sample_randn((1, 16, 16), seed=SEED, stream="eval", key=0, indices=list(range(len(digits))))
    x = x * scheduler.init_noise_sigma
    for t in timesteps:
        t_batch = torch.full((len(digits),), t)
        e_c = cond_model.predict(x, t_batch, cond)
        e_u = uncond_model.predict(x, t_batch, empty)
        x = scheduler.step(e_u + guidance * (e_c - e_u), t, x).prev_sample
    return x


def scores(x: torch.Tensor, digits: list[int], judges: dict) -> dict[str, float]:
    images = [to_pil(a[0].numpy()) for a in x.clamp(-1, 1)]
    prompts = [digit_prompt(d) for d in digits]
    return {name: float(np.mean(judge.score(images, prompts))) for name, judge in judges.items()}


def interval(values: list[float]) -> dict:
    diff, lo, hi = t_interval(values)
    return {"diff": diff, "lo": lo, "hi": hi, "ahead": int((np.asarray(values) > 0).sum()), "n": len(values)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bench", required=True, help="a `seppo benchmark --out` folder with runs/ and world.yaml")
    ap.add_argument("--seeds", type=int, default=8)
    args = ap.parse_args()
    torch.set_num_threads(1)
    bench = Path(args.bench)
    judges = {name: load_judge(name, {"config": str(bench / "world.yaml")} if name == "preference" else None)
              for name in JUDGES}
    digits = [d for d in range(10) for _ in range(PER_DIGIT)]
    base = load_for_sampling(str(calib.base_folder()))
    base_scores = scores(sample(base, base, digits), digits, judges)
    print("base", base_scores, flush=True)
    results = {"base": base_scores}
    for arm in ("sft", "dpo"):
        per_seed = {"run": [], "run_c+base_u": [], "base_c+run_u": []}
        for s in range(args.seeds):
            run = load_for_sampling(str(bench / "runs" / f"{arm}-s{s}"))
            for variant, (c, u) in {"run": (run, run), "run_c+base_u": (run, base), "base_c+run_u": (base, run)}.items():
                per_seed[variant].append(scores(sample(c, u, digits), digits, judges))
            print(arm, s, {v: per_seed[v][-1]["preference"] for v in per_seed}, flush=True)
        results[arm] = {variant: {j: interval([r[j] - base_scores[j] for r in rows]) | {"mean": float(np.mean([r[j] for r in rows]))}
                                  for j in JUDGES} for variant, rows in per_seed.items()}
    lines = ["| arm | variant | " + " | ".join(f"{j} (Δ vs base [95% t over seeds], seeds ahead)" for j in JUDGES) + " |",
             "|---" * (len(JUDGES) + 2) + "|",
             "| base | C = U = base | " + " | ".join(f"{base_scores[j]:.3f}" for j in JUDGES) + " |"]
    names = {"run": "C = U = run", "run_c+base_u": "C = run, U = base", "base_c+run_u": "C = base, U = run"}
    for arm in ("sft", "dpo"):
        for variant, cells in results[arm].items():
            lines.append(f"| {arm} | {names[variant]} | " + " | ".join(
                f"{c['mean']:.3f} ({c['diff']:+.3f} [{c['lo']:+.3f}, {c['hi']:+.3f}], {c['ahead']}/{c['n']})"
                for c in (cells[j] for j in JUDGES)) + " |")
    table = "\n".join(lines)
    (calib.HERE / "results").mkdir(exist_ok=True)
    (calib.HERE / "results" / "hybrid.json").write_text(json.dumps({"bench": str(bench), "results": results}, indent=1))
    (calib.HERE / "results" / "hybrid.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
