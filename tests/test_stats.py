"""seppo.stats against numbers worked out by hand."""

import itertools

import numpy as np
import pytest

from seppo.stats import bootstrap_ci, paired_t_p, paired_win_rate, wilcoxon_p


def test_constant_values_give_a_zero_width_interval_at_the_value():
    assert bootstrap_ci([2.5] * 7) == (2.5, 2.5, 2.5)


def test_two_point_bootstrap_interval_by_hand():
    # x = [0, 1]: a resample's mean is 0, 1/2 or 1 with probabilities 1/4, 1/2, 1/4, so the
    # 2.5% and 97.5% quantiles of many draws are 0 and 1 and the mean is 1/2.
    mean, lo, hi = bootstrap_ci([0.0, 1.0], n_boot=4000)
    assert (mean, lo, hi) == (0.5, 0.0, 1.0)
    # At coverage 40% the quantiles 30% and 70% both fall on the middle outcome 1/2.
    assert bootstrap_ci([0.0, 1.0], n_boot=4000, level=0.4) == (0.5, 0.5, 0.5)


def test_interval_contains_the_mean_shrinks_with_n_and_is_seeded():
    rng = np.random.default_rng(1)
    small, large = rng.normal(size=50), rng.normal(size=5000)
    m_small, lo_small, hi_small = bootstrap_ci(small)
    m_large, lo_large, hi_large = bootstrap_ci(large)
    assert lo_small < m_small < hi_small and lo_large < m_large < hi_large
    # Width ≈ 2·1.96·σ/√n: about 0.55 at n = 50, 0.055 at n = 5000.
    assert 0.4 < hi_small - lo_small < 0.7
    assert 0.04 < hi_large - lo_large < 0.07
    assert bootstrap_ci(small, seed=3) == bootstrap_ci(small, seed=3)
    assert bootstrap_ci(small, seed=3) != bootstrap_ci(small, seed=4)


def test_empty_input_is_an_error():
    with pytest.raises(ValueError, match="empty"):
        bootstrap_ci([])


def test_win_rate_counts_ties_as_half():
    result = paired_win_rate([1, 2, 3], [0, 2, 4])
    assert result["win_rate"] == pytest.approx((1 + 0.5 + 0) / 3)
    assert result["mean_diff"] == pytest.approx(0.0)
    assert result["n"] == 3
    assert result["lo"] <= result["win_rate"] <= result["hi"]
    assert 0.0 <= result["lo"] and result["hi"] <= 1.0


def _exact_wilcoxon_p(d):
    """Two-sided exact signed-rank p by enumerating all 2^n sign patterns (no ties, no zeros)."""
    ranks = np.argsort(np.argsort(np.abs(d))) + 1
    w_plus = ranks[d > 0].sum()
    total = ranks.sum()
    stats = [sum(r for r, s in zip(ranks, signs) if s) for signs in itertools.product([0, 1], repeat=len(d))]
    extreme = min(w_plus, total - w_plus)
    count = sum(1 for w in stats if w <= extreme or w >= total - extreme)
    return count / len(stats)


def test_wilcoxon_matches_enumeration():
    a = np.array([1.3, 2.0, 0.4, 3.1, 2.2, 1.0])
    b = np.array([1.0, 1.4, 0.6, 2.0, 1.0, 1.8])
    # d = [.3, .6, -.2, 1.1, 1.2, -.8]: ranks 2,3,1,5,6,4; W+ = 16, W- = 5.
    # Patterns with W+ ≤ 5 number 10 of 64 (by symmetry as many with W+ ≥ 16): p = 20/64.
    assert _exact_wilcoxon_p(a - b) == pytest.approx(20 / 64)
    result = paired_win_rate(a, b)
    assert result["p_value"] == pytest.approx(20 / 64)
    assert wilcoxon_p(b - a) == pytest.approx(20 / 64)  # two-sided: symmetric in the sign
    assert result["win_rate"] == pytest.approx(4 / 6)


def test_all_zero_differences_give_p_one():
    result = paired_win_rate([1.0, 2.0, 3.0], [1.0, 2.0, 3.0])
    assert result["p_value"] == 1.0 and result["p_value_t"] == 1.0
    assert wilcoxon_p([0.0, 0.0]) == 1.0
    assert result["win_rate"] == 0.5 and result["lo"] == result["hi"] == 0.5


def test_paired_t_by_hand():
    # d = [1, 2, 3]: mean 2, sd 1, t = 2/(1/√3) = 2√3 on 2 degrees of freedom.
    # For ν = 2 the t tail has the closed form P(|T| > t) = 1 − t/√(t² + 2).
    t = 2 * np.sqrt(3)
    assert paired_t_p([1.0, 2.0, 3.0]) == pytest.approx(1 - t / np.sqrt(t**2 + 2))
    assert paired_win_rate([2.0, 4.0, 6.0], [1.0, 2.0, 3.0])["p_value_t"] == pytest.approx(1 - t / np.sqrt(t**2 + 2))
    # A constant non-zero shift has zero spread: certain evidence, p = 0.
    assert paired_t_p([0.5, 0.5, 0.5]) == 0.0


def test_mismatched_lengths_are_an_error():
    with pytest.raises(ValueError, match="equal lengths"):
        paired_win_rate([1, 2], [1, 2, 3])
