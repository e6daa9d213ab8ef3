"""Judges by name: `load_judge("pickscore", {"model": ..., "processor": ...})`.

Each judge takes its weights from local paths, given as a dict whose keys are listed in
`JUDGE_PATHS` (required first, then optional). The embedded `digit` judge needs none.

| name          | required paths       | optional paths | weights                                             |
|---------------|----------------------|----------------|-----------------------------------------------------|
| `digit`       |                      |                | the embedded demo's classifier (built on first use): class correctness, Pick-a-Digit's CLIP score |
| `preference`  |                      | config         | Pick-a-Digit's learned Bradley–Terry reward, its PickScore (fitted on first use; `config`: a YAML naming the world, default the shipped one) |
| `oracle`      |                      |                | the simulation's oracle: the annotator's own utility, which real data lacks |
| `stroke`      |                      |                | the stroke-weight term of the annotator's utility (simulation only) |
| `pickscore`   | model                | processor      | yuvalkirstain/PickScore_v1 + laion CLIP-ViT-H-14 processor |
| `clip`        | model                | processor      | any transformers CLIP folder                        |
| `hps`         | checkpoint           | processor      | HPS_v2_compressed.pt + laion CLIP-ViT-H-14 processor |
| `hpsv2.1`     | checkpoint           | processor      | HPS_v2.1_compressed.pt + the same processor         |
| `aesthetic`   | clip, head           | processor      | openai/clip-vit-large-patch14 + sac+logos+ava1-l14-linearMSE.pth |
| `imagereward` | model                | med_config     | ImageReward.pt (needs the `image-reward` package)   |
| `video-digit`, `motion`, `consistency` |  |          | the moving-digits video judges (per-frame digit judge, prompted motion, consecutive-frame similarity) |
| `video-prompt` |                     |                | ½ `video-digit` + ½ `motion`: the prompt's two asks, from public judges only (`seppo benchmark --video` selects by it) |
| `video-oracle` |                     |                | the simulation's oracle for clips: the video annotator's own utility, which real data lacks |

The loaders build a judge only when asked: fitting or loading weights happens there.
"""

from __future__ import annotations

from typing import Callable, Mapping

from seppo.config import load_config
from seppo.embedded import oracle
from seppo.embedded.judge import load_digit_judge
from seppo.embedded.preference import ensure_preference_judge
from seppo.embedded.video_judges import FrameDigitJudge, MotionJudge, PromptMatchJudge, TemporalConsistency, VideoOracleJudge
from seppo.errors import ConfigError
from seppo.judges.base import Judge
from seppo.judges.clip import AestheticJudge, ClipScoreJudge, HPSv2Judge, ImageRewardJudge, PickScoreJudge


def _digit(paths: Mapping[str, str], device: str) -> Judge:
    return load_digit_judge()


def _preference(paths: Mapping[str, str], device: str) -> Judge:
    world = None
    if paths.get("config"):
        world = load_config(paths["config"]).pretrain
    return ensure_preference_judge(world)


def _annotator_part(kind: str) -> Callable[[Mapping[str, str], str], Judge]:
    def load(paths, device):
        return {"oracle": oracle.load_oracle, "stroke": oracle.load_stroke}[kind]()

    return load


def _pickscore(paths, device):
    return PickScoreJudge(paths["model"], paths.get("processor"), device=device)


def _clip(paths, device):
    return ClipScoreJudge(paths["model"], paths.get("processor"), device=device)


def _hps(version: str) -> Callable[[Mapping[str, str], str], Judge]:
    def load(paths, device):
        return HPSv2Judge(paths["checkpoint"], version, processor_path=paths.get("processor"), device=device)

    return load


def _aesthetic(paths, device):
    return AestheticJudge(paths["clip"], paths["head"], paths.get("processor"), device=device)


def _imagereward(paths, device):
    return ImageRewardJudge(paths["model"], paths.get("med_config"), device=device)


def _video(judge: type) -> Callable[[Mapping[str, str], str], Judge]:
    def load(paths, device):
        return judge()

    return load


# name -> (loader, required path keys, optional path keys)
_JUDGES: dict[str, tuple[Callable[[Mapping[str, str], str], Judge], tuple, tuple]] = {
    "digit": (_digit, (), ()),
    "preference": (_preference, (), ("config",)),
    "oracle": (_annotator_part("oracle"), (), ()),
    "stroke": (_annotator_part("stroke"), (), ()),
    "pickscore": (_pickscore, ("model",), ("processor",)),
    "clip": (_clip, ("model",), ("processor",)),
    "hps": (_hps("v2"), ("checkpoint",), ("processor",)),
    "hpsv2.1": (_hps("v2.1"), ("checkpoint",), ("processor",)),
    "aesthetic": (_aesthetic, ("clip", "head"), ("processor",)),
    "imagereward": (_imagereward, ("model",), ("med_config",)),
    # videos (lists of frames): the embedded moving-digits judges
    "video-digit": (_video(FrameDigitJudge), (), ()),
    "motion": (_video(MotionJudge), (), ()),
    "consistency": (_video(TemporalConsistency), (), ()),
    "video-prompt": (_video(PromptMatchJudge), (), ()),
    "video-oracle": (_video(VideoOracleJudge), (), ()),
}
JUDGE_NAMES: tuple[str, ...] = tuple(_JUDGES)
JUDGE_PATHS: dict[str, tuple[str, ...]] = {name: req + opt for name, (_, req, opt) in _JUDGES.items()}


def load_judge(name: str, paths: Mapping[str, str] | None = None, device: str = "cpu") -> Judge:
    """Build the judge `name` from local weight paths; `ConfigError` names a bad name or path key."""
    if name not in _JUDGES:
        raise ConfigError(f"unknown judge {name!r}; choose from {', '.join(JUDGE_NAMES)}")
    loader, required, optional = _JUDGES[name]
    paths = dict(paths or {})
    unknown = sorted(set(paths) - set(required) - set(optional))
    if unknown:
        raise ConfigError(f"judge {name!r} takes paths {list(required + optional)}, not {unknown}")
    missing = [key for key in required if not paths.get(key)]
    if missing:
        raise ConfigError(f"judge {name!r} needs paths {missing}")
    return loader(paths, device)
