"""The statistics of account-level experiments: references from statsmodels and scipy, a brute-force CR2,
hand-computed designs, and simulations of error rates, coverage and power."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import stats
from statsmodels.stats.power import TTestIndPower

from accountlens.analysis.experiment_stats import (
    accounts_needed,
    compare,
    cuped_adjust,
    cuped_theta,
    design_effect,
    icc,
    minimum_detectable_effect,
    sample_ratio_check,
    user_level_bias_warning,
)


def clustered_experiment(rng: np.random.Generator, accounts_per_arm: int, rho: float = 0.3, effect: float = 0.0,
                         sizes: tuple[int, int] = (3, 18)) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Users nested in accounts, total variance 1, intra-account correlation rho, varying account sizes."""
    g = 2 * accounts_per_arm
    size = rng.integers(sizes[0], sizes[1], size=g)
    account = np.repeat(np.arange(g), size)
    treated = (account % 2).astype(float)
    y = math.sqrt(rho) * rng.normal(size=g)[account] + math.sqrt(1 - rho) * rng.normal(size=len(account))
    return y + effect * treated, treated, account


def binomial_band(p: float, n: int, z: float = 3.5) -> tuple[float, float]:
    half = z * math.sqrt(p * (1 - p) / n)
    return p - half, p + half


def brute_force_cr2(y: np.ndarray, X: np.ndarray, account: np.ndarray) -> tuple[float, float]:
    """CR2 and BM df of the coefficient on column 1 straight from the definitions with n × n matrices."""
    n = len(y)
    bread = np.linalg.inv(X.T @ X)
    hat = X @ bread @ X.T
    resid = y - hat @ y
    residual_maker = np.eye(n) - hat
    c = np.zeros(X.shape[1])
    c[1] = 1.0
    meat = np.zeros((X.shape[1], X.shape[1]))
    columns = []
    for g in np.unique(account):
        idx = np.flatnonzero(account == g)
        vals, vecs = np.linalg.eigh(np.eye(len(idx)) - hat[np.ix_(idx, idx)])
        a_g = vecs @ np.diag(vals ** -0.5) @ vecs.T
        score = X[idx].T @ a_g @ resid[idx]
        meat += np.outer(score, score)
        columns.append(residual_maker[:, idx] @ a_g @ X[idx] @ bread @ c)
    G = np.column_stack(columns)
    lam = np.linalg.eigvalsh(G.T @ G)
    return math.sqrt(c @ bread @ meat @ bread @ c), float(lam.sum() ** 2 / (lam ** 2).sum())


# ------------------------------------------------------------------------------------------- references

def test_cr2_on_a_hand_checked_design():
    # 2 accounts per arm of 2 users. H_gg = J/4, so A_g scales the cluster sum of residuals by √2 and
    # se² = Σ_g (√2 s_g / 4)² = Σ s_g² / 8, with cluster residual sums s = (−2, 2 | −4, 4): se = √5.
    # The Satterthwaite df of two accounts per arm is 2 (λ = 1/4, 1/4, 0, 0).
    y = [1, 3, 2, 6, 4, 5, 7, 10]
    est = compare(y, [0, 0, 0, 0, 1, 1, 1, 1], ["a", "a", "b", "b", "c", "c", "d", "d"])
    assert est.effect == pytest.approx(3.5)
    assert est.se == pytest.approx(math.sqrt(5))
    assert est.df == pytest.approx(2.0)
    assert est.p_value == pytest.approx(2 * stats.t.sf(3.5 / math.sqrt(5), 2))
    assert est.ci_low == pytest.approx(3.5 - stats.t.ppf(0.975, 2) * math.sqrt(5))
    assert (est.method, est.clusters, est.control_mean, est.treatment_mean) == ("cr2", (2, 2), 3.0, 6.5)
    assert est.relative_lift == pytest.approx(3.5 / 3.0)
    # pandas input, boolean treatment, mixed-type account ids: the same answer.
    same = compare(pd.Series(y), pd.Series([False] * 4 + [True] * 4), pd.Series([1, 1, "b", "b", 3.5, 3.5, "d", "d"]))
    assert same == est
    assert math.isnan(compare([-1, 1, 0, 0, 2, 3], [0, 0, 0, 1, 1, 1]).relative_lift)


def test_cr2_equals_brute_force_definitions_with_covariate_and_unequal_accounts():
    rng = np.random.default_rng(7)
    y, treated, account = clustered_experiment(rng, 6, sizes=(1, 9))
    x = y + rng.normal(size=len(y))
    est = compare(y, treated, account, covariate=x)
    X = np.column_stack([np.ones_like(y), treated, x - x.mean()])
    se, df = brute_force_cr2(y, X, account)
    assert est.effect == pytest.approx(sm.OLS(y, X).fit().params[1])
    assert est.se == pytest.approx(se, rel=1e-10)
    assert est.df == pytest.approx(df, rel=1e-10)


def test_cr1_equals_statsmodels_cluster_and_the_textbook_formula():
    rng = np.random.default_rng(3)
    y, treated, account = clustered_experiment(rng, 8)
    est = compare(y, treated, account, method="cr1")
    X = sm.add_constant(treated)
    fit = sm.OLS(y, X).fit(cov_type="cluster", cov_kwds={"groups": account})
    assert est.se == fit.bse[1]
    assert est.df == 15 and est.method == "cr1"
    # Independent: Liang–Zeger with G/(G−1)·(N−1)/(N−K).
    bread = np.linalg.inv(X.T @ X)
    scores = np.array([X[account == g].T @ fit.resid[account == g] for g in range(16)])
    n = len(y)
    v = bread @ scores.T @ scores @ bread * 16 / 15 * (n - 1) / (n - 2)
    assert est.se == pytest.approx(math.sqrt(v[1, 1]), rel=1e-12)


def test_one_observation_per_account_is_hc2_which_is_welch():
    rng = np.random.default_rng(11)
    control, treatment = rng.normal(size=9), 1 + 2.5 * rng.normal(size=14)
    y, treated = np.r_[control, treatment], np.r_[np.zeros(9), np.ones(14)]
    est = compare(y, treated)
    assert est.method == "hc2" and est.clusters == (9, 14)
    assert compare(y, treated, method="hc2") == est
    assert est.se == pytest.approx(sm.OLS(y, sm.add_constant(treated)).fit(cov_type="HC2").bse[1], rel=1e-12)
    assert est.se == pytest.approx(math.sqrt(control.var(ddof=1) / 9 + treatment.var(ddof=1) / 14), rel=1e-12)
    # The BM df uses the homoskedastic working model, not the sample variances: Imbens & Kolesár's K_BM.
    n0, n1 = 9, 14
    k_bm = (n0 + n1) ** 2 * (n0 - 1) * (n1 - 1) / (n1 ** 2 * (n1 - 1) + n0 ** 2 * (n0 - 1))
    assert est.df == pytest.approx(k_bm, rel=1e-12)
    # With equal sample variances in the two arms, that is exactly Welch's df, and so Welch's p-value.
    treatment = (treatment - treatment.mean()) / treatment.std(ddof=1) * control.std(ddof=1) + 0.9
    y = np.r_[control, treatment]
    est = compare(y, treated)
    welch = stats.ttest_ind(treatment, control, equal_var=False)
    assert est.df == pytest.approx(welch.df, rel=1e-12)
    assert est.p_value == pytest.approx(welch.pvalue, rel=1e-10)
    assert est.effect / est.se == pytest.approx(welch.statistic, rel=1e-12)


# ------------------------------------------------------------------------------------------- simulations

def test_aa_cr2_holds_its_size_where_a_user_level_test_does_not():
    rng = np.random.default_rng(2024)
    runs = 1500
    cr2 = naive = 0
    for _ in range(runs):
        y, treated, account = clustered_experiment(rng, 20)
        cr2 += compare(y, treated, account).p_value < 0.05
        naive += sm.OLS(y, sm.add_constant(treated)).fit().pvalues[1] < 0.05
    cr2_rate, naive_rate = cr2 / runs, naive / runs
    low, high = binomial_band(0.05, runs)
    message = f"A/A, 20 accounts per arm, ICC 0.3: CR2 rejects {cr2_rate:.3f}, user-level OLS {naive_rate:.3f}"
    print(message)
    assert max(low, 0.03) <= cr2_rate <= min(high, 0.07), message
    assert naive_rate > 0.2, message


def test_aa_cr1_with_ten_accounts_per_arm_rejects_more_than_cr2():
    # Measured (seed 99, 1500 runs): CR1 ~0.07, CR2 ~0.05. CR1's df = G − 1 and its G/(G−1) factor do
    # not undo the downward bias of the cluster sandwich with 20 accounts.
    rng = np.random.default_rng(99)
    runs = 1500
    cr1 = cr2 = 0
    for _ in range(runs):
        y, treated, account = clustered_experiment(rng, 10)
        cr1 += compare(y, treated, account, method="cr1").p_value < 0.05
        cr2 += compare(y, treated, account).p_value < 0.05
    message = f"A/A, 10 accounts per arm: CR1 rejects {cr1 / runs:.3f}, CR2 {cr2 / runs:.3f}"
    print(message)
    assert cr1 > cr2, message
    low, high = binomial_band(0.05, runs)
    assert low <= cr2 / runs <= high, message


def test_confidence_interval_covers_a_known_effect_95_percent_of_the_time():
    rng = np.random.default_rng(5)
    runs, effect = 1200, 0.4
    covered = 0
    for _ in range(runs):
        y, treated, account = clustered_experiment(rng, 15, effect=effect)
        est = compare(y, treated, account)
        covered += est.ci_low <= effect <= est.ci_high
    low, high = binomial_band(0.95, runs)
    message = f"CR2 coverage of a 0.4 effect, 15 accounts per arm: {covered / runs:.3f}"
    print(message)
    assert low <= covered / runs <= high, message


def test_cuped_shrinks_the_se_by_sqrt_one_minus_rho_squared_and_stays_unbiased():
    rng = np.random.default_rng(8)
    runs, n, rho, effect = 400, 300, 0.7, 0.1
    ratios, estimates = [], []
    for _ in range(runs):
        pre = rng.normal(size=2 * n)
        treated = np.repeat([0.0, 1.0], n)
        y = rho * pre + math.sqrt(1 - rho ** 2) * rng.normal(size=2 * n) + effect * treated
        plain, adjusted = compare(y, treated), compare(y, treated, covariate=pre)
        ratios.append(adjusted.se / plain.se)
        estimates.append(adjusted.effect)
    expected = math.sqrt(1 - rho ** 2)
    assert np.mean(ratios) == pytest.approx(expected, abs=0.01), f"se ratio {np.mean(ratios):.3f} vs {expected:.3f}"
    spread = np.std(estimates) / math.sqrt(runs)
    assert abs(np.mean(estimates) - effect) < 3.5 * spread, f"mean CUPED estimate {np.mean(estimates):.4f}"


def test_cuped_theta_and_adjust():
    rng = np.random.default_rng(1)
    x = rng.normal(size=500)
    y = 2 + 0.6 * x + rng.normal(size=500)
    theta = cuped_theta(y, x)
    assert theta == pytest.approx(np.cov(y, x)[0, 1] / np.var(x, ddof=1), rel=1e-12)
    adjusted = cuped_adjust(y, x)
    assert adjusted.mean() == pytest.approx(y.mean())
    assert adjusted.var() < 0.8 * y.var()
    np.testing.assert_allclose(adjusted, y - theta * (x - x.mean()))


def test_randomization_inference_holds_its_size_and_bounds_its_p_value():
    rng = np.random.default_rng(17)
    runs = 800
    rejected = 0
    for _ in range(runs):
        y, treated, account = clustered_experiment(rng, 8, sizes=(1, 30))
        rejected += compare(y, treated, account, method="randomization", permutations=199, seed=int(rng.integers(1e9))
                            ).p_value < 0.05
    low, high = binomial_band(0.05, runs)
    message = f"randomization A/A rejection: {rejected / runs:.3f}"
    print(message)
    assert low <= rejected / runs <= high, message

    y, treated, account = clustered_experiment(rng, 10, effect=5.0)
    est = compare(y, treated, account, method="randomization", permutations=300, covariate=rng.normal(size=len(y)))
    assert est.p_value == pytest.approx(1 / 301)
    cr2 = compare(y, treated, account, covariate=None)
    assert est.method == "randomization"
    assert compare(y, treated, account, method="randomization").ci_low == cr2.ci_low


def test_randomization_p_value_equals_exhaustive_enumeration():
    # 3 accounts per arm: 20 assignments. With many permutations the p-value approaches the exact one.
    from itertools import combinations

    y = np.array([1.0, 2.0, 2.5, 3.0, 4.5, 6.0, 3.5, 5.0, 7.0, 6.5, 8.0, 9.0])
    account = np.repeat(np.arange(6), 2)
    treated = (account >= 3).astype(float)
    totals, observed = np.bincount(account, weights=y), y[6:].mean() - y[:6].mean()
    diffs = [(totals[list(c)].sum() - (totals.sum() - totals[list(c)].sum())) / 6 for c in combinations(range(6), 3)]
    exact = np.mean(np.abs(diffs) >= abs(observed) - 1e-12)
    est = compare(y, treated, account, method="randomization", permutations=20000, seed=4)
    assert est.p_value == pytest.approx(exact, abs=0.01)


# ------------------------------------------------------------------------------------------- SRM

def test_sample_ratio_check():
    skewed = sample_ratio_check({"control": 600, "treatment": 400})
    assert skewed.mismatch and skewed.p_value < 1e-9
    assert skewed.chi2 == pytest.approx(40.0)  # (100² + 100²) / 500
    balanced = sample_ratio_check({"control": 507, "treatment": 493})
    assert not balanced.mismatch and balanced.expected_share == {"control": 0.5, "treatment": 0.5}
    planned = sample_ratio_check({"control": 600, "treatment": 400}, weights={"control": 3, "treatment": 2})
    assert not planned.mismatch and planned.chi2 == pytest.approx(0.0)
    assert planned.expected_share["control"] == pytest.approx(0.6)
    assert sample_ratio_check({"a": 450, "b": 550}, weights={"a": 3, "b": 2}).mismatch
    three = sample_ratio_check({"a": 100, "b": 100, "c": 160})
    assert three.p_value == pytest.approx(stats.chisquare([100, 100, 160]).pvalue)


# ------------------------------------------------------------------------------------------- clustering, power

def test_icc_recovers_a_simulated_intra_account_correlation():
    rng = np.random.default_rng(12)
    for rho in (0.05, 0.3, 0.6):
        y, _, account = clustered_experiment(rng, 200, rho=rho, sizes=(2, 25))
        assert icc(y, account) == pytest.approx(rho, abs=0.05)
    assert icc(rng.normal(size=400), np.repeat(np.arange(100), 4)) <= 0.1
    assert icc([1, 1, 2, 2], ["a", "a", "b", "b"]) == 1.0


def test_icc_matches_the_balanced_anova_formula():
    y = np.array([1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 2.0, 2.0, 5.0])
    account = np.repeat([0, 1, 2], 3)
    groups = y.reshape(3, 3)
    msb = 3 * np.sum((groups.mean(axis=1) - y.mean()) ** 2) / 2
    msw = np.sum((groups - groups.mean(axis=1, keepdims=True)) ** 2) / 6
    assert icc(y, account) == pytest.approx((msb - msw) / (msb + 2 * msw))


def test_design_effect_formula():
    assert design_effect([10, 10, 10], 0.2) == pytest.approx(1 + 9 * 0.2)
    sizes = np.array([2, 4, 6, 20])
    mean, cv = sizes.mean(), sizes.std() / sizes.mean()
    assert design_effect(sizes, 0.1) == pytest.approx(1 + (mean * (1 + cv ** 2) - 1) * 0.1)
    assert design_effect(sizes, 0.1) == pytest.approx(1 + (np.sum(sizes ** 2) / sizes.sum() - 1) * 0.1)
    assert design_effect(sizes, 0.0) == 1.0


def test_mde_matches_statsmodels_and_counts_accounts_for_the_df():
    plain = minimum_detectable_effect(50, sd=2.0, baseline_mean=10.0)
    reference = TTestIndPower().solve_power(nobs1=50, alpha=0.05, power=0.8, ratio=1.0)
    assert plain.mde == pytest.approx(2.0 * reference, rel=1e-5)  # solve_power's own tolerance
    assert TTestIndPower().power(plain.mde / 2.0, nobs1=50, alpha=0.05) == pytest.approx(0.8, abs=1e-9)
    assert plain.relative_mde == pytest.approx(plain.mde / 10.0)
    clustered = minimum_detectable_effect(12, users_per_account=20, icc=0.1, cluster_size_cv=0.5)
    assert clustered.design_effect == pytest.approx(1 + (20 * 1.25 - 1) * 0.1)
    assert clustered.effective_n_per_arm == pytest.approx(12 * 20 / clustered.design_effect)
    achieved = TTestIndPower().power(clustered.mde, nobs1=clustered.effective_n_per_arm, alpha=0.05, df=22)
    assert achieved == pytest.approx(0.8, abs=1e-8)
    users_df = TTestIndPower().solve_power(nobs1=clustered.effective_n_per_arm, alpha=0.05, power=0.8)
    assert clustered.mde > users_df  # 22 df, not 2·n_eff − 2
    assert clustered.relative_mde is None


def test_mde_with_few_accounts_and_a_small_alpha():
    """statsmodels' power is NaN there (scipy's noncentral t lower tail far out); the lower
    tail is below alpha / 2, so the upper tail alone must reach the power."""
    for accounts, alpha in ((2, 1e-3), (2, 1e-6), (3, 1e-6)):
        plan = minimum_detectable_effect(accounts, alpha=alpha)
        critical = stats.t.isf(alpha / 2, 2 * accounts - 2)
        upper = stats.nct.sf(critical, 2 * accounts - 2, plan.mde * math.sqrt(accounts / 2))
        assert upper == pytest.approx(0.8, abs=1e-9)
    with pytest.raises(ValueError, match="no effect reaches power"):  # t quantile overflows
        minimum_detectable_effect(2, alpha=5e-324)


def test_a_simulation_at_the_mde_has_the_stated_power():
    rng = np.random.default_rng(21)
    accounts, users, rho, runs = 15, 8, 0.2, 6000
    plan = minimum_detectable_effect(accounts, users_per_account=users, icc=rho)
    # Equal sizes: the account mean is a sufficient summary, variance ρ + (1 − ρ)/m.
    shape = (runs, accounts)
    control = math.sqrt(rho) * rng.normal(size=shape) + math.sqrt((1 - rho) / users) * rng.normal(size=shape)
    treatment = (math.sqrt(rho) * rng.normal(size=shape) + math.sqrt((1 - rho) / users) * rng.normal(size=shape)
                 + plan.mde)
    power = np.mean(stats.ttest_ind(treatment, control, axis=1).pvalue < 0.05)
    low, high = binomial_band(0.8, runs)
    assert low <= power <= high, f"simulated power at the MDE {plan.mde:.3f}: {power:.3f}"


def test_accounts_needed_inverts_the_mde():
    for kwargs in ({}, {"users_per_account": 12, "icc": 0.15, "cluster_size_cv": 0.4, "sd": 3.0}):
        accounts = accounts_needed(0.5, **kwargs)
        assert minimum_detectable_effect(accounts, **kwargs).mde == pytest.approx(0.5, rel=1e-6)
    assert accounts_needed(-0.5) == accounts_needed(0.5)
    assert accounts_needed(100.0) == 2.0
    assert accounts_needed(0.05) == pytest.approx(TTestIndPower().solve_power(0.05, alpha=0.05, power=0.8), rel=1e-4)


def test_user_level_bias_warning():
    rng = np.random.default_rng(4)
    y, treated, account = clustered_experiment(rng, 30, rho=0.3)
    warning = user_level_bias_warning(y, treated, account)
    assert warning is not None
    rho = icc(y - np.where(treated == 1, y[treated == 1].mean(), y[treated == 0].mean()), account)
    de = design_effect(np.bincount(account), rho)
    assert f"√DE = {math.sqrt(de):.2f}" in warning and f"design effect is about {de:.2f}" in warning
    assert "a user-level t-test would understate the standard error" in warning
    assert user_level_bias_warning(rng.normal(size=20), np.repeat([0, 1], 10), np.arange(20)) is None


# ------------------------------------------------------------------------------------------- bad input

@pytest.mark.parametrize(("kwargs", "message"), [
    ({"y": [1, 2, 3], "treated": [0, 1]}, "treated has 2 values but y has 3"),
    ({"treated": [0, 0, 1, 2]}, "treated must be 0 (control) or 1"),
    ({"y": [1, float("nan"), 3, 4]}, "y has 1 NaN"),
    ({"covariate": [1, 2, float("nan"), 4]}, "covariate has 1 NaN"),
    ({"covariate": [1, 2, 3]}, "covariate has 3 values but y has 4"),
    ({"covariate": [5, 5, 5, 5]}, "covariate is constant"),
    ({"clusters": ["a", "a", "b"]}, "clusters has 3 values but y has 4"),
    ({"clusters": ["a", None, "b", "c"]}, "clusters has 1 missing"),
    ({"clusters": ["a", "b", "c", "c"]}, "fewer than 2 clusters per arm (control 2, treatment 1)"),
    ({"clusters": ["a", "b", "b", "c"]}, "treated varies within 1 account"),
    ({"treated": [0, 1, 1, 1]}, "fewer than 2 clusters per arm (control 1, treatment 3)"),
    ({"method": "ols"}, "method must be one of"),
    ({"clusters": ["a", "a", "b", "b"], "treated": [0, 0, 1, 1]}, "fewer than 2 clusters per arm"),
    ({"alpha": 1.5}, "alpha must be between 0 and 1"),
])
def test_compare_rejects_bad_input_naming_the_problem(kwargs, message):
    args = {"y": [1.0, 2.0, 3.0, 4.0], "treated": [0, 0, 1, 1]} | kwargs
    with pytest.raises(ValueError) as error:
        compare(**args)
    assert message in str(error.value)


def test_other_functions_reject_bad_input():
    y, treated, account = [1.0, 2, 3, 4, 5, 6], [0, 0, 0, 1, 1, 1], [1, 1, 2, 3, 3, 4]
    with pytest.raises(ValueError, match="'hc2' treats observations as independent"):
        compare(y, treated, account, method="hc2")
    with pytest.raises(ValueError, match="weights name variants"):
        sample_ratio_check({"a": 10, "b": 12}, weights={"a": 1, "c": 1})
    with pytest.raises(ValueError, match="at least 2 variants"):
        sample_ratio_check({"a": 10})
    with pytest.raises(ValueError, match="accounts_per_arm must be more than 1"):
        minimum_detectable_effect(1)
    with pytest.raises(ValueError, match="icc must be between 0 and 1"):
        minimum_detectable_effect(10, icc=1.5)
    with pytest.raises(ValueError, match="effect must be a non-zero"):
        accounts_needed(0.0)
    with pytest.raises(ValueError, match="covariate is constant"):
        cuped_theta([1, 2, 3], [4, 4, 4])
    with pytest.raises(ValueError, match="icc_value must be between 0 and 1"):
        design_effect([3, 4], -0.1)
