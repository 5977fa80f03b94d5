"""Physics-truth tests of the conventional estimators: barshift, direction, ellipse fit."""

import numpy as np
import pytest

from emulsion_core.measure.barshift import barycenters, barshift, conventional_variables, direction
from emulsion_core.stats.metrics import reduction_factor, roc_points, threshold_at_efficiency, threshold_interval
from emulsion_core.measure.shape import ellipse_fit

PIX = 27.52
SIZE = 40


def spot_images(centres, sigma=(2.6, 2.6), angle_deg=0.0, amp=80.0, bkg=25.0, noise=0.0, rng=None):
    """Elliptical Gaussian spots, one image per polarisation: centres (N, P, 2) px (x = column)."""
    n, p, _ = centres.shape
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(float)
    dx = xx[None, None] - centres[..., 0, None, None]
    dy = yy[None, None] - centres[..., 1, None, None]
    a = np.radians(angle_deg)
    u = dx * np.cos(a) + dy * np.sin(a)
    v = -dx * np.sin(a) + dy * np.cos(a)
    img = bkg + amp * np.exp(-0.5 * ((u / sigma[0]) ** 2 + (v / sigma[1]) ** 2))
    if noise:
        img = img + noise * rng.standard_normal(img.shape)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def moving_spot(d_px, phi_deg, n=4, p=8, rng=None, noise=0.0):
    t = np.linspace(-0.5, 0.5, p)
    c = (SIZE - 1) / 2 + np.stack([t * d_px * np.cos(np.radians(phi_deg)), t * d_px * np.sin(np.radians(phi_deg))], -1)
    return spot_images(np.broadcast_to(c, (n, p, 2)).copy(), noise=noise, rng=rng)


@pytest.mark.parametrize("d_px", [1.0, 1.5, 2.5, 4.0])
def test_linear_displacement_gives_barshift_d_times_pixel(d_px):
    b = barshift(moving_spot(d_px, 20.0), PIX)
    assert np.allclose(b, d_px * PIX, rtol=0.05)


@pytest.mark.parametrize("phi", [-75.0, -30.0, 0.0, 15.0, 45.0, 89.0])
def test_direction_of_a_moving_spot(phi):
    est = direction(moving_spot(3.0, phi))
    diff = (est - phi + 90) % 180 - 90  # axial difference
    assert np.all(np.abs(diff) < 2.0), est


@pytest.mark.parametrize("phi", [-40.0, 10.0, 60.0])
def test_rotating_images_by_90_deg_turns_the_direction_by_90(phi, rng):
    images = moving_spot(3.0, phi, n=20, rng=rng, noise=1.0)
    before = direction(images)
    after = direction(np.rot90(images, k=1, axes=(-2, -1)).copy())
    turn = np.mod(after - before, 180.0)
    assert np.all(np.abs(turn - 90.0) < 1.0), turn


def test_static_spot_barshift_is_the_noise_level(rng):
    """A spot that does not move: barshift is the diameter of 8 points scattered by the noise
    alone. Measure the barycentre scatter, then compare with the expected diameter of 8 iid
    Gaussian points of that scatter (pure Monte Carlo, independent of the estimator)."""
    n, p = 2000, 8
    images = spot_images(np.full((n, p, 2), (SIZE - 1) / 2), amp=40.0, noise=3.0, rng=rng)
    bc = barycenters(images)
    sigma = (bc - bc.mean(axis=1, keepdims=True)).std() * np.sqrt(p / (p - 1))
    pts = rng.standard_normal((20000, p, 2)) * sigma
    i, j = np.triu_indices(p, 1)
    expected = np.hypot(*(pts[:, i] - pts[:, j]).transpose(2, 0, 1)).max(axis=1).mean()
    measured = barshift(images, 1.0)
    assert measured.mean() == pytest.approx(expected, rel=0.06)
    assert sigma < 0.3  # px: a bright spot's barycentre is known to ~8 nm


def test_conventional_variables_regularity_of_a_back_and_forth_line():
    """A spot going out along a line and back over the cycle: path = 2 x barshift."""
    t = np.array([0, 1, 2, 3, 4, 3, 2, 1]) / 4.0 - 0.5
    c = (SIZE - 1) / 2 + np.stack([3.0 * t, np.zeros(8)], -1)
    cv = conventional_variables(spot_images(np.broadcast_to(c, (2, 8, 2)).copy()), PIX)
    assert np.allclose(cv["regularity"], 2.0, atol=0.05)
    assert np.allclose(cv["pol1_deg"], 0.0) and np.allclose(cv["pol2_deg"], 90.0)


@pytest.mark.parametrize("angle", [-60.0, 0.0, 30.0, 80.0])
def test_ellipse_fit_recovers_axes_and_angle(angle, rng):
    s_major, s_minor = 4.0, 2.5
    images = spot_images(np.full((10, 8, 2), (SIZE - 1) / 2), sigma=(s_major, s_minor), angle_deg=angle,
                         amp=100.0, noise=1.0, rng=rng)
    fit = ellipse_fit(images, PIX)
    assert np.allclose(fit["major_nm"], 4 * s_major * PIX, rtol=0.05)
    assert np.allclose(fit["minor_nm"], 4 * s_minor * PIX, rtol=0.05)
    assert np.allclose(fit["ellipticity"], s_major / s_minor, rtol=0.06)
    diff = (fit["angle_deg"] - angle + 90) % 180 - 90
    assert np.all(np.abs(diff) < 2.0)


def test_round_spot_has_ellipticity_one(rng):
    fit = ellipse_fit(spot_images(np.full((10, 8, 2), 19.5), amp=100.0, noise=1.0, rng=rng), PIX)
    assert np.allclose(fit["ellipticity"], 1.0, atol=0.05)


def test_threshold_at_efficiency_on_a_known_distribution(rng):
    x = rng.random(100000)
    t = threshold_at_efficiency(x, 0.3)
    assert t == pytest.approx(0.7, abs=0.005)
    assert np.mean(x > t) == pytest.approx(0.3, abs=1e-4)
    t, lo, hi = threshold_interval(x, 0.3)
    # quantile standard error: sqrt(q (1 - q) / n) / density, density 1
    assert hi - lo == pytest.approx(2 * np.sqrt(0.21 / 100000), rel=0.15)


def test_reduction_factor_upper_limit_when_nothing_passes():
    r = reduction_factor(np.zeros(1000), 0.5)
    assert r["k"] == 0 and r["value"] == 0
    assert r["upper_limit"] == pytest.approx(1 - 0.1 ** (1 / 1000), rel=1e-6)


def test_roc_points_of_separated_distributions():
    thr, eff, bfr = roc_points(np.linspace(1, 2, 1000), np.linspace(0, 0.99, 1000))
    assert eff.max() == pytest.approx(1.0, abs=0.01) and bfr[eff > 0.999].min() < 0.01
