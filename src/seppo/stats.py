"""Statistics for comparing judges' scores: bootstrap intervals, paired win rates, tests.

Symbols:

| name     | symbol          | meaning                                               |
|----------|-----------------|-------------------------------------------------------|
| `values` | x_1..x_n        | one score per prompt                                  |
| `a`, `b` | a_i, b_i        | two models' scores on the same prompt i (paired)      |
| `diff`   | d_i = a_i − b_i |                                                       |
| `wins`   | w_i             | 1 if d_i > 0, ½ if d_i = 0, 0 if d_i < 0              |
| `level`  | 1 − α           | the interval's coverage                               |

Percentile bootstrap: draw n indices with replacement B times, take the mean of each draw,
and report the α/2 and 1 − α/2 quantiles of those B means.
"""

from __future__ import annotations

import numpy as np
from scipy import stats as scipy_stats

# Bootstrap draws are made in blocks so n_boot × n never has to fit in memory at once.
_BLOCK_ELEMENTS = 1 << 22


def _vector(values, what: str) -> np.ndarray:
    x = np.asarray(values, dtype=np.float64).ravel()
    if x.size == 0:
        raise ValueError(f"{what} is empty")
    return x


def bootstrap_ci(values, *, n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """(x̄, lo, hi): the mean and its percentile-bootstrap interval at coverage `level`."""
    x = _vector(values, "values")
    n = x.size
    rng = np.random.default_rng(seed)
    block = max(1, _BLOCK_ELEMENTS // n)
    means = np.concatenate([
        x[rng.integers(0, n, size=(min(block, n_boot - start), n))].mean(axis=1)  # (rows, n) -> (rows,)
        for start in range(0, n_boot, block)
    ])
    alpha = 1.0 - level
    lo, hi = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return float(x.mean()), float(lo), float(hi)


def wilcoxon_p(diff) -> float:
    """Two-sided Wilcoxon signed-rank p-value for H0: d is symmetric about 0.

    Zero differences are dropped (Wilcoxon's convention); if every d_i is 0 there is no
    evidence either way and p = 1.
    """
    d = _vector(diff, "differences")
    if not np.any(d != 0):
        return 1.0
    return float(scipy_stats.wilcoxon(d, zero_method="wilcox", alternative="two-sided").pvalue)


def paired_t_p(diff) -> float:
    """Two-sided paired t-test p-value for H0: E[d] = 0 (nan for n < 2).

    With zero spread the t statistic is 0/0 or ±∞, so p is 1 when every d_i = 0 and 0 otherwise.
    """
    d = _vector(diff, "differences")
    if d.size < 2:
        return float("nan")
    if np.all(d == d[0]):
        return 1.0 if d[0] == 0 else 0.0
    return float(scipy_stats.ttest_1samp(d, 0.0).pvalue)


def paired_win_rate(a, b, *, n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> dict:
    """How often a beats b on the same prompt, with a bootstrap interval and two tests.

    Returns {win_rate: mean w_i, lo, hi: bootstrap over pairs, p_value: Wilcoxon on d,
    p_value_t: paired t-test on d, mean_diff: mean d_i, n}.
    """
    a, b = _vector(a, "a"), _vector(b, "b")
    if a.shape != b.shape:
        raise ValueError(f"paired scores need equal lengths, got {a.size} and {b.size}")
    diff = a - b
    wins = (diff > 0) + 0.5 * (diff == 0)
    win_rate, lo, hi = bootstrap_ci(wins, n_boot=n_boot, level=level, seed=seed)
    return {
        "win_rate": win_rate,
        "lo": lo,
        "hi": hi,
        "p_value": wilcoxon_p(diff),
        "p_value_t": paired_t_p(diff),
        "mean_diff": float(diff.mean()),
        "n": int(diff.size),
    }
