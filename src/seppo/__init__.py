"""seppo: align diffusion models with human preference from winning examples only.

SePPO (Semi-Policy Preference Optimization, Zhang et al., arXiv 2410.05255) and the
baselines it is compared with (SFT, Diffusion-DPO, SPIN- and DITTO-style self-play),
all in one training loop. See docs/ and DESIGN.md for the algorithm and the architecture.
"""

__version__ = "0.1.0"
