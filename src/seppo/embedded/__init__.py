"""The embedded default world, "Pick-a-Digit" (Pick-a-Pic in miniature), and its video sibling
"Moving Digits". Nothing is downloaded. Two floors:

- leaves, importing nothing of ours above `seppo.errors` and `seppo.paths`: `digits` (real
  digits, prompts, pixels), `tokenizer` (a tiny CLIP tokenizer and text encoder), `judge` (the
  evaluation judge and the simulated annotator), `clips` (moving-digit clips, prompts, GIFs),
  `video_judges` (motion and per-frame judges, the video annotator), `budget` (the demo's
  config and budgets);
- builders, which sample from models and sit with the tools above the backbone: `pretrain`
  (the base model), `pairs` and `video_pairs` (preference pairs in the Pick-a-Pic schema),
  `world` (Pick-a-Digit, and `ensure_world` for a run's config), `video_world` (the video base
  and Moving-Digits).
"""
