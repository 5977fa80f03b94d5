"""Physics-truth tests of the simulator: answers known analytically, not copied from a run."""

import numpy as np
import pytest

from emulsion_core.simulator import grains as gr
from emulsion_core.measure.features import cluster_features
from emulsion_core.formats.hdf5 import read_scan
from emulsion_core.simulator.render import Emitters, digitise, optical_images, plasmon_response, vibration_shifts
from emulsion_core.config.simulator import SimulatorConfig, TrackConfig, VibrationConfig
from emulsion_core.simulator.simulate import render_events, simulate_dataset, simulate_scan

from conftest import barycentres  # noqa: E402  (repository-root conftest)

CFG = SimulatorConfig()
NO_VIBRATION = CFG.replace(vibration={"scale": 0.0, "mu_x_nm": (0.0,) * 8, "mu_y_nm": (0.0,) * 8})


def one_segment(n, theta_deg=0.0, ratio=1.0, x_nm=0.0, y_nm=0.0, amplitude=60.0):
    full = lambda v: np.full((n, 1), v, dtype=float)  # noqa: E731
    return Emitters(full(x_nm), full(y_nm), full(0.0), full(theta_deg), full(amplitude), full(ratio), full(0.0))


def test_plasmon_response_law():
    a = np.arange(0, 180, 22.5)
    r = plasmon_response(np.array([30.0]), np.array([0.25]), a)[0]
    expected = np.cos(np.radians(a - 30)) ** 2 + 0.25 * np.sin(np.radians(a - 30)) ** 2
    np.testing.assert_allclose(r, expected, rtol=1e-12)


def test_round_grain_without_vibration_keeps_its_barycentre(rng):
    n = 200
    em = one_segment(n, ratio=1.0)
    offset = rng.uniform(-0.5, 0.5, (n, 2))
    signal = optical_images(em, np.zeros((n, 8, 2)), offset, NO_VIBRATION.optics, NO_VIBRATION.camera)
    bc = barycentres(signal + 24.0, k_sigma=0.0)  # noise-free: every pixel above background counts
    spread = bc - bc.mean(axis=1, keepdims=True)
    assert np.abs(spread).max() < 0.01  # px, i.e. < 0.3 nm
    # with camera noise, the barycentre stays put within the noise (no systematic movement)
    images = digitise(signal, np.full(n, 24.0), rng, NO_VIBRATION.camera)
    noisy = barycentres(images)
    shift = noisy[:, :, :] - noisy.mean(axis=1, keepdims=True)
    assert np.abs(shift.mean(axis=0)).max() < 0.05  # px: no polarisation-dependent bias
    assert shift.std() < 0.3  # px (8 nm): noise-level scatter only


@pytest.mark.parametrize("theta", [0.0, 30.0, 100.0, 150.0])
def test_elongated_grain_brightness_follows_cos2_with_right_phase(theta):
    n, ratio = 4, 0.2
    em = one_segment(n, theta_deg=theta, ratio=ratio)
    cam = NO_VIBRATION.camera
    signal = optical_images(em, np.zeros((n, 8, 2)), np.zeros((n, 2)), NO_VIBRATION.optics, cam)
    total = signal.sum(axis=(-1, -2)).mean(axis=0) / np.asarray(cam.polarisation_gain)
    a = np.radians(np.arange(0, 180, 22.5))
    # I(a) = c0 + c1 cos 2a + c2 sin 2a; maximum at a = theta; min/max = r
    design = np.stack([np.ones_like(a), np.cos(2 * a), np.sin(2 * a)], axis=1)
    c0, c1, c2 = np.linalg.lstsq(design, total, rcond=None)[0]
    phase = np.degrees(0.5 * np.arctan2(c2, c1)) % 180
    assert abs((phase - theta + 90) % 180 - 90) < 0.5
    amp = np.hypot(c1, c2)
    assert (c0 - amp) / (c0 + amp) == pytest.approx(ratio, abs=0.01)


@pytest.mark.parametrize("energy", [30, 60, 100])
def test_projected_track_length_matches_range_distribution(energy, rng):
    cfg = TrackConfig(dip_sigma_deg=30.0)  # the analytic moments ignore the 89-degree clip
    n = 40000
    g, truth = gr.track_grains(np.arange(n), energy, 0.0, rng, cfg, CFG.grain)
    # projected length = R cos(dip), R ~ N(R0, s R0), dip ~ |N(0, sigma)|: E = R0 exp(-sigma^2 / 2)
    sigma = np.radians(cfg.dip_sigma_deg)
    r0 = cfg.range_mean_nm[energy]
    assert truth["length_nm"].mean() == pytest.approx(r0 * np.exp(-sigma**2 / 2), rel=0.015)
    # spread: Var(R cos) = E[R^2] E[cos^2] - E^2 with E[cos^2 |X|] = (1 + exp(-2 sigma^2)) / 2
    var = r0**2 * (1 + cfg.range_straggling**2) * (1 + np.exp(-2 * sigma**2)) / 2 - (r0 * np.exp(-sigma**2 / 2)) ** 2
    assert truth["length_nm"].std() == pytest.approx(np.sqrt(var), rel=0.03)
    # grains lie along the track: their extent along the beam never exceeds the projected length
    ev = g.event
    span = np.zeros(n)
    np.maximum.at(span, ev, g.x_nm)
    lo = np.zeros(n)
    np.minimum.at(lo, ev, g.x_nm)
    assert np.all(span - lo <= truth["length_nm"] + 6 * cfg.grain_offset_nm)
    # direction: beam along 0 deg with the configured scatter
    assert np.median(truth["phi_deg"]) == pytest.approx(0.0, abs=0.5)


def test_longer_tracks_at_higher_energy(rng):
    means = [gr.track_grains(np.arange(5000), e, 0.0, rng, TrackConfig(), CFG.grain)[1]["length_nm"].mean()
             for e in (30, 60, 100)]
    assert means[0] < means[1] < means[2]


def _round_fog_config(scale):
    return CFG.replace(grain={"segment_weights": (1, 0, 0, 0, 0), "response_ratio_min": 1.0, "response_ratio_max": 1.0,
                              "brightness_median_adu": 2.0 * CFG.grain.brightness_median_adu},
                       vibration={"scale": scale, "noise_residual_nm": 0.0})


def test_rotation_turns_the_beam_but_not_the_vibration(rng):
    """Round fog grains (barycentre moves only by vibration) in rot0 and rot90 scans: the
    per-polarisation jitter keeps its microscope-frame anisotropy (x wider than y at 0 deg);
    carbon tracks' true direction turns by 90 deg."""
    cfg = _round_fog_config(scale=4.0)
    spreads = {}
    for scan in ("rot0", "rot90"):
        kind = np.full(3000, "fog")
        images, _ = render_events("fog", scan, kind, np.zeros(3000), np.random.default_rng(7), cfg)
        bc = barycentres(images) * cfg.optics.pixel_size_nm
        bc = bc[~np.isnan(bc).any(axis=(1, 2))]  # drop the rare grain too dim to threshold
        assert len(bc) > 2900
        d = bc - bc.mean(axis=1, keepdims=True)
        spreads[scan] = d.std(axis=0)  # (P, 2) nm
    vib = VibrationConfig(noise_residual_nm=0.0)
    for scan, s in spreads.items():
        # polarisation 0: sigma_x 5.13 vs sigma_y 4.09 nm (x 4); at 90 deg they are nearly equal
        assert s[0, 0] > 1.1 * s[0, 1], (scan, s[0])
        ratio = s[0, 0] / s[0, 1]
        assert ratio == pytest.approx(vib.sigma_x_nm[0] / vib.sigma_y_nm[0], rel=0.12)
    np.testing.assert_allclose(spreads["rot0"], spreads["rot90"], rtol=0.12)

    phis = {}
    for scan in ("rot0", "rot90"):
        _, truth = render_events("C100keV", scan, np.full(2000, "track"), np.zeros(2000), np.random.default_rng(3), CFG)
        phis[scan] = truth["true_phi_deg"].to_numpy()
    assert np.median(np.abs(phis["rot0"])) < 15.0
    assert np.median(np.abs(phis["rot90"])) > 75.0  # axial angle near +-90


def test_vibration_shifts_have_the_measured_covariance(rng):
    """With no noise to remove, the residuals about the mean over polarisations reproduce the
    a.6 table (which is such a residual); with noise, the vibration is the table less the
    noise in quadrature."""
    cfg = VibrationConfig(scale=1.0, noise_residual_nm=0.0)
    s = vibration_shifts(200000, rng, cfg)
    shrink = np.sqrt(1 - 1 / 8)
    np.testing.assert_allclose(s[..., 0].std(axis=0) * shrink, cfg.sigma_x_nm, rtol=0.02)
    np.testing.assert_allclose(s[..., 1].std(axis=0) * shrink, cfg.sigma_y_nm, rtol=0.02)
    noisy = VibrationConfig(scale=1.0, noise_residual_nm=2.5)
    sx, _ = noisy.sigma_nm()
    np.testing.assert_allclose(sx**2 * (1 - 1 / 8) + 2.5**2, np.square(noisy.sigma_x_nm), rtol=1e-9)
    rho = [np.corrcoef(s[:, p, 0], s[:, p, 1])[0, 1] for p in range(8)]
    np.testing.assert_allclose(rho, cfg.rho, atol=0.01)


@pytest.mark.parametrize("distance_px,peaks", [(10.0, 2), (14.0, 2), (1.0, 1)])
def test_resolved_grains_give_two_peaks_and_fail_isolation(distance_px, peaks, rng):
    from emulsion_core.measure import cleaning
    n = 50
    pix = CFG.optics.pixel_size_nm
    x = np.array([[-distance_px / 2 * pix, distance_px / 2 * pix]] * n)
    full = lambda v: np.full((n, 2), v, dtype=float)  # noqa: E731
    em = Emitters(x, full(0.0), full(0.0), full(0.0), full(50.0), full(1.0), full(0.0))
    signal = optical_images(em, np.zeros((n, 8, 2)), rng.uniform(-0.5, 0.5, (n, 2)), CFG.optics, CFG.camera)
    feats = cluster_features(digitise(signal, np.full(n, 24.0), rng, CFG.camera))
    assert np.all(feats["n_peaks"] == peaks)
    feats["view_density"], feats["z_um"] = 100, 0.0
    isolated = ~cleaning.cut_masks(feats)["not_isolated"]
    assert isolated.all() == (peaks == 1)


def test_deterministic_and_independent_of_workers(tmp_path):
    events = {"C30keV": {"rot0": 2100}}
    a = simulate_dataset(tmp_path / "a", events, seed=5, samples=("C30keV",), progress=False, workers=1)
    b = simulate_dataset(tmp_path / "b", events, seed=5, samples=("C30keV",), progress=False, workers=2)
    sa, sb = read_scan(a.parent / "C30keV_rot0.h5"), read_scan(b.parent / "C30keV_rot0.h5")
    np.testing.assert_array_equal(sa.images, sb.images)
    assert sa.events.equals(sb.events)
    c = simulate_scan(tmp_path / "c.h5", "C30keV", "rot0", 300, seed=6)
    assert not np.array_equal(read_scan(c).images, sa.images[:300])


def test_resume_regenerates_only_missing_scans(tmp_path):
    events = {"fog": {"rot0": 200, "rot45": 200, "test": 300}}
    simulate_dataset(tmp_path, events, seed=1, samples=("fog",), progress=False, workers=1)
    kept = tmp_path / "fog_rot0.h5"
    stamp = kept.stat().st_mtime_ns
    before = read_scan(tmp_path / "fog_test.h5").images
    (tmp_path / "fog_test.h5").unlink()
    simulate_dataset(tmp_path, events, seed=1, samples=("fog",), progress=False, workers=1)
    assert kept.stat().st_mtime_ns == stamp
    np.testing.assert_array_equal(read_scan(tmp_path / "fog_test.h5").images, before)
    splits = (tmp_path / "splits.csv").read_text().splitlines()
    assert len(splits) == 1 + 700


def test_scan_file_records_its_provenance(tmp_path):
    path = simulate_scan(tmp_path / "s.h5", "C100keV", "rot45", 100, seed=9)
    scan = read_scan(path)
    assert scan.attrs["rotation_deg"] == 45.0 and scan.attrs["beam_phi_deg"] == 45.0
    assert scan.attrs["seed"] == 9
    assert SimulatorConfig.from_json(scan.attrs["simulator_config"]) == CFG
    assert scan.images.min() > 0  # real crops never contain 0 ([PHD] rejects them)
