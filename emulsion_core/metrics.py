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
