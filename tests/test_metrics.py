"""Binomial intervals against known values, and rounding to the uncertainty."""

import numpy as np
import pytest
from scipy import stats

from emulsion_core.stats.metrics import clopper_pearson, format_value


def test_clopper_pearson_known_values():
    # k = 0 of n: upper limit solves (1 - p)^n = alpha / 2
    p, lo, hi = clopper_pearson(0, 20, cl=0.9)
    assert p == 0 and lo == 0 and hi == pytest.approx(1 - 0.05 ** (1 / 20), rel=1e-9)
    p, lo, hi = clopper_pearson(20, 20, cl=0.9)
    assert hi == 1 and lo == pytest.approx(0.05 ** (1 / 20), rel=1e-9)


def test_clopper_pearson_covers_at_least_its_level(rng):
    n, true = 50, 0.3
    k = rng.binomial(n, true, 20000)
    _, lo, hi = clopper_pearson(k, n)
    coverage = np.mean((lo <= true) & (true <= hi))
    assert coverage >= 0.6827 - 3 * np.sqrt(0.68 * 0.32 / 20000)


def test_large_n_matches_normal_approximation():
    p, lo, hi = clopper_pearson(3000, 10000)
    sigma = np.sqrt(0.3 * 0.7 / 10000)
    assert p - lo == pytest.approx(sigma, rel=0.02) and hi - p == pytest.approx(sigma, rel=0.02)


@pytest.mark.parametrize("value,lo,hi,text", [
    (0.27187, 0.0081, None, "0.272 ± 0.008"),
    (0.27187, 0.0151, None, "0.272 ± 0.015"),
    (42.31, 0.2, None, "42.3 ± 0.2"),
    (0.0014, 0.00045, 0.0005, "0.0014 +0.0005 -0.0004"),
    (1234.0, 56.0, None, "1234 ± 56"),
])
def test_format_value_rounds_to_the_uncertainty(value, lo, hi, text):
    assert format_value(value, lo, hi) == text


def test_beta_quantile_definition():
    _, lo, hi = clopper_pearson(7, 30, cl=0.95)
    assert lo == pytest.approx(stats.beta.ppf(0.025, 7, 24)) and hi == pytest.approx(stats.beta.ppf(0.975, 8, 23))
