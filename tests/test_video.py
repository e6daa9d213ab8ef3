"""The video path: moving-digits judges on hand-made clips, `seppo train` on a tiny
UNetMotionModel end to end, the export loading into diffusers' AnimateDiffPipeline, and
`run_video_demo(quick=True)`.

The quick demo builds (once per session, in the tests' $SEPPO_CACHE) the tiny image base,
a tiny MotionAdapter pretrained for a few steps, and Moving-Digits pairs, then trains SFT and
SePPO through `seppo.train.train(load_config(...))`; the end-to-end tests read its runs.
"""

import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from test_report import Page, decode

from seppo.embedded.clips import DIRECTIONS, clip_arrays, gif_bytes, moving_clip, parse_direction, to_frames, video_prompt
from seppo.embedded.digits import parse_digit, real_digits
from seppo.embedded.video_judges import FrameDigitJudge, MotionJudge, VideoAnnotator, temporal_consistency


@pytest.fixture(scope="module")
def real_three():
    images, labels = real_digits("judge")
    return images[np.flatnonzero(labels == 3)[0]]


# ---------------------------------------------------------------- the world and its judges


def test_prompts_and_clips(real_three):
    prompt = video_prompt(3, "left")
    assert prompt == "a handwritten digit 3 moving left"
    assert parse_digit(prompt) == 3 and parse_direction(prompt) == "left"
    assert parse_digit("a handwritten 3 moving left") == 3 and parse_direction("a handwritten 3 moving up") == "up"
    assert parse_direction("a handwritten digit 3") is None
    clip = moving_clip(real_three, "left")
    assert clip.shape == (4, 16, 16)  # the world's clip: 4 frames at 2 px, setting off from the digit
    np.testing.assert_array_equal(clip[0], real_three)  # the first frame is the digit as given
    np.testing.assert_array_equal(clip[1], np.roll(real_three, -2, axis=1))  # two pixels left per frame, wrapping
    np.testing.assert_array_equal(clip[3], np.roll(real_three, -6, axis=1))
    centred = moving_clip(real_three, "up", num_frames=8, speed=1, centred=True)  # the world's first layout
    np.testing.assert_array_equal(centred[3], real_three)
    np.testing.assert_array_equal(centred[7], np.roll(real_three, -4, axis=0))


def test_motion_judge_reads_the_direction(real_three):
    judge = MotionJudge()
    for direction in DIRECTIONS:
        clip = to_frames(moving_clip(real_three, direction))
        scores = {d: judge.score([clip], [video_prompt(3, d)])[0] for d in DIRECTIONS}
        assert scores[direction] == 1.0, (direction, scores)
        assert all(s == 0.0 for d, s in scores.items() if d != direction), (direction, scores)
    still = np.repeat(real_three[None], 8, axis=0)
    assert judge.score([still], ["a handwritten digit 3 moving left"])[0] == 0.0
    fast = moving_clip(real_three, "right", speed=2)
    assert judge.score([fast], ["a handwritten digit 3 moving right"])[0] == 1.0


def test_motion_judge_on_many_real_clips_and_on_random_motion():
    """≥ 0.9 on real moving clips of every digit and direction; about chance (¼) when every
    frame step is a random one of the four moves; 0 when nothing moves."""
    images, labels = real_digits("judge")
    rng = np.random.default_rng(0)
    judge = MotionJudge()
    picks = [int(rng.choice(np.flatnonzero(labels == d))) for d in range(10) for _ in range(3)]  # 30 digits
    for direction in DIRECTIONS:
        clips = np.stack([moving_clip(images[i], direction) for i in picks])
        assert judge.score_arrays(clips, [direction] * len(picks)).mean() >= 0.9, direction
    moves = list(DIRECTIONS.values())
    random_clips, still_clips = [], []
    for i in rng.choice(len(images), 400):
        frames, shift = [images[i]], np.zeros(2, dtype=int)
        for _ in range(7):
            shift += moves[rng.integers(4)]
            frames.append(np.roll(images[i], tuple(shift), axis=(0, 1)))
        random_clips.append(np.stack(frames))
        still_clips.append(np.repeat(images[i][None], 8, axis=0))
    asked = [list(DIRECTIONS)[k] for k in rng.integers(4, size=400)]
    random_score = judge.score_arrays(np.stack(random_clips), asked).mean()
    assert 0.2 <= random_score <= 0.3, random_score
    assert judge.score_arrays(np.stack(still_clips), asked).mean() == 0.0


def test_frame_digit_judge_and_consistency(real_three):
    clip = moving_clip(real_three, "down")
    judge = FrameDigitJudge()
    right, wrong = judge.score([clip, clip], ["a handwritten digit 3 moving down", "a handwritten digit 8 moving down"])
    assert right > 0.9 and wrong < 0.1
    noise = np.random.default_rng(0).uniform(-1, 1, (1, len(clip), 16, 16)).astype(np.float32)
    assert judge.score(noise, ["a handwritten digit 3 moving down"])[0] < 0.1
    still = np.repeat(real_three[None], len(clip), axis=0)
    # ink cosine: a still clip is 1, a sliding digit a little less, noise far less
    c_still, c_moving, c_noise = temporal_consistency([still, clip, noise[0]])
    assert c_still == pytest.approx(1.0) and 0.8 < c_moving < 1.0 and c_noise < c_moving


def test_video_annotator_prefers_the_prompted_motion(real_three):
    from seppo.embedded.judge import load_annotator

    annotator = VideoAnnotator(load_annotator())
    left, right = moving_clip(real_three, "left"), moving_clip(real_three, "right")
    assert annotator.prefer(left, right, "a handwritten digit 3 moving left") == 1.0
    assert annotator.prefer(left, right, "a handwritten digit 3 moving right") == 0.0
    assert annotator.prefer(left, left.copy(), "a handwritten digit 3 moving left") == 0.5  # a tie


def test_gif_keeps_every_frame_even_identical_ones(real_three):
    from seppo.data.images import decode_video

    still = np.repeat(real_three[None], 8, axis=0)  # Pillow would merge identical frames
    frames = decode_video(gif_bytes(to_frames(still)), where="still", num_frames=8)
    assert len(frames) == 8
    assert np.abs(clip_arrays([frames])[0] - still).max() <= 2 / 255 + 1e-6  # one grey level at most


# ---------------------------------------------------------------- seppo train on the video model


@pytest.fixture(scope="module")
def quick_demo(tmp_path_factory):
    from seppo.demo_video import run_video_demo

    out = tmp_path_factory.mktemp("video-demo")
    t0 = time.time()
    summary = run_video_demo(out, quick=True)
    print(f"\nrun_video_demo(quick=True): {time.time() - t0:.1f} s (timings {summary['timings']})")
    return out, summary


def test_quick_demo_writes_its_report(quick_demo):
    out, summary = quick_demo
    report = out / "report"
    for name in ("table.md", "summary.json", "base.gif", "sft.gif", "seppo.gif"):
        assert (report / name).is_file(), name
    for model in ("base", "sft", "seppo"):
        for judge in ("digit", "motion", "consistency"):
            s = summary["results"][model][judge]
            assert 0.0 <= s["lo"] <= s["mean"] <= s["hi"] <= 1.0 + 1e-9
    from PIL import Image

    assert Image.open(report / "seppo.gif").n_frames == 4
    # the HTML report: results first, then the same prompt and noise across models as animated GIFs
    text = (report / "report.html").read_text()
    page = Page(text)
    assert page.sections == ["results", "side-by-side", "curves", "pool", "config"]
    cells = [(src, alt) for src, alt in page.images if " — " in alt and "θ" not in alt]
    assert {alt.split(" — ")[1] for _, alt in cells} >= {"base", "sft", "dpo", "seppo"}
    assert all(decode(src).n_frames == 4 for src, _ in cells)


@pytest.mark.parametrize("method", ["sft", "seppo"])
def test_train_moves_only_the_motion_modules(quick_demo, method):
    from safetensors.torch import load_file

    out, summary = quick_demo
    run, base = Path(summary["runs"][method]), Path(summary["base"])
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and all(np.isfinite(r["loss"]) for r in rows)
    final = run / "final"
    trained = load_file(final / "motion_adapter" / "diffusion_pytorch_model.safetensors")
    before = load_file(base / "motion_adapter" / "diffusion_pytorch_model.safetensors")
    assert trained.keys() == before.keys()
    assert any(not torch.equal(trained[k], before[k]) for k in trained), "motion modules did not move"
    image_after = load_file(final / "unet" / "diffusion_pytorch_model.safetensors")
    image_before = load_file(base / "unet" / "diffusion_pytorch_model.safetensors")
    assert all(torch.equal(image_after[k], image_before[k]) for k in image_before), "image weights must stay frozen"


def test_video_reference_clips_come_from_the_drawn_reference(quick_demo):
    """On the video model, clips generated inside as_reference() with snapshot θ_1 loaded equal
    clips from a policy whose motion modules are θ_1, and differ from the policy's own."""
    from seppo.backbone import load_backbone
    from seppo.sampler import generate

    out, summary = quick_demo
    base = Path(summary["base"])

    def video_backbone():
        bb = load_backbone(base, motion_adapter=str(base / "motion_adapter"), num_frames=8)
        bb.setup_training("full")
        return bb

    backbone = video_backbone()
    theta1 = {k: v + 0.05 * torch.randn_like(v) for k, v in backbone.trainable_state().items()}
    assert theta1 and all("motion_modules" in k for k in theta1)  # only the motion modules train
    backbone.load_reference_state(theta1)
    cond = backbone.encode_prompts(["a handwritten digit 3 moving left", "a handwritten digit 5 moving up"])
    kw = dict(shape=backbone.sample_shape(16), seed=0, step=0, indices=[0, 1], steps=2, guidance=3.0)
    with torch.no_grad():
        with backbone.as_reference():
            as_reference = generate(backbone, cond, **kw)
        as_policy = generate(backbone, cond, **kw)
        other = video_backbone()
        other.load_trainable_state(theta1)
        with_theta1 = generate(other, cond, **kw)
    assert as_reference.shape == (2, 1, 8, 16, 16)
    torch.testing.assert_close(as_reference, with_theta1, atol=1e-6, rtol=0)
    assert not torch.allclose(as_reference, as_policy, atol=1e-3)


def test_export_loads_into_animatediff_pipeline(quick_demo):
    """The export is plain diffusers: AnimateDiffPipeline from its folders, no seppo code."""
    from diffusers import AnimateDiffPipeline, DDIMScheduler, MotionAdapter, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    from seppo.models import load_for_sampling

    out, summary = quick_demo
    final = Path(summary["runs"]["seppo"]) / "final"
    pipe = AnimateDiffPipeline(
        vae=None, text_encoder=CLIPTextModel.from_pretrained(final / "text_encoder"),
        tokenizer=CLIPTokenizer.from_pretrained(final / "tokenizer"),
        unet=UNet2DConditionModel.from_pretrained(final / "unet"),
        motion_adapter=MotionAdapter.from_pretrained(final / "motion_adapter"),
        scheduler=DDIMScheduler.from_pretrained(final / "scheduler"))
    # A pixel-space model has no VAE; the pipeline then assumes a scale factor of 8, so ask
    # for 128 px to get 16×16 samples, and take them as "latents" (no decoding).
    frames = pipe("a handwritten digit 3 moving left", num_frames=8, height=128, width=128, num_inference_steps=2,
                  guidance_scale=3.0, output_type="latent", generator=torch.Generator().manual_seed(0)).frames
    assert frames.shape == (1, 1, 8, 16, 16) and torch.isfinite(frames).all()
    # The pipeline's UNet is the trained model seppo samples from.
    ours = load_for_sampling(str(final.parent), num_frames=8)
    x, t, hidden = torch.randn(1, 1, 8, 16, 16), torch.tensor([500]), torch.randn(8, 8, 32)
    with torch.no_grad():
        torch.testing.assert_close(pipe.unet(x, t, encoder_hidden_states=hidden).sample,
                                   ours.unet(x, t, encoder_hidden_states=hidden).sample)


def _clip_folder(root: Path) -> Path:
    """An imagefolder of real moving clips, one per direction, frames as PNGs (not the demo's GIFs)."""
    images, labels = real_digits("judge")
    rows = []
    for i, direction in enumerate(DIRECTIONS):
        folder = root / f"clip{i}"
        folder.mkdir(parents=True)
        for f, frame in enumerate(to_frames(moving_clip(images[i], direction, num_frames=8, speed=1))):
            frame.save(folder / f"{f:02d}.png")
        rows.append(json.dumps({"file_name": f"clip{i}", "text": video_prompt(int(labels[i]), direction)}))
    (root / "metadata.jsonl").write_text("\n".join(rows) + "\n")
    return root


def _video_run(tmp_path: Path, base: Path, *overrides: str) -> Path:
    from seppo.config import load_config
    from seppo.train import train

    cfg = load_config(Path(__file__).parents[1] / "configs/digits-seppo.yaml", [
        "method=seppo", f"model.path={base}", f"model.motion_adapter={base / 'motion_adapter'}",
        "data.source=imagefolder", f"data.path={_clip_folder(tmp_path / 'clips')}", "data.num_frames=6",
        "data.frame_stride=1", "train.iterations=1", "train.updates_per_iteration=1", "train.batch_size=2",
        "sampler.steps=1", "log.progress=false", "log.report_to=none", "checkpoints.every=0",
        f"output_dir={tmp_path / 'run'}", *overrides])
    return train(cfg)


def test_train_on_hand_made_frame_folders(tmp_path, quick_demo):
    """`seppo train` on a frame-folder imagefolder of real moving clips (not the demo's GIFs)."""
    out, summary = quick_demo
    run = _video_run(tmp_path, Path(summary["base"]))
    assert (run / "final" / "motion_adapter" / "config.json").is_file()
    row = json.loads((run / "metrics.jsonl").read_text().splitlines()[0])
    assert np.isfinite(row["loss"]) and row["reference"] == 0


def test_motion_lora_exports_and_loads_in_animatediff(tmp_path, quick_demo):
    """`train.mode=lora` on video adapts the motion modules' attention only; the export loads with
    diffusers' own `AnimateDiffPipeline.load_lora_weights`, in a process that never imports seppo,
    and gives the UNet seppo samples from."""
    import subprocess
    import sys

    from safetensors.torch import load_file

    from seppo.models import load_for_sampling

    out, summary = quick_demo
    base = Path(summary["base"])
    run = _video_run(tmp_path, base, "train.mode=lora", "train.lr=1e-2")
    keys = list(load_file(run / "final" / "pytorch_lora_weights.safetensors"))
    assert keys and all(".motion_modules." in k for k in keys), [k for k in keys if ".motion_modules." not in k][:3]
    x, t, hidden = torch.randn(1, 1, 6, 16, 16, generator=torch.Generator().manual_seed(0)), 500, torch.randn(6, 8, 32)
    torch.save({"x": x, "hidden": hidden}, tmp_path / "input.pt")
    code = f"""
import sys, torch
from diffusers import AnimateDiffPipeline, DDIMScheduler, MotionAdapter, UNet2DConditionModel
from transformers import CLIPTextModel, CLIPTokenizer
base = {str(base)!r}
pipe = AnimateDiffPipeline(vae=None, text_encoder=CLIPTextModel.from_pretrained(base + "/text_encoder"),
    tokenizer=CLIPTokenizer.from_pretrained(base + "/tokenizer"), unet=UNet2DConditionModel.from_pretrained(base + "/unet"),
    motion_adapter=MotionAdapter.from_pretrained(base + "/motion_adapter"), scheduler=DDIMScheduler.from_pretrained(base + "/scheduler"))
inp = torch.load({str(tmp_path / 'input.pt')!r})
with torch.no_grad():
    before = pipe.unet(inp["x"], {t}, encoder_hidden_states=inp["hidden"]).sample
    pipe.load_lora_weights({str(run / 'final')!r})
    after = pipe.unet(inp["x"], {t}, encoder_hidden_states=inp["hidden"]).sample
torch.save({{"before": before, "after": after}}, {str(tmp_path / 'plain.pt')!r})
assert "seppo" not in sys.modules
print("ok")
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr[-2000:]
    plain = torch.load(tmp_path / "plain.pt")
    ours = load_for_sampling(str(run), num_frames=6)
    with torch.no_grad():
        ours_out = ours.unet(x, t, encoder_hidden_states=hidden).sample
    assert (plain["after"] - plain["before"]).abs().max() > 1e-4, "the trained LoRA must change the output"
    torch.testing.assert_close(plain["after"], ours_out, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------- the video base


def test_shipped_video_world_is_copied_prebuilt_and_loads(tmp_path, monkeypatch):
    """`seppo demo --video` and `seppo benchmark --video` on a fresh clone copy the packaged video
    world (base, strong sibling, Moving-Digits pairs) instead of building it; the copies load with
    the real loading code. A key out of step with the package (VideoWorldConfig, VIDEO_VERSION,
    the image world's key) fails here."""
    from seppo.embedded import video_world
    from seppo.embedded.budget import DEMO_CONFIG
    from seppo.embedded.video_budget import FULL
    from seppo.models import load_for_sampling

    def built(*_, **__):
        raise AssertionError("built instead of copied")

    monkeypatch.setenv("SEPPO_CACHE", str(tmp_path / "cache"))
    for name in ("pretrain_motion", "build_moving_digits_pairs", "ensure_embedded_base"):
        monkeypatch.setattr(video_world, name, built)
    from seppo.config import load_config

    pretrain = load_config(DEMO_CONFIG).pretrain
    data, stats = video_world.ensure_moving_digits(pretrain, FULL.video, progress=False)
    folders = video_world.ensure_video_base(pretrain, FULL.video, progress=False)
    assert stats["pairs"] == 40 * FULL.video.prompts_per_cell and (data / "train.parquet").is_file()
    assert len((data / "winners" / "metadata.jsonl").read_text().splitlines()) == stats["pairs"] - stats["ties"]
    for name in ("base", "strong"):
        backbone = load_for_sampling(str(folders[name]), num_frames=FULL.video.num_frames)
        assert backbone.unet.__class__.__name__ == "UNetMotionModel"
    assert not list((tmp_path / "cache").rglob("*.prebuilt-*"))


def test_the_video_base_learns_direction_on_a_small_budget(tmp_path):
    """The world's recipe (`pretrain_motion`: every layer and the text encoder training, clips
    that set off from the digit, the high-noise share and scaled frame positions) on a small
    budget: one real digit image, "left" and "up", 200 updates of 8 clips. Its samples move the
    way the word says. For every noise key both words are asked; a direction-blind model gives
    both the same clip, whose frame steps can match at most one of the two words, so it scores
    at most 0.5. Measured on the 2-core machine (2026-11-30): 0.81 (train 50–80 s); the same
    budget with the image layers and text encoder frozen (`train_layers="motion"`, the world's
    first base, AnimateDiff's way) 0.21–0.25."""
    from seppo.config import load_config
    from seppo.embedded.budget import DEMO_CONFIG
    from seppo.embedded.clips import video_prompt
    from seppo.embedded.pretrain import ensure_embedded_base
    from seppo.embedded.video_world import VideoWorldConfig, pretrain_motion
    from seppo.models import eval_seeds, load_for_sampling, sample

    pretrain = load_config(DEMO_CONFIG).pretrain
    image = ensure_embedded_base(pretrain, progress=False)  # copied prebuilt
    small = VideoWorldConfig(stages=(("left", "up"),), stage_steps=(200,), base_at=200, batch_size=8, train_images=1,
                             seed=0)
    folder = pretrain_motion(pretrain, small, image, tmp_path, progress=False)["base"]
    digit = int(real_digits("all")[1][0])
    words = ["left"] * 16 + ["up"] * 16
    clips = sample(load_for_sampling(str(folder), num_frames=small.num_frames), [video_prompt(digit, w) for w in words],
                   seeds=eval_seeds(0, 16) * 2, resolution=16, steps=6, guidance=3.0, batch_size=32)
    motion = MotionJudge().score(clips, [video_prompt(digit, w) for w in words])
    assert motion.mean() >= 0.65, (motion[:16].mean(), motion[16:].mean())
    assert min(motion[:16].mean(), motion[16:].mean()) >= 0.4  # each word moves its own way, not one of them
