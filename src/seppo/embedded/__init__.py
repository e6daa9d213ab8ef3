"""The embedded default world, "Pick-a-Digit": Pick-a-Pic in miniature.

Real images are scikit-learn's bundled `load_digits` (8x8, upscaled to 16x16), prompts are
"a handwritten digit 3", a tiny CLIP tokenizer covers every prompt, two scikit-learn judges
play PickScore (evaluation) and the Pick-a-Pic users (simulated annotator), and `pairs`
builds a Pick-a-Pic-schema parquet from any set of generators. Nothing is downloaded.
"""
