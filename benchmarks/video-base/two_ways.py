"""A model trained on left and up only (`experiment.py train ... --directions left,up`): how often
its samples step the prompted way, the other trained way, and the prompted way's opposite.

    python benchmarks/video-base/two_ways.py $SEPPO_CACHE/video-base-experiments/ut-s2-left-up
"""

from __future__ import annotations

import os
import sys

import torch

from seppo.embedded.clips import clip_arrays, video_prompt
from seppo.embedded.video_judges import MotionJudge
from seppo.models import eval_seeds, load_for_sampling, sample

torch.set_num_threads(int(os.environ.get("SEPPO_THREADS", "1")))
backbone = load_for_sampling(sys.argv[1], num_frames=8)
cells = [(d, r) for d in range(10) for r in ("left", "up") for _ in range(2)]
clips = clip_arrays(sample(backbone, [video_prompt(d, r) for d, r in cells], seeds=eval_seeds(0, len(cells)),
                           resolution=16, steps=6, guidance=3.0, batch_size=40))
judge, prompted = MotionJudge(), [r for _, r in cells]
for name, ways in (("the prompted way", prompted), ("the other trained way", ["up" if r == "left" else "left" for r in prompted]),
                   ("the prompted way's opposite", ["right" if r == "left" else "down" for r in prompted])):
    print(f"steps moving {name}: {judge.score_arrays(clips, ways).mean():.3f}")
