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


# ---------------------------------------------------------------- seed level

from seppo.stats import paired_seed_difference, t_interval, two_level_bootstrap, two_level_draws  # noqa: E402


def test_t_interval_by_hand():
    # x = 1, 2, 3, 4: mean 2.5, sd = √(5/3) = 1.29099, se = 0.645497, t(3, 0.975) = 3.182446,
    # half-width 2.054260.
    mean, lo, hi = t_interval([1, 2, 3, 4])
    assert mean == 2.5
    assert lo == pytest.approx(0.445740, abs=1e-6) and hi == pytest.approx(4.554260, abs=1e-6)
    assert t_interval([3.0, 3.0, 3.0]) == (3.0, 3.0, 3.0)
    m, lo1, hi1 = t_interval([7.0])
    assert m == 7.0 and np.isnan(lo1) and np.isnan(hi1)


def test_two_level_bootstrap_enumerable_case():
    # One image per seed, two seeds with scores 0 and 1: a draw's mean of two picked seeds is
    # 0, 1/2 or 1 with probabilities 1/4, 1/2, 1/4 — the quantiles 2.5% and 97.5% are 0 and 1,
    # and at coverage 40% both quantiles (30%, 70%) fall on 1/2.
    assert two_level_bootstrap([[0.0], [1.0]], n_boot=4000) == (0.5, 0.0, 1.0)
    assert two_level_bootstrap([[0.0], [1.0]], n_boot=4000, level=0.4) == (0.5, 0.5, 0.5)


def test_two_level_variance_matches_the_hand_worked_formula():
    # Seeds [0, 2] and [4, 4, 10]: seed means 1 and 6, between-seed variance (biased) 6.25;
    # within: σ² = 1 over n = 2 → 0.5, σ² = 8 over n = 3 → 8/3; their mean 1.58333.
    # Var* = (6.25 + 1.58333) / 2 = 3.91667.
    draws = two_level_draws([[0.0, 2.0], [4.0, 4.0, 10.0]], n_boot=200_000, seed=1)
    assert draws.var() == pytest.approx(3.91667, rel=0.02)
    assert draws.mean() == pytest.approx(3.5, abs=0.02)
    # The point estimate weighs each run equally (3.5), not each image ((0+2+4+4+10)/5 = 4).
    assert two_level_bootstrap([[0.0, 2.0], [4.0, 4.0, 10.0]])[0] == 3.5


def test_two_level_interval_is_wider_than_the_image_level_one_with_a_planted_seed_effect():
    rng = np.random.default_rng(0)
    seed_effect = rng.normal(0, 0.5, size=8)  # training seeds differ by much more than ...
    groups = [effect + rng.normal(0, 0.2, size=200) for effect in seed_effect]  # ... images within a seed
    _, lo2, hi2 = two_level_bootstrap(groups)
    _, lo1, hi1 = bootstrap_ci(np.concatenate(groups))
    assert hi2 - lo2 > 5 * (hi1 - lo1)
    # and it roughly matches the t-interval over seed means
    _, lo_t, hi_t = t_interval([g.mean() for g in groups])
    assert 0.6 < (hi2 - lo2) / (hi_t - lo_t) < 1.4


def test_paired_seed_difference_by_hand():
    # d = (0.1, 0.3, 0.2, 0.2): mean 0.2, sd = √(0.02/3) = 0.0816497, se = 0.0408248,
    # half-width 3.182446 · 0.0408248 = 0.129923; t = 4.89898 on 3 df → p = 0.01628.
    result = paired_seed_difference([0.6, 0.8, 0.7, 0.9], [0.5, 0.5, 0.5, 0.7])
    assert result["mean_diff"] == pytest.approx(0.2)
    assert result["lo"] == pytest.approx(0.070077, abs=1e-6) and result["hi"] == pytest.approx(0.329923, abs=1e-6)
    assert result["p_value"] == pytest.approx(0.01628, abs=1e-4)
    assert result["wins"] == 4 and result["n"] == 4 and result["resolved"]
    unresolved = paired_seed_difference([0.6, 0.4, 0.7, 0.3], [0.5, 0.5, 0.5, 0.5])
    assert unresolved["lo"] < 0 < unresolved["hi"] and not unresolved["resolved"]
