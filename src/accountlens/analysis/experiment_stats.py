"""The statistics of account-level experiments (docs/experiments.md): small-sample-correct effects,
confidence intervals and p-values when accounts are randomised and users inside an account are correlated,
plus CUPED, the sample-ratio check, the intra-account correlation and power. Pure computation, no store.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import optimize, stats
from statsmodels.stats.power import TTestIndPower

__all__ = [
    "Estimate", "Power", "SampleRatio", "accounts_needed", "compare", "cuped_adjust", "cuped_theta",
    "design_effect", "icc", "minimum_detectable_effect", "sample_ratio_check", "user_level_bias_warning",
]

METHODS = ("cr2", "cr1", "hc2", "randomization")
# Directions of I − H_gg with eigenvalue below this are treated as singular (Moore–Penrose inverse), as
# clubSandwich does; it only happens when one cluster determines a coefficient on its own.
_SINGULAR = 1e-10
# Permutations are evaluated in blocks so that memory stays bounded with thousands of accounts.
_PERMUTATION_BLOCK = 500


@dataclass(frozen=True)
class Estimate:
    effect: float
    relative_lift: float
    se: float
    df: float
    ci_low: float
    ci_high: float
    p_value: float
    method: str
    clusters: tuple[int, int]
    control_mean: float
    treatment_mean: float


@dataclass(frozen=True)
class SampleRatio:
    observed: dict[str, int]
    expected_share: dict[str, float]
    chi2: float
    p_value: float
    mismatch: bool


@dataclass(frozen=True)
class Power:
    accounts_per_arm: float
    users_per_account: float
    icc: float
    sd: float
    alpha: float
    power: float
    design_effect: float
    effective_n_per_arm: float
    mde: float
    relative_mde: float | None


# ---------------------------------------------------------------------------------------------- inputs

def _numeric(name: str, values: Any) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one value per observation (a 1-D array), got shape {array.shape}")
    bad = int(np.count_nonzero(~np.isfinite(array)))
    if bad:
        raise ValueError(f"{name} has {bad} NaN or infinite value(s); drop or impute them first")
    return array


def _cluster_codes(clusters: Any, n: int) -> np.ndarray:
    """Integer codes 0..G-1 per observation; None: every observation is its own cluster."""
    if clusters is None:
        return np.arange(n)
    labels = np.asarray(clusters)
    if labels.ndim != 1:
        raise ValueError(f"clusters must be one account id per observation (1-D), got shape {labels.shape}")
    if len(labels) != n:
        raise ValueError(f"clusters has {len(labels)} values but y has {n}: the lengths differ")
    codes, _ = pd.factorize(labels, sort=True)
    missing = int(np.count_nonzero(codes < 0))
    if missing:
        raise ValueError(f"clusters has {missing} missing (None or NaN) account id(s)")
    return np.asarray(codes, dtype=np.intp)


@dataclass(frozen=True)
class _Design:
    y: np.ndarray
    treated: np.ndarray
    covariate: np.ndarray | None
    codes: np.ndarray
    cluster_treated: np.ndarray  # 0/1 per cluster
    sizes: np.ndarray

    @property
    def singletons(self) -> bool:
        return bool(np.all(self.sizes == 1))

    def matrix(self) -> np.ndarray:
        columns = [np.ones_like(self.y), self.treated]
        if self.covariate is not None:
            columns.append(self.covariate - self.covariate.mean())
        return np.column_stack(columns)


def _design(y: Any, treated: Any, clusters: Any, covariate: Any) -> _Design:
    y_arr = _numeric("y", y)
    n = len(y_arr)
    t_arr = _numeric("treated", treated)
    if len(t_arr) != n:
        raise ValueError(f"treated has {len(t_arr)} values but y has {n}: the lengths differ")
    if not np.all((t_arr == 0) | (t_arr == 1)):
        odd = sorted(set(t_arr[(t_arr != 0) & (t_arr != 1)].tolist()))[:5]
        raise ValueError(f"treated must be 0 (control) or 1 (treatment); found {odd}")
    x_arr = None
    if covariate is not None:
        x_arr = _numeric("covariate", covariate)
        if len(x_arr) != n:
            raise ValueError(f"covariate has {len(x_arr)} values but y has {n}: the lengths differ")
        if np.ptp(x_arr) == 0:
            raise ValueError("covariate is constant: it cannot adjust anything; pass covariate=None")
    codes = _cluster_codes(clusters, n)
    sizes = np.bincount(codes).astype(float)
    per_cluster = np.bincount(codes, weights=t_arr)
    if not np.all((per_cluster == 0) | (per_cluster == sizes)):
        mixed = int(np.count_nonzero((per_cluster > 0) & (per_cluster < sizes)))
        raise ValueError(f"treated varies within {mixed} account(s): an account-randomised experiment gives "
                         "every observation of an account the same arm; check the assignment join")
    cluster_treated = (per_cluster > 0).astype(float)
    arms = (int(np.count_nonzero(cluster_treated == 0)), int(np.count_nonzero(cluster_treated == 1)))
    if min(arms) < 2:
        raise ValueError(f"fewer than 2 clusters per arm (control {arms[0]}, treatment {arms[1]}): "
                         "no variance can be estimated; wait for more accounts")
    return _Design(y_arr, t_arr, x_arr, codes, cluster_treated, sizes)


# ---------------------------------------------------------------------------------------------- CR2

def _cr2(X: np.ndarray, resid: np.ndarray, codes: np.ndarray, sizes: np.ndarray,
         contrast: np.ndarray) -> tuple[float, float]:
    """Bell–McCaffrey CR2 standard error and Satterthwaite ("BM") degrees of freedom of c'β.

    Bell & McCaffrey (2002, Survey Methodology 28(2)); Imbens & Kolesár (2016, REStat 98(4)) §3;
    Pustejovsky & Tipton (2018, JBES 36(4)). V = B Σ_g X_g' A_g e_g e_g' A_g X_g B with B = (X'X)^-1 and
    A_g = (I − H_gg)^(-1/2). Under the working model ε ~ N(0, σ²I), c'Vc = ε'GG'ε with columns
    G_g = (I − H)_g' A_g X_g B c, so df = (Σλ)² / Σλ² over the eigenvalues λ of G'G.
    """
    bread = np.linalg.inv(X.T @ X)
    bc = bread @ contrast
    if np.all(sizes == 1):
        leverage = np.einsum("ij,jk,ik->i", X, bread, X)
        ax = X / np.sqrt(np.clip(1.0 - leverage, _SINGULAR, None))[:, None]
        ax[1.0 - leverage < _SINGULAR] = 0.0
        scores = ax * resid[:, None]
        w = ax @ bc
        wtw = w * w
        u = X * w[:, None]
    else:
        order = np.argsort(codes, kind="stable")
        xs, es = X[order], resid[order]
        bounds = np.concatenate([[0], np.cumsum(sizes.astype(int))])
        scores = np.empty((len(sizes), X.shape[1]))
        wtw = np.empty(len(sizes))
        u = np.empty((len(sizes), X.shape[1]))
        for g in range(len(sizes)):
            xg, eg = xs[bounds[g]:bounds[g + 1]], es[bounds[g]:bounds[g + 1]]
            # H_gg = X_g B X_g' has rank ≤ k: with X_g = QR, H_gg = (QW) diag(d) (QW)' where R B R' = W d W'.
            # So (I − H_gg)^(-1/2) = I + QW diag((1 − d)^(-1/2) − 1) (QW)', never an n_g × n_g matrix.
            q, r = np.linalg.qr(xg)
            d, vecs = np.linalg.eigh(r @ bread @ r.T)
            p = q @ vecs
            one_minus = 1.0 - d
            shrink = np.where(one_minus > _SINGULAR, 1.0 / np.sqrt(np.clip(one_minus, _SINGULAR, None)), 0.0) - 1.0
            axg = xg + p @ (shrink[:, None] * (p.T @ xg))
            scores[g] = axg.T @ eg
            wg = axg @ bc
            wtw[g] = wg @ wg
            u[g] = xg.T @ wg
    meat = scores.T @ scores
    variance = float(contrast @ bread @ meat @ bread @ contrast)
    # G'G = diag(w_g'w_g) − U B U', because (I − H) is symmetric and idempotent: (I − H)_g (I − H)_h' = (I − H)_gh.
    gtg = np.diag(wtw) - u @ bread @ u.T
    df = float(np.trace(gtg) ** 2 / np.sum(gtg * gtg))
    return math.sqrt(max(variance, 0.0)), df


# ---------------------------------------------------------------------------------------------- randomization

def _randomization_p(design: _Design, permutations: int, seed: int) -> float:
    """Two-sided p-value of the (covariate-adjusted) difference, re-randomising treatment across clusters.

    The statistic is the plain OLS coefficient on treatment, which by Frisch–Waugh–Lovell is
    (d'My)/(d'Md) with M the residual maker of W = [1, centred covariate]. Treatment is constant within a
    cluster, d = Zc, so both only need cluster totals: one permutation costs O(G), not O(n).
    """
    columns = [np.ones_like(design.y)]
    if design.covariate is not None:
        columns.append(design.covariate - design.covariate.mean())
    w = np.column_stack(columns)
    g_count = len(design.sizes)
    zy = np.bincount(design.codes, weights=design.y, minlength=g_count)
    zw = np.column_stack([np.bincount(design.codes, weights=col, minlength=g_count) for col in w.T])
    wtw_inv = np.linalg.inv(w.T @ w)
    wy_solution = wtw_inv @ (w.T @ design.y)

    def statistic(assign: np.ndarray) -> np.ndarray:  # assign: (P, G) of 0/1
        cw = assign @ zw
        numerator = assign @ zy - cw @ wy_solution
        denominator = assign @ design.sizes - np.einsum("pi,ij,pj->p", cw, wtw_inv, cw)
        return np.asarray(numerator / denominator)

    observed = abs(float(statistic(design.cluster_treated[None, :])[0]))
    treated_clusters = int(design.cluster_treated.sum())
    rng = np.random.default_rng(seed)
    # Floating-point noise must not turn a tie into a miss: the observed assignment is itself a permutation.
    threshold = observed - 1e-9 * max(observed, float(np.std(design.y)), 1e-300)
    extreme = 0
    for start in range(0, permutations, _PERMUTATION_BLOCK):
        block = min(_PERMUTATION_BLOCK, permutations - start)
        chosen = np.argsort(rng.random((block, g_count)), axis=1)[:, :treated_clusters]
        assign = np.zeros((block, g_count))
        np.put_along_axis(assign, chosen, 1.0, axis=1)
        extreme += int(np.count_nonzero(np.abs(statistic(assign)) >= threshold))
    return (extreme + 1) / (permutations + 1)


# ---------------------------------------------------------------------------------------------- compare

def compare(y: Any, treated: Any, clusters: Any = None, covariate: Any = None, method: str = "cr2",
            alpha: float = 0.05, permutations: int = 2000, seed: int = 0) -> Estimate:
    """Treatment − control with small-sample-correct inference for an account-randomised experiment.

    y: outcome per observation; treated: 0/1 per observation (constant within an account); clusters: account
    id per observation (None: each observation is its own cluster, i.e. account-level data); covariate:
    pre-exposure value per observation for CUPED-style regression adjustment (None: no adjustment).

    The effect is the OLS coefficient on treatment in y ~ 1 + treated (+ centred covariate).
    - "cr2": Bell–McCaffrey CR2 cluster-robust variance with the Bell–McCaffrey/Imbens–Kolesár Satterthwaite
      degrees of freedom (homoskedastic working model). Labelled "hc2" when every cluster is one observation
      (then the se is the Welch se; the df is Imbens & Kolesár's K_BM, which equals Welch's df when the two
      arms have equal sample variances). method="hc2" asks for exactly that and requires singleton clusters.
    - "cr1": statsmodels' cov_type="cluster" (its default G/(G−1)·(N−1)/(N−K) correction), df = G − 1.
    - "randomization": p-value from re-randomising treatment across accounts `permutations` times, keeping
      the number of treated accounts, with the plain (covariate-adjusted) difference as statistic —
      exact under the sharp null of no effect for any account; p = (1 + #|T*| ≥ |T|)/(permutations + 1).
      se, df and CI are those of "cr2".
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}; got {method!r}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha}")
    if method == "randomization" and permutations < 1:
        raise ValueError(f"permutations must be at least 1, got {permutations}")
    design = _design(y, treated, clusters, covariate)
    if method == "hc2" and not design.singletons:
        raise ValueError("method 'hc2' treats observations as independent, but some accounts have several "
                         "observations: use method 'cr2' with clusters")
    X = design.matrix()
    contrast = np.zeros(X.shape[1])
    contrast[1] = 1.0
    g_count = len(design.sizes)

    if method == "cr1":
        fit = sm.OLS(design.y, X).fit(cov_type="cluster", cov_kwds={"groups": design.codes})
        se, df = float(fit.bse[1]), float(g_count - 1)
    else:
        fit = sm.OLS(design.y, X).fit()
        se, df = _cr2(X, np.asarray(fit.resid), design.codes, design.sizes, contrast)
    effect = float(fit.params[1])
    if method == "randomization":
        p_value = _randomization_p(design, permutations, seed)
    else:
        p_value = float(2 * stats.t.sf(abs(effect / se), df)) if se > 0 else (1.0 if effect == 0 else 0.0)
    label = method if method in ("cr1", "randomization") else ("hc2" if design.singletons else "cr2")
    half = float(stats.t.ppf(1 - alpha / 2, df)) * se
    control_mean = float(design.y[design.treated == 0].mean())
    treatment_mean = float(design.y[design.treated == 1].mean())
    n_treated = int(design.cluster_treated.sum())
    return Estimate(
        effect=effect,
        relative_lift=effect / control_mean if control_mean != 0 else math.nan,
        se=se, df=df, ci_low=effect - half, ci_high=effect + half, p_value=p_value, method=label,
        clusters=(g_count - n_treated, n_treated), control_mean=control_mean, treatment_mean=treatment_mean)


# ---------------------------------------------------------------------------------------------- CUPED

def cuped_theta(y: Any, covariate: Any) -> float:
    """CUPED's θ = cov(y, x) / var(x), pooled over both arms (Deng et al. 2013)."""
    y_arr, x_arr = _numeric("y", y), _numeric("covariate", covariate)
    if len(y_arr) != len(x_arr):
        raise ValueError(f"covariate has {len(x_arr)} values but y has {len(y_arr)}: the lengths differ")
    x_centred = x_arr - x_arr.mean()
    variance = float(x_centred @ x_centred)
    if variance == 0:
        raise ValueError("covariate is constant: CUPED's θ is undefined")
    return float(x_centred @ (y_arr - y_arr.mean()) / variance)


def cuped_adjust(y: Any, covariate: Any) -> np.ndarray:
    """y − θ (x − mean x): same mean as y, smaller variance when x predicts y."""
    x_arr = _numeric("covariate", covariate)
    return np.asarray(_numeric("y", y) - cuped_theta(y, covariate) * (x_arr - x_arr.mean()))


# ---------------------------------------------------------------------------------------------- SRM

def sample_ratio_check(counts: dict[str, int], weights: dict[str, float] | None = None,
                       alpha: float = 0.001) -> SampleRatio:
    """Chi-square goodness of fit of accounts per variant against the planned weights (default equal)."""
    if len(counts) < 2:
        raise ValueError(f"a sample-ratio check needs at least 2 variants, got {len(counts)}")
    if any(int(c) != c or c < 0 for c in counts.values()):
        raise ValueError(f"counts must be non-negative whole numbers of accounts, got {counts}")
    planned = dict.fromkeys(counts, 1.0) if weights is None else dict(weights)
    if set(planned) != set(counts):
        raise ValueError(f"weights name variants {sorted(planned)} but counts name {sorted(counts)}")
    if any(not w > 0 for w in planned.values()):
        raise ValueError(f"weights must be positive, got {planned}")
    total = sum(counts.values())
    if total == 0:
        raise ValueError("no accounts assigned yet: nothing to check")
    weight_sum = sum(planned.values())
    share = {name: planned[name] / weight_sum for name in counts}
    observed = [counts[name] for name in counts]
    expected = [total * share[name] for name in counts]
    chi2, p_value = stats.chisquare(observed, expected)
    return SampleRatio(observed={k: int(v) for k, v in counts.items()}, expected_share=share,
                       chi2=float(chi2), p_value=float(p_value), mismatch=bool(p_value < alpha))


# ---------------------------------------------------------------------------------------------- clustering

def icc(y: Any, clusters: Any) -> float:
    """One-way ANOVA estimate of the intra-cluster correlation, clipped to [0, 1].

    ρ = (MSB − MSW) / (MSB + (n0 − 1) MSW) with n0 = (N − Σ n_g² / N) / (G − 1), the adjusted mean
    cluster size that accounts for unequal sizes.
    """
    y_arr = _numeric("y", y)
    codes = _cluster_codes(clusters, len(y_arr))
    sizes = np.bincount(codes).astype(float)
    n, g = len(y_arr), len(sizes)
    if g < 2 or n <= g:
        raise ValueError(f"the ICC needs at least 2 accounts and more observations than accounts "
                         f"(got {n} observations in {g} accounts)")
    means = np.bincount(codes, weights=y_arr) / sizes
    msb = float(np.sum(sizes * (means - y_arr.mean()) ** 2) / (g - 1))
    msw = float(np.sum((y_arr - means[codes]) ** 2) / (n - g))
    n0 = (n - float(np.sum(sizes ** 2)) / n) / (g - 1)
    denominator = msb + (n0 - 1) * msw
    if denominator <= 0:
        return 0.0
    return float(np.clip((msb - msw) / denominator, 0.0, 1.0))


def design_effect(cluster_sizes: Any, icc_value: float) -> float:
    """DE = 1 + (m̄ (1 + CV²) − 1) ρ (Eldridge, Ashby & Kerry 2006, Int J Epidemiol 35(5)).

    m̄ is the mean cluster size and CV = sd/m̄ with the population sd (ddof=0), so that m̄ (1 + CV²) =
    Σ m² / Σ m exactly; equal sizes give Kish's 1 + (m − 1) ρ.
    """
    sizes = _numeric("cluster_sizes", cluster_sizes)
    if len(sizes) == 0 or np.any(sizes <= 0):
        raise ValueError("cluster_sizes must be a non-empty list of positive sizes")
    if not 0 <= icc_value <= 1:
        raise ValueError(f"icc_value must be between 0 and 1, got {icc_value}")
    mean = float(sizes.mean())
    cv = float(sizes.std()) / mean
    return 1.0 + (mean * (1.0 + cv ** 2) - 1.0) * icc_value


def user_level_bias_warning(y: Any, treated: Any, clusters: Any) -> str | None:
    """A sentence on how much a user-level analysis would understate the se, or None for account-level data.

    The ICC is estimated on y minus its arm mean, so that a treatment effect does not pose as clustering.
    """
    design = _design(y, treated, clusters, None)
    if design.singletons:
        return None
    arm_means = np.array([design.y[design.treated == arm].mean() for arm in (0, 1)])
    rho = icc(design.y - arm_means[design.treated.astype(int)], design.codes)
    effect = design_effect(design.sizes, rho)
    return (f"These {len(design.y)} observations come from {len(design.sizes)} accounts "
            f"({design.sizes.mean():.1f} per account on average, intra-account correlation {rho:.2f}): the design "
            f"effect is about {effect:.2f}, so a user-level t-test would understate the standard error by a factor "
            f"of about √DE = {math.sqrt(effect):.2f}. Analyse by account (compare with clusters).")


# ---------------------------------------------------------------------------------------------- power

def _check_power_inputs(users_per_account: float, icc: float, sd: float, alpha: float, power: float,
                        cluster_size_cv: float) -> None:
    if users_per_account < 1:
        raise ValueError(f"users_per_account must be at least 1, got {users_per_account}")
    if not 0 <= icc <= 1:
        raise ValueError(f"icc must be between 0 and 1, got {icc}")
    if not sd > 0:
        raise ValueError(f"sd must be positive, got {sd}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha}")
    if not alpha < power < 1:
        raise ValueError(f"power must be between alpha ({alpha}) and 1, got {power}")
    if cluster_size_cv < 0:
        raise ValueError(f"cluster_size_cv must be non-negative, got {cluster_size_cv}")


def minimum_detectable_effect(accounts_per_arm: float, users_per_account: float = 1.0, icc: float = 0.0,
                              sd: float = 1.0, alpha: float = 0.05, power: float = 0.8,
                              baseline_mean: float | None = None, cluster_size_cv: float = 0.0) -> Power:
    """The smallest true effect a two-sided test at `alpha` detects with probability `power`.

    DE = 1 + (m (1 + CV²) − 1) ρ; the effective sample is n_eff = accounts · m / DE per arm. The standardised
    effect solves TTestIndPower().power(d, nobs1=n_eff, alpha, ratio=1, df=2·accounts − 2) = power (statsmodels'
    own solve_power would use df = 2·n_eff − 2, i.e. count users, which is too optimistic with few accounts);
    mde = d · sd, sd being the total (user-level) standard deviation.
    """
    _check_power_inputs(users_per_account, icc, sd, alpha, power, cluster_size_cv)
    if accounts_per_arm <= 1:
        raise ValueError(f"accounts_per_arm must be more than 1, got {accounts_per_arm}")
    effect_design = 1.0 + (users_per_account * (1.0 + cluster_size_cv ** 2) - 1.0) * icc
    effective_n = accounts_per_arm * users_per_account / effect_design
    df = 2.0 * accounts_per_arm - 2.0
    analysis = TTestIndPower()
    critical = float(stats.t.isf(alpha / 2, df))

    def shortfall(d: float) -> float:
        achieved = float(analysis.power(d, nobs1=effective_n, alpha=alpha, ratio=1.0, df=df))
        if math.isnan(achieved):  # scipy's noncentral t gives NaN for the lower tail far out (e.g. 2
            # accounts per arm at alpha 0.001), where that tail is below alpha / 2 and negligible
            achieved = float(stats.nct.sf(critical, df, d * math.sqrt(effective_n / 2.0)))
        return achieved - power

    # Bracket from the normal approximation, which the t answer exceeds: scipy's noncentral t returns NaN
    # for noncentralities far beyond it (e.g. d = 1 with 256 per arm), so never start far out.
    upper = (stats.norm.isf(alpha / 2) + stats.norm.ppf(power)) * math.sqrt(2.0 / effective_n)
    for _ in range(200):
        if not math.isfinite(upper) or shortfall(upper) >= 0:
            break
        upper *= 1.5
    else:
        upper = math.inf  # never bracketed
    if not math.isfinite(upper):
        raise ValueError(f"no effect reaches power {power} at alpha {alpha:g} with {accounts_per_arm:g} "
                         "accounts per arm: raise alpha or the accounts")
    standardised = float(optimize.brentq(shortfall, 1e-12, upper, xtol=1e-12, rtol=1e-12))
    mde = standardised * sd
    relative = mde / abs(baseline_mean) if baseline_mean else None
    return Power(accounts_per_arm=float(accounts_per_arm), users_per_account=float(users_per_account),
                 icc=float(icc), sd=float(sd), alpha=float(alpha), power=float(power),
                 design_effect=effect_design, effective_n_per_arm=effective_n, mde=mde, relative_mde=relative)


def accounts_needed(effect: float, users_per_account: float = 1.0, icc: float = 0.0, sd: float = 1.0,
                    alpha: float = 0.05, power: float = 0.8, cluster_size_cv: float = 0.0) -> float:
    """Accounts per arm at which `effect` is the minimum detectable effect (the inverse of
    minimum_detectable_effect; fractional: round up to plan). Never fewer than 2."""
    _check_power_inputs(users_per_account, icc, sd, alpha, power, cluster_size_cv)
    if effect == 0 or not math.isfinite(effect):
        raise ValueError(f"effect must be a non-zero finite number, got {effect}")
    target = abs(effect)

    def excess(accounts: float) -> float:
        return minimum_detectable_effect(accounts, users_per_account, icc, sd, alpha, power,
                                         cluster_size_cv=cluster_size_cv).mde - target

    lower = 2.0
    if excess(lower) <= 0:
        return lower
    upper = 4.0
    while excess(upper) > 0:
        lower, upper = upper, upper * 2.0
    return float(optimize.brentq(excess, lower, upper, xtol=1e-9, rtol=1e-12))
