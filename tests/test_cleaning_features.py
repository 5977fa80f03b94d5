"""Cluster measurement on analytic spots, and the cleaning cuts on tables with known answers."""

import numpy as np
import pandas as pd
import pytest

from emulsion_core.measure import cleaning
from emulsion_core.measure.clusters import background_and_noise
from emulsion_core.measure.features import cluster_features


def gaussian_images(n, amp, sigma, bkg=25.0, noise=0.0, rng=None, size=40):
    y, x = np.mgrid[0:size, 0:size] - (size - 1) / 2
    spot = amp * np.exp(-(x**2 + y**2) / (2 * sigma**2))
    img = np.broadcast_to(bkg + spot, (n, 8, size, size)).astype(float)
    if noise:
        img = img + noise * rng.standard_normal(img.shape)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def test_background_and_noise_of_flat_noisy_images(rng):
    img = 30.0 + 2.0 * rng.standard_normal((50, 40, 40))
    b, s = background_and_noise(img)
    assert np.allclose(b, 30.0, atol=0.45)  # median of 444 border pixels: sd 0.12 ADU
    assert s.mean() == pytest.approx(2.0, rel=0.04)  # quantile estimator: unbiased on average
    assert np.allclose(s, 2.0, rtol=0.3)  # ~7 % scatter per event from 444 border pixels


def test_npx_of_a_gaussian_spot_matches_the_analytic_area(rng):
    """Pixels above threshold T of a spot A exp(-r^2 / 2 s^2): area = 2 pi s^2 ln(A / T)."""
    noise, amp, sigma = 2.0, 60.0, 2.6
    feats = cluster_features(gaussian_images(30, amp, sigma, noise=noise, rng=rng))
    # threshold = 3 x single-frame noise; the unpolarised image's noise is noise / sqrt(8)
    t = 3.0 * noise
    expected = 2 * np.pi * sigma**2 * np.log(amp / t)
    assert feats["npx"].median() == pytest.approx(expected, rel=0.12)
    assert feats["peak_adu"].median() == pytest.approx(amp, abs=1.5)
    assert (feats["n_peaks"] == 1).all()
    assert feats["volume"].median() == pytest.approx(8 * 2 * np.pi * sigma**2 * amp * (1 - t / amp), rel=0.1)


def test_noise_only_images_have_no_cluster(rng):
    feats = cluster_features(gaussian_images(30, 0.0, 2.6, noise=2.0, rng=rng))
    assert (feats["npx"] <= 3).all()
    assert (feats["n_peaks"] == 0).all()


def _table(**cols):
    base = {"view_density": 100, "npx": 40, "peak_adu": 20.0, "brightness_mean": 40.0, "n_peaks": 1, "z_um": 0.0, "n_pol": 8,
            "sample": "fog"}
    base.update(cols)
    n = max(len(v) if isinstance(v, list) else 1 for v in base.values())
    return pd.DataFrame({k: v if isinstance(v, list) else [v] * n for k, v in base.items()})


@pytest.mark.parametrize("column,values,cut", [
    ("view_density", [599, 601], "dense_area"),
    ("npx", [10, 11], "too_few_pixels"),
    ("peak_adu", [7.9, 8.0], "too_dim"),
    ("brightness_mean", [100.1, 100.0], "too_bright"),
    ("npx", [351, 350], "too_bright"),
    ("n_peaks", [2, 1], "not_isolated"),
    ("z_um", [22.5, 21.5], "surface"),
    ("z_um", [-22.5, -21.5], "surface"),
    ("n_pol", [7, 8], "missing_polarisation"),
])
def test_each_cut_removes_exactly_what_violates_it(column, values, cut):
    t = _table(**{column: values})
    m = cleaning.cut_masks(t)
    removed = m[cut].to_numpy()
    cuts = cleaning.CleaningCuts()
    expected = {
        "dense_area": lambda v: v > cuts.max_view_density, "too_few_pixels": lambda v: v < cuts.min_npx,
        "too_dim": lambda v: v < cuts.min_peak_adu,
        "too_bright": (lambda v: v > cuts.max_brightness_mean_adu) if column == "brightness_mean" else (lambda v: v > cuts.max_npx),
        "not_isolated": lambda v: v > 1, "surface": lambda v: abs(v) > 22.0,
        "missing_polarisation": lambda v: v < 8,
    }[cut]
    np.testing.assert_array_equal(removed, [expected(v) for v in values])
    # the other cuts leave these events alone (except npx, which two cuts read)
    others = m.drop(columns=[cut]).to_numpy().any(axis=1)
    assert not others.any() or column == "npx"


def test_cutflow_counts_add_up():
    t = _table(npx=[5, 40, 40, 40, 400], n_peaks=[1, 1, 2, 1, 1], z_um=[0, 0, 0, 23.0, 0],
               sample=["fog", "fog", "fog", "C30keV", "C30keV"])
    flow = cleaning.cutflow(t)
    assert flow.loc["fog", "in"] == 3 and flow.loc["fog", "left"] == 1
    assert flow.loc["fog", "too_few_pixels"] == 1 and flow.loc["fog", "not_isolated"] == 1
    assert flow.loc["C30keV", "surface"] == 1 and flow.loc["C30keV", "too_bright"] == 1
    cut_cols = list(cleaning.CUTS)
    assert (flow[cut_cols].sum(axis=1) + flow["left"] == flow["in"]).all()
    np.testing.assert_array_equal(cleaning.clean(t), [False, True, False, False, False])


def test_missing_polarisation_is_named_before_the_brightness_cuts():
    """A grain converted with a missing polarisation (zero image) often also fails the brightness
    cuts; the cut flow names the missing polarisation, after the view and pixel-count cuts only
    (the experiment's order of those two, physics.md b.8)."""
    t = _table(n_pol=7, npx=[40, 40, 400, 40, 40, 40, 40], peak_adu=[3.0, 20.0, 20.0, 20.0, 20.0, 20.0, 20.0],
               brightness_mean=[40.0, 120.0, 40.0, 40.0, 40.0, 40.0, 40.0], n_peaks=[1] * 5 + [2, 1],
               z_um=[0.0] * 6 + [23.0])
    removed = cleaning.first_cut(cleaning.cut_masks(t))
    assert (removed == "missing_polarisation").all()
    assert cleaning.cutflow(t).loc["fog", "missing_polarisation"] == len(t)
    assert not cleaning.clean(t).any()
    assert cleaning.first_cut(cleaning.cut_masks(_table(n_pol=7, view_density=700))).tolist() == ["dense_area"]
    assert cleaning.first_cut(cleaning.cut_masks(_table(n_pol=7, npx=5))).tolist() == ["too_few_pixels"]


def test_missing_column_is_named():
    with pytest.raises(KeyError, match="peak_adu"):
        cleaning.cut_masks(_table().drop(columns="peak_adu"))


def test_isolated_fractions_count_events_of_one_peak():
    """Known counts: 3 of 4 C30keV events and 1 of 2 fog events have one peak; the authors'
    fractions stand beside them."""
    import pandas as pd
    from emulsion_core.measure import cleaning
    ev = pd.DataFrame({"sample": ["C30keV"] * 4 + ["fog"] * 2, "n_peaks": [1, 1, 2, 1, 3, 1]})
    t = cleaning.isolated_fractions(ev)
    assert t.loc["C30keV", "fraction"] == 0.75 and t.loc["fog", "fraction"] == 0.5
    assert t.loc["C30keV", "authors (tr_flag = -1)"] == 0.71 and t.loc["fog", "events"] == 2
