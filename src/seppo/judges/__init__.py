"""Judges (reward models): the embedded digit judge and PickScore, HPSv2, LAION aesthetic,
CLIP score (and optional ImageReward) from local weights, all behind `Judge`."""
