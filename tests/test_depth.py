"""Depth: where the samples' events sit in their emulsion, and an image that depends on how much
emulsion the microscope looks through (issue 17, items 1-2), checked against what the geometry
and the optics give analytically."""

import numpy as np
import pytest

from emulsion_core.config.simulator import SimulatorConfig
from emulsion_core.simulator.layout import scan_layout
from emulsion_core.simulator.render import Emitters, at_depth, optical_images
from emulsion_core.simulator.simulate import render_events
from emulsion_core.measure.barshift import barycenters

CFG = SimulatorConfig()


def test_carbon_sits_in_its_implanted_band_and_fog_fills_the_layer():
    carbon = scan_layout("C30keV", "rot0", 3000, 1, CFG)
    fog = scan_layout("fog", "rot0", 3000, 1, CFG)
    lo, hi = CFG.geometry.implant_band_um
    track = carbon.kind == "track"
    assert track.sum() > 2000
    assert carbon.z_um[track].min() >= lo - 1e-6 and carbon.z_um[track].max() <= hi + 1e-6
    top = CFG.geometry.implant_depth_um
    assert np.allclose(carbon.depth_um[track], top + hi - carbon.z_um[track], atol=1e-5)
    assert carbon.depth_um[track].min() >= top - 1e-5 and carbon.depth_um[track].max() <= top + hi - lo + 1e-5
    grains = fog.kind == "fog"
    half = CFG.layer_thickness_um / 2
    assert fog.z_um[grains].min() < -0.9 * half and fog.z_um[grains].max() > 0.9 * half
    assert np.allclose(fog.depth_um[grains], half - fog.z_um[grains], atol=1e-4)  # imaged through the top face
    assert np.median(fog.depth_um[grains]) == pytest.approx(half, rel=0.1)


def _round(depth_um: float, k: float, n: int = 1) -> np.ndarray:
    """Noise-free images of n round in-focus grains at the crop centre, imaged through depth_um."""
    ones = np.ones((n, 1))
    em = Emitters(0.0 * ones, 0.0 * ones, 0.0 * ones, 0.0 * ones, 100.0 * ones, ones, 0.0 * ones)
    optics = CFG.optics.__class__(depth_defocus_per_um=k)
    em = at_depth(em, np.full(n, depth_um), optics)
    return optical_images(em, np.zeros((n, 8, 2)), np.zeros((n, 2)), optics, CFG.camera)


def _trace_of_covariance(img: np.ndarray) -> float:
    """Mean over polarisations of the image's second central moment Mxx + Myy, px^2."""
    h, w = img.shape[-2:]
    y, x = np.mgrid[:h, :w]
    out = []
    for im in img.reshape(-1, h, w):
        f = im / im.sum()
        mx, my = (f * x).sum(), (f * y).sum()
        out.append((f * (x - mx) ** 2).sum() + (f * (y - my) ** 2).sum())
    return float(np.mean(out))


def test_a_round_grain_imaged_deeper_has_the_analytic_wider_profile():
    """sigma^2 = sigma0^2 (1 + (k d / z_R)^2): the trace of the elongated PSF's covariance is
    sigma^2 (e + 1/e) whatever the polariser, and the flux is conserved."""
    o, k, d = CFG.optics, 0.02, 30.0
    sigma0 = o.psf_sigma_nm / o.pixel_size_nm
    for depth in (0.0, d):
        expected = sigma0 ** 2 * (1 + (k * depth / o.defocus_rayleigh_um) ** 2) * (o.psf_elongation + 1 / o.psf_elongation)
        assert _trace_of_covariance(_round(depth, k)) == pytest.approx(expected, rel=0.01)
    assert _round(d, k).sum() == pytest.approx(_round(0.0, k).sum(), rel=1e-3)
    assert np.array_equal(_round(d, 0.0), _round(0.0, 0.0))  # no aberration: depth changes nothing


def test_a_round_grain_imaged_deeper_has_noisier_barycentres():
    """Same flux spread over a wider spot above the same camera noise: the barycentre of each
    polarisation scatters more (vibration off, so noise alone moves it)."""
    cfg = CFG.replace(optics={"depth_defocus_per_um": 0.02}, vibration={"scale": 0.0},
                      grain={"segment_weights": (1, 0, 0, 0, 0), "response_ratio_min": 1.0,
                             "response_ratio_max": 1.0, "brightness_log_sigma": 0.0})
    spread = {}
    for depth in (0.0, 30.0):
        images, _ = render_events("fog", "rot0", np.full(1500, "fog"), np.full(1500, depth),
                                  np.random.default_rng(4), cfg)
        bc = barycenters(images)
        bc = bc[np.isfinite(bc).all(axis=(1, 2))]
        spread[depth] = float(np.std(bc - bc.mean(axis=1, keepdims=True)))
    assert spread[30.0] > 1.3 * spread[0.0]


def test_depth_leaves_the_view_background_and_noise_alone():
    """An event without a grain (a camera-noise cluster) looks the same at any imaging depth."""
    cfg = CFG.replace(optics={"depth_defocus_per_um": 0.05, "contrast_length_um": 10.0})
    shallow, _ = render_events("fog", "rot0", np.full(50, "noise"), np.zeros(50), np.random.default_rng(3), cfg)
    deep, _ = render_events("fog", "rot0", np.full(50, "noise"), np.full(50, 40.0), np.random.default_rng(3), cfg)
    assert np.array_equal(shallow, deep)


def test_the_contrast_loss_is_exponential_in_depth():
    optics = CFG.optics.__class__(contrast_length_um=20.0)
    ones = np.ones((2, 1))
    em = Emitters(0 * ones, 0 * ones, 0 * ones, 0 * ones, 50.0 * ones, ones, 0 * ones)
    out = at_depth(em, np.array([0.0, 20.0]), optics)
    assert out.amplitude_adu[:, 0] == pytest.approx([50.0, 50.0 / np.e])


def test_the_bulk_test_scan_renders_carbon_at_the_bulk_depths_in_the_test_area(tmp_path):
    from emulsion_core.formats import hdf5
    from emulsion_core.simulator.simulate import simulate_dataset
    events = {"C30keV": {"test": 120, "test_bulk": 120}}
    simulate_dataset(tmp_path, events, seed=2, samples=("C30keV",), progress=False, workers=1)
    splits = hdf5.read_splits(tmp_path)
    assert set(splits.loc[splits["file"] == "C30keV_test_bulk.h5", "split"]) == {"test_bulk"}
    bulk, implanted = (hdf5.read_events(tmp_path / f"C30keV_{s}.h5") for s in ("test_bulk", "test"))
    track = bulk["true_kind"] == "track"
    assert bulk.loc[track, "depth_um"].max() > 30
    assert implanted.loc[implanted["true_kind"] == "track", "depth_um"].max() < 4
    assert hdf5.read_attrs(tmp_path / "C30keV_test_bulk.h5")["area"] == "test"


def test_bulk_rows_are_cut_where_validation_sets_the_cut():
    import pandas as pd
    from emulsion_core.analyses import table1
    rng = np.random.default_rng(0)
    parts = [pd.DataFrame({"sample": s, "split": split, "x": rng.normal(mu, 1.0, 2000)})
             for s, mu in (("C30keV", 0.0), ("C100keV", 1.0), ("fog", -1.0)) for split in ("validation", "test")]
    parts += [pd.DataFrame({"sample": s, "split": "test_bulk", "x": rng.normal(mu - 0.5, 1.0, 2000)})
              for s, mu in (("C30keV", 0.0), ("C100keV", 1.0))]
    table = pd.concat(parts, ignore_index=True)
    cut = table1.reference_cut(table, "x")[0]
    rows = table1.rows(table, "m", "x", cut).set_index(["sample", "split"])
    assert ("fog", "test_bulk") not in rows.index  # fog's test area is already the bulk
    for sample in ("C30keV", "C100keV"):
        bulk = table[(table["sample"] == sample) & (table["split"] == "test_bulk")]["x"]
        assert rows.loc[(sample, "test_bulk"), "value"] == pytest.approx((bulk > cut).mean())
    assert rows.loc[("C100keV", "validation"), "value"] == pytest.approx(0.30, abs=0.002)
    comparison = table1.bulk_comparison(rows.reset_index())
    assert (comparison["bulk / implanted"] < 1).all()


def test_a_real_scans_imaging_depth_comes_from_its_surface_per_view():
    """Two views whose faces sit at different stage z (the stage is not level): each view's depth
    is measured from its own highest events, the surface nanoparticles."""
    import pandas as pd
    from emulsion_core.measure.depth import imaging_depth_from_z
    rng = np.random.default_rng(1)
    parts = []
    for view, face in ((0, 100.0), (1, 103.0)):
        z = np.r_[face - rng.uniform(1, 40, 200), face + rng.normal(0, 0.05, 5)]  # grains, nanoparticles
        parts.append(pd.DataFrame({"view": view, "z_um": z, "true_depth": face - z}))
    events = pd.concat(parts, ignore_index=True)
    depth = imaging_depth_from_z(events)
    grains = events["true_depth"] > 0.5
    assert np.abs(depth[grains] - events.loc[grains, "true_depth"]).max() < 0.3
    lone = imaging_depth_from_z(events.iloc[:10].assign(view=np.arange(10)))  # sparse views: the scan's face
    assert np.isfinite(lone).all() and (lone >= 0).all()


@pytest.mark.slow
def test_without_the_depth_blur_bulk_tracks_pass_the_barshift_cut_as_implanted_ones():
    """Depth is the only difference between the implanted and the bulk test tracks: with the blur
    off their barshift efficiencies agree within counting errors; with it on they do not."""
    from emulsion_core.simulator import calibrate
    off = calibrate.bulk_barshift_efficiency(CFG.replace(optics={"depth_defocus_per_um": 0.0}), 1500, seed=5)
    for s in ("C30keV", "C100keV"):
        err = np.sqrt(2 * off[f"{s} implanted"] * (1 - off[f"{s} implanted"]) / 1100)
        assert abs(off[f"{s} bulk"] - off[f"{s} implanted"]) < 3 * err + 0.01, (s, off)
    on = calibrate.bulk_barshift_efficiency(CFG.replace(optics={"depth_defocus_per_um": 0.05}), 1500, seed=5)
    assert on["C100keV bulk"] > on["C100keV implanted"] + 0.05, on


def test_profile_scan_shows_the_vibration_raising_the_c30_floor():
    """Along the vibration scale (the calibration's flattest direction) the C30keV 10 % quantile
    rises with the scale (physics.md e.1: 9.5 nm at 1.0, 18.5 nm at 3.0), and chi2 is reported."""
    from emulsion_core.simulator import calibrate
    scan = calibrate.profile_scan("vibration.scale", (1.0, 3.0), n_clean=500)
    assert np.isfinite(scan["chi2"]).all()
    assert scan.loc[3.0, "pull C30keV_q10_nm"] > scan.loc[1.0, "pull C30keV_q10_nm"] + 0.5
