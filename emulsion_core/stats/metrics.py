"""Efficiencies with binomial uncertainties, and numbers rounded to their uncertainty.

(Thresholds at fixed signal efficiency, reduction factors and ROC points join this module with
the conventional analysis.)
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

ONE_SIGMA = 0.682689492137086  # central coverage of +-1 sigma


def clopper_pearson(k, n, cl: float = ONE_SIGMA):
    """Exact (Clopper-Pearson) central interval for a binomial fraction k/n.

    k, n : counts (arrays broadcast). Returns (fraction, lower, upper); k = 0 gives lower 0,
    k = n gives upper 1; n = 0 gives NaN.
    """
    k = np.asarray(k, dtype=float)
    n = np.asarray(n, dtype=float)
    alpha = 1.0 - cl
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where(n > 0, k / np.where(n > 0, n, 1), np.nan)
        lo = np.where(k > 0, stats.beta.ppf(alpha / 2, k, n - k + 1), 0.0)
        hi = np.where(k < n, stats.beta.ppf(1 - alpha / 2, k + 1, n - k), 1.0)
    lo = np.where(n > 0, lo, np.nan)
    hi = np.where(n > 0, hi, np.nan)
    return frac, lo, hi


def format_value(value: float, err_low: float, err_high: float | None = None) -> str:
    """``value ± err`` (or ``value +hi -lo``) rounded to the uncertainty: one significant digit,
    two when it starts with 1."""
    err_high = err_low if err_high is None else err_high
    if not np.isfinite(value):
        return "n/a"
    err = min(abs(err_low), abs(err_high)) or max(abs(err_low), abs(err_high))
    if err <= 0 or not np.isfinite(err):
        return f"{value:g}"
    exponent = math.floor(math.log10(err))
    digits = -exponent + (1 if f"{err:e}"[0] == "1" else 0)
    digits = max(digits, 0)
    lo, hi = round(abs(err_low), digits), round(abs(err_high), digits)
    if lo == hi:
        return f"{value:.{digits}f} ± {lo:.{digits}f}"
    return f"{value:.{digits}f} +{hi:.{digits}f} -{lo:.{digits}f}"


def format_fraction(k, n) -> str:
    """k/n with its 68 % Clopper-Pearson interval, rounded to the uncertainty."""
    p, lo, hi = clopper_pearson(k, n)
    return format_value(float(p), float(p - lo), float(hi - p))


def threshold_at_efficiency(scores, efficiency: float) -> float:
    """Cut value t such that the fraction of ``scores`` above t is ``efficiency`` (select score > t)."""
    s = np.sort(np.asarray(scores, dtype=float))
    s = s[np.isfinite(s)]
    k = int(round((1.0 - efficiency) * len(s)))  # events at or below t
    k = min(max(k, 1), len(s))
    return float(s[k - 1])


def threshold_interval(scores, efficiency: float, cl: float = ONE_SIGMA) -> tuple[float, float, float]:
    """The threshold and its interval from the binomial spread of the order statistic.

    The number of events below the true quantile is binomial(n, 1 - efficiency); the cut values
    at the ends of its ``cl`` interval bound the threshold. Returns (threshold, low, high).
    """
    s = np.sort(np.asarray(scores, dtype=float))
    s = s[np.isfinite(s)]
    n = len(s)
    q = 1.0 - efficiency
    lo_k, hi_k = stats.binom.interval(cl, n, q)
    t = threshold_at_efficiency(s, efficiency)
    return t, float(s[max(int(lo_k) - 1, 0)]), float(s[min(int(hi_k), n) - 1])


def efficiency(scores, threshold: float, cl: float = ONE_SIGMA):
    """Fraction of events with score > threshold, with its Clopper-Pearson interval.

    Returns (k, n, fraction, lower, upper).
    """
    s = np.asarray(scores, dtype=float)
    k, n = int(np.sum(s > threshold)), int(np.sum(np.isfinite(s)))
    f, lo, hi = clopper_pearson(k, n, cl)
    return k, n, float(f), float(lo), float(hi)


def reduction_factor(background_scores, threshold: float, cl: float = ONE_SIGMA, limit_cl: float = 0.9):
    """Background reduction factor: fraction of background passing the cut (smaller is better).

    Returns a dict: ``k``, ``n``, ``value`` (k/n), ``low``, ``high`` (Clopper-Pearson at ``cl``) and
    ``upper_limit`` (one-sided at ``limit_cl``; the quoted result when nothing passes).
    """
    k, n, f, lo, hi = efficiency(background_scores, threshold, cl)
    ul = float(stats.beta.ppf(limit_cl, k + 1, n - k)) if k < n else 1.0
    return {"k": k, "n": n, "value": f, "low": lo, "high": hi, "upper_limit": ul}


def roc_points(signal_scores, background_scores, n_points: int = 200):
    """Signal efficiency and background fraction passing, for cuts on a grid of quantiles.

    Returns (thresholds, signal_efficiency, background_fraction), background fraction > 0 only
    where some background passes (log-scale friendly).
    """
    sig = np.asarray(signal_scores, dtype=float)
    bkg = np.asarray(background_scores, dtype=float)
    thr = np.unique(np.quantile(np.concatenate([sig, bkg]), np.linspace(0, 1, n_points)))
    sig_s, bkg_s = np.sort(sig), np.sort(bkg)
    eff = 1.0 - np.searchsorted(sig_s, thr, side="right") / len(sig_s)
    bfr = 1.0 - np.searchsorted(bkg_s, thr, side="right") / len(bkg_s)
    return thr, eff, bfr
