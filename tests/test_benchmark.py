"""The benchmark: grid growth and selection by hand, disjoint keys, seed-level tables, one tiny run per world."""

import base64
import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image
from test_report import Page, decode

from seppo.benchmark import (
    FINAL_EVAL_SEED,
    VALIDATION_EVAL_SEED,
    VIDEO_ARMS,
    VIDEO_JUDGES,
    BenchmarkPlan,
    _evaluate_here,
    check_disjoint,
    default_plan,
    run_benchmark,
    select,
    select_guidance,
    widen,
)
from seppo.benchmark_tables import arm_summary, comparisons, paired_summary, verdict
from seppo.config import load_config
from seppo.embedded.video_budget import QUICK as VIDEO_QUICK
from seppo.errors import SeppoError
from seppo.evaluate import sample_plan
from seppo.prompts import DIGIT_PROMPTS

ROOT = Path(__file__).parents[1]


def test_the_grid_grows_one_step_past_the_edge_where_the_best_point_sits():
    lrs = [1e-5, 3e-5, 1e-4, 3e-4]
    assert widen(lrs, 3e-4) == 1e-3
    assert widen(lrs, 1e-5) == 3e-6
    assert widen(lrs, 1e-4) is None
    assert widen([500.0, 2000.0, 5000.0], 5000.0) == 1e4
    assert widen([500.0, 2000.0, 5000.0], 500.0) == 100.0


def test_selection_takes_the_best_mean_over_seeds_and_ties_go_to_the_smaller_lr():
    scores = pd.DataFrame({"train.lr": [1e-4, 1e-4, 3e-4, 3e-4, 1e-5, 1e-5],
                           "score": [0.5, 0.7, 0.9, 0.2, 0.6, 0.6]})
    # means: 1e-4 → 0.6, 3e-4 → 0.55, 1e-5 → 0.6; the tie between 1e-5 and 1e-4 goes to 1e-5
    assert select(scores, ["train.lr"]) == {"train.lr": 1e-5}
    scores.loc[0, "score"] = 0.6  # 1e-4 → 0.65
    assert select(scores, ["train.lr"]) == {"train.lr": 1e-4}


def test_guidance_selection_takes_the_best_mean_and_ties_go_to_the_shared_scale():
    scores = pd.DataFrame({"guidance": [2.0, 2.0, 3.0, 3.0, 4.0, 4.0], "score": [6.0, 6.4, 6.1, 6.1, 5.0, 5.2]})
    assert select_guidance(scores, 3.0) == 2.0  # means 6.2, 6.1, 5.1
    scores.loc[1, "score"] = 6.2  # 2.0 → 6.1: a tie with 3.0, the shared scale wins
    assert select_guidance(scores, 3.0) == 3.0
    assert select_guidance(scores[scores["guidance"] != 3.0], 3.0) == 2.0


def test_tuning_never_reads_the_final_evaluation_keys():
    validation = sample_plan(DIGIT_PROMPTS, [VALIDATION_EVAL_SEED], 10)
    final = sample_plan(DIGIT_PROMPTS, [FINAL_EVAL_SEED + s for s in range(8)], 20)
    assert not set(validation["key"]) & set(final["key"])
    check_disjoint(validation, final)
    with pytest.raises(SeppoError, match="share 100 noise keys"):
        check_disjoint(validation, validation)


def _scores(effects: dict[str, list[float]], images: int = 50, noise: float = 0.05) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for arm, per_seed in effects.items():
        for s, effect in enumerate(per_seed):
            rows += [{"arm": arm, "train_seed": s, "k": k, "digit": effect + noise * rng.normal()} for k in range(images)]
    return pd.DataFrame(rows)


def test_seed_level_tables_pair_arms_by_seed():
    # a is 0.1 above the base at every seed, b equals the base on average but wanders by seed
    scores = _scores({"base": [0.5] * 4, "seppo": [0.6, 0.62, 0.58, 0.6], "sft": [0.3, 0.7, 0.4, 0.6]})
    arms = ["base", "sft", "seppo"]
    summary = {(r["arm"], r["judge"]): r for r in arm_summary(scores, ["digit"], arms)}
    assert summary[("seppo", "digit")]["seeds"] == 4
    assert summary[("seppo", "digit")]["unit"] == "training seeds"
    assert summary[("base", "digit")]["unit"] == "evaluation sets (untrained)"
    # the seed-level interval of the wandering arm is far wider than its within-run precision
    sft = summary[("sft", "digit")]
    assert sft["hi"] - sft["lo"] > 5 * (sft["within_run_seed0"][1] - sft["within_run_seed0"][0])
    paired = {(r["a"], r["b"]): r for r in paired_summary(scores, ["digit"], arms)}
    assert paired[("seppo", "base")]["resolved"] and paired[("seppo", "base")]["mean_diff"] > 0.08
    assert verdict(paired[("seppo", "base")]) == "seppo above base"
    assert not paired[("sft", "base")]["resolved"]
    assert verdict(paired[("sft", "base")]) == "not resolved at this budget"


def test_comparisons_name_base_baselines_and_ablations():
    pairs = comparisons(["base", "sft", "dpo", "seppo", "seppo-noflip", "spin"])
    assert ("seppo", "base") in pairs and ("seppo", "sft") in pairs and ("seppo", "dpo") in pairs
    assert ("seppo-noflip", "seppo") in pairs and ("spin", "seppo") in pairs
    assert ("sft", "seppo") not in pairs


@pytest.mark.slow
def test_tiny_benchmark_tunes_then_trains_every_arm_per_seed(tmp_path):
    plan = BenchmarkPlan(seeds=2, tune_seeds=1, lrs=[1e-4], betas=[2000.0], max_widen=0, select_judge="digit",
                         judges=["digit"], validation_per_prompt=1, final_per_prompt=1, eval_steps=2,
                         arms=["base", "sft", "seppo"], guidances=[2.0, 3.0])
    md = run_benchmark(ROOT / "configs/digits-seppo.yaml", out=tmp_path, plan=plan, quick=True, jobs=2, progress=False)
    text = md.read_text()
    assert "| seppo − base | digit |" in text and "## Selected settings" in text
    data = json.loads((tmp_path / "benchmark.json").read_text())
    assert data["selected"] == {"sft": {"train.lr": 1e-4}, "seppo": {"train.lr": 1e-4, "beta": 2000.0}}
    assert sorted(p.name for p in (tmp_path / "runs").iterdir() if p.is_dir()) == [
        "seppo-s0", "seppo-s1", "sft-s0", "sft-s1"]
    scores = pd.read_parquet(tmp_path / "scores.parquet")
    assert set(scores["train_seed"]) == {0, 1} and set(scores["arm"]) == {"base", "sft", "seppo"}
    # each seed set has its own evaluation keys, the same for every arm of that seed
    keys = scores.groupby(["train_seed", "arm"])["key"].apply(frozenset).unstack()
    assert keys.loc[0, "base"] == keys.loc[0, "seppo"] and keys.loc[0, "base"] != keys.loc[1, "base"]
    # the two seed sets were scored at once, each in a subprocess; scored here instead, the same numbers
    call = json.loads((tmp_path / "eval" / "s0" / "call.json").read_text())
    here, _ = _evaluate_here({**call, "out": None})
    pd.testing.assert_frame_equal(here, pd.read_parquet(tmp_path / "eval" / "s0" / "scores.parquet"),
                                  check_exact=True, check_dtype=False)
    # validation scores several runs in one evaluation: a model's scores do not depend on its company
    alone, _ = _evaluate_here({**call, "models": call["models"][-1:], "names": call["names"][-1:], "out": None})
    pd.testing.assert_frame_equal(alone.reset_index(drop=True),
                                  here[here["model"] == call["names"][-1]].reset_index(drop=True), check_exact=True)
    validation = json.loads((tmp_path / "tuning" / "runs" / "sft-lr0.0001-s1000" / "validation.json").read_text())
    assert validation["judge"] == "digit" and validation["keys"] == 10
    assert (tmp_path / "benchmark.png").stat().st_size > 0 and (tmp_path / "tuning.png").stat().st_size > 0
    # the SePPO runs kept their reference samples in the benchmark's shared folder (seppo.shared_samples)
    assert any((tmp_path / "reference-samples").glob("*.safetensors"))
    # at the shared scale a tuning run's phase-3 score is its validation score: only the base is sampled there
    g3 = tmp_path / "tuning" / "guidance" / "g3"
    assert json.loads((g3 / "sft-lr0.0001-s1000.json").read_text()) == validation
    assert json.loads((g3 / "call.json").read_text())["names"] == ["base"]
    # phase 3: each family's scale chosen on validation keys from the base and the tuning runs only
    guided = data["guided"]
    grid = pd.DataFrame(guided["grid"])
    assert sorted(grid["run"].unique()) == ["base", "seppo-lr0.0001-beta2000-s1000", "sft-lr0.0001-s1000"]
    assert len(grid) == 3 * 2 and "## Every arm at its own guidance scale" in md.read_text()
    for family, rows in grid.groupby("model"):
        assert guided["arms"][family] == select_guidance(rows, 3.0)
    by_scale = pd.read_parquet(tmp_path / "scores-guided.parquet")
    assert len(by_scale) == len(scores) and set(by_scale["train_seed"]) == {0, 1}
    for arm, scale in guided["arms"].items():
        rows = by_scale[by_scale["arm"] == arm].sort_values(["train_seed", "key"]).reset_index(drop=True)
        assert set(rows["guidance"]) == {scale}
        shared = scores[scores["arm"] == arm].sort_values(["train_seed", "key"]).reset_index(drop=True)
        assert list(rows["key"]) == list(shared["key"])  # the same final keys at whatever scale
        if scale == 3.0:  # kept from the shared table
            pd.testing.assert_frame_equal(rows, shared, check_exact=True)
        else:  # sampled again at its own scale
            assert (tmp_path / "eval-guided" / f"s0-g{scale:g}").is_dir() and not rows["digit"].equals(shared["digit"])
    # the HTML report: the seed-level table first, then seed 0's final models side by side
    text = (tmp_path / "report.html").read_text()
    parsed = Page(text)
    assert parsed.sections == ["results", "side-by-side", "curves", "pool", "config"]
    assert "2 training seeds" in text and text.index("<table") < text.index('id="side-by-side"')
    assert text.index("Every arm at its own guidance scale") < text.index('id="side-by-side"')
    cells = [alt for _, alt in parsed.images if " — " in alt]
    assert {alt.split(" — ")[1].split(" ")[0] for alt in cells} >= {"base", "sft", "seppo"}
    for src, _ in parsed.images:
        decode(src)


@pytest.mark.slow
def test_tiny_video_benchmark_compares_every_arm_on_clips(tmp_path):
    """`seppo benchmark --video --quick`, shrunk: every arm and judge in the table, the selected
    settings recorded, disjoint keys, seed 0's clips side by side as 8-frame GIFs the page links."""
    assert default_plan(video=True).seeds >= 5
    # the quick world at its smallest: one update per run, one digit × 4 directions, one DDIM step
    budget = dataclasses.replace(VIDEO_QUICK, iterations=1, sampler_steps=1, eval_digits=1, eval_steps=1)
    plan = dataclasses.replace(default_plan(budget), seeds=2, lrs=[1e-3], betas=[2000.0], max_widen=0)
    assert plan.select_judge == "video-prompt" and "video-oracle" in plan.judges  # selected by a judge that is not the oracle
    run_benchmark(ROOT / "configs/digits-seppo.yaml", out=tmp_path, plan=plan, video=budget, jobs=2, progress=False)
    data = json.loads((tmp_path / "benchmark.json").read_text())
    assert data["selected"] == {"sft": {"train.lr": 1e-3}, "dpo": {"train.lr": 1e-3, "beta": 2000.0},
                                "seppo": {"train.lr": 1e-3, "beta": 2000.0}}
    assert yaml.safe_load((tmp_path / "selected.yaml").read_text()) == data["selected"]
    cells = {(r["arm"], r["judge"]): r for r in data["summary"]}
    assert set(cells) == {(a, j) for a in VIDEO_ARMS for j in VIDEO_JUDGES}
    assert all(np.isfinite([r["mean"], r["lo"], r["hi"]]).all() and r["seeds"] == 2 for r in cells.values())
    table = (tmp_path / "benchmark.md").read_text()
    for arm in VIDEO_ARMS:
        assert f"\n| {arm} | " in table
    assert "| video-prompt | video-oracle | video-digit | motion | consistency |" in table
    # the runs are the video model's, motion modules only; DPO on the pairs, the others on winners
    run = load_config(tmp_path / "runs" / "seppo-noflip-s1" / "config.yaml")
    assert run.train.train_motion_only and run.data.num_frames == 4 and run.flipper == "none" and run.seed == 1
    assert run.model.motion_adapter and run.data.source == "imagefolder"
    assert load_config(tmp_path / "runs" / "dpo-s0" / "config.yaml").data.source == "pickapic"
    # tuning read the validation keys only: disjoint from every final key
    validation = pd.read_parquet(tmp_path / "tuning" / "validation" / "sft-lr0.001-s1000" / "scores.parquet")
    final = pd.read_parquet(tmp_path / "scores.parquet")
    assert set(final["train_seed"]) == {0, 1} and not set(validation["key"]) & set(final["key"])
    # the page: seed 0's clips of every arm, one prompt per direction, each a 4-frame GIF file it embeds and links
    text = (tmp_path / "report.html").read_text()
    page = Page(text)
    gifs = sorted((tmp_path / "gifs").glob("*.gif"))
    assert len(gifs) == 4 * len(VIDEO_ARMS)
    for gif in gifs:
        assert Image.open(gif).n_frames == 4
        assert f'href="gifs/{gif.name}"' in text and base64.b64encode(gif.read_bytes()).decode() in text
    assert {" ".join(alt.split(" — ")[0].split()[-2:]) for _, alt in page.images if " — " in alt} == {
        "moving left", "moving right", "moving up", "moving down"}


def test_a_run_whose_worker_server_ended_is_kept_if_finished_and_else_started_once_more(tmp_path, monkeypatch):
    """`workers.LostServer` (exit 255: the server ended before reporting the job) is not a failed
    run: a run that wrote its summary counts, one that did not is started again, once."""
    from seppo import benchmark, workers
    from seppo.run_dir import RunDir

    def fake(outcomes):
        calls = []

        def run(what, log_path, fn, *args):
            calls.append(what)
            finished, lost = outcomes[len(calls) - 1]
            if finished:
                path = RunDir(tmp_path / name).summary_path
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text("{}")
            if lost:
                raise workers.LostServer(f"{what}: lost")
        return run, calls

    for name, outcomes, expected in [("finished-then-lost", [(True, True)], 1),
                                     ("lost-then-finished", [(False, True), (True, False)], 2)]:
        run, calls = fake(outcomes)
        monkeypatch.setattr(workers, "run", run)
        assert benchmark.train_run(Path("c.yaml"), [], tmp_path / name) == tmp_path / name
        assert len(calls) == expected
    name = "lost-twice"
    run, calls = fake([(False, True), (False, True)])
    monkeypatch.setattr(workers, "run", run)
    with pytest.raises(workers.LostServer):
        benchmark.train_run(Path("c.yaml"), [], tmp_path / name)
    assert len(calls) == 2
