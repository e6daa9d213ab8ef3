"""Statistics for comparing judges' scores: bootstrap intervals, paired win rates, tests,
and the seed-level statistics with which a benchmark compares training runs (DESIGN.md §3).

Two kinds of interval, never to be confused:
- **within-run precision** (`bootstrap_ci`, `paired_win_rate` over images): how precisely one
  trained model's mean is known from its images. It says nothing about another training seed.
- **seed level** (`t_interval`, `two_level_bootstrap`, `paired_seed_difference`): the unit is
  a training run. A method's score is the mean over training seeds of each run's mean score,
  and its interval counts seed-to-seed variance.

Symbols:

| name     | symbol          | meaning                                               |
|----------|-----------------|-------------------------------------------------------|
| `values` | x_1..x_n        | one score per prompt                                  |
| `a`, `b` | a_i, b_i        | two models' scores on the same prompt i (paired)      |
| `diff`   | d_i = a_i − b_i |                                                       |
| `wins`   | w_i             | 1 if d_i > 0, ½ if d_i = 0, 0 if d_i < 0              |
| `level`  | 1 − α           | the interval's coverage                               |
| `m_s`    | m_s             | training seed s's mean score (over its images)        |
| `S`      | S               | number of training seeds                              |

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


# ---------------------------------------------------------------- seed level


def t_interval(values, *, level: float = 0.95) -> tuple[float, float, float]:
    """(x̄, lo, hi) with the Student-t interval x̄ ± t_{S−1, 1−α/2} · sd / √S.

    For seed means m_1..m_S this is the seed-level interval of a method's score. With one
    value the interval is undefined (nan, nan); with zero spread it has zero width.
    """
    x = _vector(values, "values")
    mean = float(x.mean())
    if x.size < 2:
        return mean, float("nan"), float("nan")
    half = float(scipy_stats.t.ppf(0.5 + level / 2, df=x.size - 1) * x.std(ddof=1) / np.sqrt(x.size))
    return mean, mean - half, mean + half


def two_level_bootstrap(groups, *, n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """(x̄, lo, hi) of the mean of seed means, resampling seeds and then images within a seed.

    `groups` holds one array of image scores per training seed. One bootstrap draw picks S
    seeds with replacement and, for each pick independently, resamples that seed's images
    with replacement; its statistic is the mean of the S resampled seed means. The point
    estimate x̄ is the mean of the seed means (each run weighs the same).
    Var*(x̄) = [ (1/S)Σ(m_s − m̄)² + (1/S)Σ σ_s²/n_s ] / S, with biased variances: between
    seeds plus within them, so it is never narrower than the within-run interval alone.
    """
    arrays = [_vector(g, f"seed {i}") for i, g in enumerate(groups)]
    boot = two_level_draws(arrays, n_boot=n_boot, seed=seed)
    alpha = 1.0 - level
    lo, hi = np.quantile(boot, [alpha / 2, 1 - alpha / 2])
    return float(np.mean([x.mean() for x in arrays])), float(lo), float(hi)


def two_level_draws(groups, *, n_boot: int = 2000, seed: int = 0) -> np.ndarray:
    """The `n_boot` two-level bootstrap draws of the mean of seed means, shape (n_boot,)."""
    arrays = [_vector(g, f"seed {i}") for i, g in enumerate(groups)]
    if not arrays:
        raise ValueError("groups is empty")
    S = len(arrays)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, S, size=(n_boot, S))  # (B, S): which seed fills each slot
    slot_means = np.empty((n_boot, S))
    for s, x in enumerate(arrays):
        where = picks == s  # (B, S): the slots seed s fills
        count = int(where.sum())
        block = max(1, _BLOCK_ELEMENTS // x.size)
        means = [x[rng.integers(0, x.size, size=(min(block, count - start), x.size))].mean(axis=1)  # (rows,)
                 for start in range(0, count, block)]
        slot_means[where] = np.concatenate(means) if means else []  # one fresh image resample per slot
    return slot_means.mean(axis=1)  # (B,)


def paired_seed_difference(a, b, *, level: float = 0.95) -> dict:
    """Method a minus method b, paired by training seed (same seed, base and data order).

    `a[s]`, `b[s]` are the two runs' mean scores for seed s (the same evaluation images).
    Returns {mean_diff, lo, hi: the t-interval of d_s = a_s − b_s, p_value: two-sided paired
    t-test over seeds, wins: seeds where a beat b, n: seeds, resolved: whether the interval
    excludes 0}.
    """
    a, b = _vector(a, "a"), _vector(b, "b")
    if a.shape != b.shape:
        raise ValueError(f"paired seed means need equal lengths, got {a.size} and {b.size}")
    d = a - b
    mean, lo, hi = t_interval(d, level=level)
    resolved = bool(np.isfinite(lo) and (lo > 0 or hi < 0))
    return {"mean_diff": mean, "lo": lo, "hi": hi, "p_value": paired_t_p(d), "wins": int((d > 0).sum()),
            "n": int(d.size), "resolved": resolved}
