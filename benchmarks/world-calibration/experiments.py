"""The calibration experiments (issue 16), one subcommand each; README.md reads the results.

Each writes `results/<name>.json` (and its markdown table) under this folder. Training runs
and their evaluation scores live under --out (not committed).
"""

from __future__ import annotations

import json
from pathlib import Path

import calib
import numpy as np

from seppo.config import load_config
from seppo.embedded.world import ensure_pick_a_digit
from seppo.implicit import implicit_accuracy_curve

RESULTS = calib.HERE / "results"
DPO = ["method=dpo"]
SHIPPED = ["beta=2000", "train.lr=1e-4"]  # the shipped Diffusion-DPO setting
FINE = ["train.iterations=10", "train.updates_per_iteration=10"]  # same 100 updates, a snapshot every 10


def _write(name: str, payload: dict, table: str | None = None) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(payload, indent=1))
    if table:
        (RESULTS / f"{name}.md").write_text(table + "\n")
    print(table or json.dumps(payload, indent=1))


def _curves(runs: dict[str, Path], heldout: Path, out: Path) -> dict:
    curves = {}
    for name, run in runs.items():
        cache = out / f"curve-{name}.json"
        if cache.is_file():
            curves[name] = json.loads(cache.read_text())
            continue
        c = implicit_accuracy_curve(run, heldout, n_train=256, n_heldout=256, draws=2)
        assert not set(map(tuple, c["train_keys"])) & set(map(tuple, c["heldout_keys"]))
        slim = {k: v for k, v in c.items() if not k.endswith("_keys")}
        cache.write_text(json.dumps(slim))
        curves[name] = slim
    return curves


def pools(args) -> dict:
    """The pair sets every diagnosis draws on: a big training pool and held-out pairs."""
    world = load_config(calib.CONFIG, args.world).pretrain
    pool, pool_stats = ensure_pick_a_digit(world, pairs_per_digit=args.pool_per_digit)
    heldout, held_stats = ensure_pick_a_digit(world, split="heldout", pairs_per_digit=60)
    return {"pool": pool, "pool_stats": pool_stats, "heldout": heldout, "heldout_stats": held_stats}


def epochs(args) -> None:
    """Same 100 updates at batch 32 over 1×, 2×, 5×, 10× as many pairs as the shipped 1,000."""
    p = pools(args)
    out = Path(args.out) / "epochs"
    jobs, groups, subsets = [], {}, {}
    for mult in args.mults:
        rows = calib.per_digit_rows(p["pool"], 100 * mult)
        path = calib.subset_parquet(p["pool"], out / "data" / f"x{mult}.parquet", rows)
        subsets[f"x{mult}"] = calib.pair_stats(path)
        for seed in args.seeds:
            run = out / "runs" / f"dpo-x{mult}-s{seed}"
            jobs.append((run, [*DPO, *SHIPPED, *FINE, "data.source=pickapic", f"data.path={path}", f"seed={seed}"]))
            groups.setdefault(f"x{mult}", []).append(run.name)
    runs = calib.train_many(jobs)
    models = {"base": str(calib.base_folder())} | {r.name: str(r) for r in runs}
    scores = calib.evaluate_models(models, out)
    curves = _curves({r.name: r for r in runs}, p["heldout"], out)
    rows = calib.seed_level(scores, "base", groups)
    table = calib.markdown(rows, scores["base"])
    table += "\n\n" + _curve_table(curves, groups)
    _write("epochs", {"subsets": subsets, "rows": rows, "curves": curves,
                      "scores": {k: {j: v for j, v in s.items() if j != "_scores"} for k, s in scores.items()}}, table)


def _curve_table(curves: dict, groups: dict) -> str:
    lines = ["| setting | step | train implicit acc | held-out implicit acc | train logit | held-out logit |",
             "|---|---|---|---|---|---|"]
    for group, names in groups.items():
        steps = [r["step"] for r in curves[names[0]]["rows"]]
        for i, step in enumerate(steps):
            if step == 0 or (step % 20 and step != steps[-1]):
                continue
            vals = {k: np.mean([curves[n]["rows"][i][k] for n in names]) for k in
                    ("train_acc", "heldout_acc", "train_logit", "heldout_logit")}
            lines.append(f"| {group} | {step} | {vals['train_acc']:.3f} | {vals['heldout_acc']:.3f} "
                         f"| {vals['train_logit']:.2f} | {vals['heldout_logit']:.2f} |")
    return "\n".join(lines)


def gap(args) -> None:
    """Same number of pairs, same 100 updates, pairs chosen by quality gap or by generators."""
    import pyarrow.parquet as pq

    p = pools(args)
    out = Path(args.out) / "gap"
    t = pq.read_table(p["pool"], columns=["label_0", "utility_0", "utility_1", "model_0", "model_1"]).to_pydict()
    lab = np.array(t["label_0"])
    g = np.abs(np.array(t["utility_0"]) - np.array(t["utility_1"]))
    m0, m1 = np.array(t["model_0"]), np.array(t["model_1"])
    loser_is_base = np.where(lab == 1.0, m1 == "base", m0 == "base")
    usable = np.flatnonzero(lab != 0.5)
    rng = np.random.default_rng(0)
    n = args.n_pairs
    q = np.quantile(g[usable], [1 / 3, 2 / 3])
    choices = {
        "random": rng.choice(usable, n, replace=False),
        "small-gap": rng.choice(usable[g[usable] < q[0]], n, replace=False),
        "large-gap": rng.choice(usable[g[usable] >= q[1]], n, replace=False),
        "loser-not-base": rng.choice(usable[~loser_is_base[usable]], n, replace=False),
        "loser-base": rng.choice(usable[loser_is_base[usable]], n, replace=False),
    }
    settings, subsets = {}, {}
    for name, rows in choices.items():
        path = calib.subset_parquet(p["pool"], out / "data" / f"{name}.parquet", rows)
        subsets[name] = calib.pair_stats(path)
        settings[name] = [*DPO, *SHIPPED, *FINE, "data.source=pickapic", f"data.path={path}"]
    compare("gap", settings, args.seeds, out, heldout=p["heldout"], extra={"subsets": subsets, "quantiles": q.tolist()})


def compare(name: str, settings: dict[str, list[str]], seeds: list[int], out: Path, *, heldout: Path | None = None,
            config: Path = calib.CONFIG, base_overrides: list[str] = (), extra: dict | None = None) -> list[dict]:
    """Train every setting with every seed, evaluate against the base, seed-level table."""
    jobs, groups = [], {}
    for setting, overrides in settings.items():
        for seed in seeds:
            run = out / "runs" / f"{setting}-s{seed}"
            jobs.append((run, [*overrides, f"seed={seed}"]))
            groups.setdefault(setting, []).append(run.name)
    runs = calib.train_many(jobs, config)
    models = {"base": str(calib.base_folder(config, base_overrides))} | {r.name: str(r) for r in runs}
    scores = calib.evaluate_models(models, out, world_config=config)
    rows = calib.seed_level(scores, "base", groups)
    table = calib.markdown(rows, scores["base"])
    payload = {"settings": settings, "seeds": seeds, "rows": rows,
               "scores": {k: {j: v for j, v in s.items() if j != "_scores"} for k, s in scores.items()}}
    if heldout is not None:
        curves = _curves({r.name: r for r in runs}, heldout, out)
        table += "\n\n" + _curve_table(curves, groups)
        payload["curves"] = curves
    if extra:
        payload |= extra
        table += "\n\n" + "\n".join(f"- {k}: {v}" for k, v in extra.items())
    _write(name, payload, table)
    return rows


def batch(args) -> None:
    """Gradient noise: the same 3,200 pair views in fewer, bigger batches; and more views."""
    p = pools(args)
    data = ["data.source=pickapic", f"data.path={p['pool']}"]
    settings = {
        f"b32-u100-lr{lr}": [*DPO, "beta=2000", f"train.lr={lr}", "train.batch_size=32", *FINE, *data] for lr in args.lrs
    } | {
        f"b128-u25-lr{lr}": [*DPO, "beta=2000", f"train.lr={lr}", "train.batch_size=128", "train.iterations=5",
                             "train.updates_per_iteration=5", *data] for lr in args.lrs
    } | {
        f"b128-u100-lr{lr}": [*DPO, "beta=2000", f"train.lr={lr}", "train.batch_size=128", *FINE, *data] for lr in args.lrs
    }
    compare("batch", settings, args.seeds, Path(args.out) / "batch")


def _dpo(beta: float, lr: str, batch: int, iterations: int, updates: int, data: list[str]) -> list[str]:
    return [*DPO, f"beta={beta:g}", f"train.lr={lr}", f"train.batch_size={batch}", f"train.iterations={iterations}",
            f"train.updates_per_iteration={updates}", *data]


def screen(args) -> None:
    """Diffusion-DPO settings around the neutral b128-u25-lr1e-4 of `batch`, on the big pool."""
    p = pools(args)
    data = ["data.source=pickapic", f"data.path={p['pool']}"]
    settings = {
        "b128-u25-lr5e-5-b2000": _dpo(2000, "5e-5", 128, 5, 5, data),
        "b128-u25-lr1e-4-b5000": _dpo(5000, "1e-4", 128, 5, 5, data),
        "b128-u25-lr1e-4-b2000": _dpo(2000, "1e-4", 128, 5, 5, data),
        "b256-u25-lr1e-4-b2000": _dpo(2000, "1e-4", 256, 5, 5, data),
        "b128-u50-lr5e-5-b2000": _dpo(2000, "5e-5", 128, 5, 10, data),
    }
    compare("screen", settings, args.seeds, Path(args.out) / "screen")


def long(args) -> None:
    """The real run's epochs over the pairs: Diffusion-DPO on SD-1.5 makes 2,000 updates at batch
    2,048 over Pick-a-Pic v2 (about 4.8 epochs); here 250 updates at batch 128 over the 10× pool
    (8,489 usable pairs: 3.8 epochs), ten times the pair views of `screen`, at small learning rates."""
    p = pools(args)
    data = ["data.source=pickapic", f"data.path={p['pool']}"]
    settings = {f"b128-u250-lr{lr}-b5000": _dpo(5000, lr, 128, 5, 50, data) for lr in args.lrs}
    compare("long", settings, args.seeds, Path(args.out) / "long", extra={"pool": p["pool_stats"]})


def relabel(src: Path, out: Path, tau: float, seed: int = 0, tie_margin: float = 0.02) -> Path:
    """The same images relabelled by a noisy annotator: side 0 wins with probability σ((u_0 − u_1)/τ)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if out.exists():
        return out
    table = pq.read_table(src)
    u0, u1 = (np.asarray(table.column(c).to_pylist()) for c in ("utility_0", "utility_1"))
    p0 = 1 / (1 + np.exp(-(u0 - u1) / tau))
    draw = np.random.default_rng(seed).random(len(u0))
    label = np.where(np.abs(u0 - u1) < tie_margin, 0.5, (draw < p0).astype(float))
    table = table.set_column(table.schema.get_field_index("label_0"), "label_0", pa.array(label))
    table = table.set_column(table.schema.get_field_index("label_1"), "label_1", pa.array(1 - label))
    out.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, out)
    return out


def labels(args) -> None:
    """The world's labels: a noisy annotator (Bradley–Terry choices at temperature τ), or only the
    pairs with the largest quality gaps; two Diffusion-DPO settings."""
    import pyarrow.parquet as pq

    p = pools(args)
    out = Path(args.out) / "labels"
    t = pq.read_table(p["pool"], columns=["label_0", "utility_0", "utility_1"]).to_pydict()
    g = np.abs(np.array(t["utility_0"]) - np.array(t["utility_1"]))
    usable = np.flatnonzero(np.array(t["label_0"]) != 0.5)
    q = np.quantile(g[usable], [1 / 3, 2 / 3])
    data = {
        "tau0.05": relabel(p["pool"], out / "data" / "tau0.05.parquet", 0.05),
        "tau0.1": relabel(p["pool"], out / "data" / "tau0.1.parquet", 0.1),
        "top-third": calib.subset_parquet(p["pool"], out / "data" / "top-third.parquet", usable[g[usable] >= q[1]]),
        "top-two-thirds": calib.subset_parquet(p["pool"], out / "data" / "top-two-thirds.parquet", usable[g[usable] >= q[0]]),
    }
    settings, subsets = {}, {}
    for name, path in data.items():
        subsets[name] = calib.pair_stats(path)
        d = ["data.source=pickapic", f"data.path={path}"]
        settings[f"{name}-b32-u100"] = _dpo(2000, "1e-4", 32, 10, 10, d)
        settings[f"{name}-b128-u25"] = _dpo(2000, "1e-4", 128, 5, 5, d)
    compare("labels", settings, args.seeds, out, extra={"subsets": subsets})


def recipe(args) -> None:
    """Diffusion-DPO's own recipe (REFERENCE.md): 20% blank captions, a linear warm-up of a quarter of the run."""
    p = pools(args)
    data = ["data.source=pickapic", f"data.path={p['pool']}"]
    settings = {}
    for name, extra in {"blank": ["data.empty_prompt_prob=0.2"], "warmup": ["train.lr_warmup_steps=25"],
                        "blank+warmup": ["data.empty_prompt_prob=0.2", "train.lr_warmup_steps=25"]}.items():
        settings[f"{name}-b32-u100"] = [*_dpo(2000, "1e-4", 32, 10, 10, data), *extra]
        settings[f"{name}-b128-u25"] = [*_dpo(2000, "1e-4", 128, 5, 5, data),
                                        *[e.replace("=25", "=6") for e in extra]]
    compare("recipe", settings, args.seeds, Path(args.out) / "recipe")


def main(parser) -> None:
    parser.add_argument("experiment", choices=["epochs", "gap", "batch", "screen", "labels", "recipe", "long"])
    parser.add_argument("--lrs", nargs="+", default=["1e-4", "3e-4"])
    parser.add_argument("--out", default="/tmp/wexp/calib")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--mults", type=int, nargs="+", default=[1, 2, 5, 10])
    parser.add_argument("--n-pairs", type=int, default=845)
    parser.add_argument("--pool-per-digit", type=int, default=1000)
    parser.add_argument("--world", nargs="*", default=[], help="config overrides naming the world")
    args = parser.parse_args()
    {"epochs": epochs, "gap": gap, "batch": batch, "screen": screen, "labels": labels, "recipe": recipe, "long": long}[args.experiment](args)
