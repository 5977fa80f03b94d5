"""One preprocessing for every consumer: the camera range (``camera_max``) and the polarisation order
(``polarisation_deg``) come from the file in training, evaluation, the notebooks' estimators and
``predict`` alike. Three datasets hold the same events: 8-bit as simulated, 12-bit (camera_max 4095,
uint16, counts scaled accordingly) and 8-bit with the polarisations stored out of order."""

import numpy as np
import pytest
from given_scans import checksums

from emulsion_core.formats import hdf5
from emulsion_core.config import profiles
from emulsion_core.simulator.simulate import simulate_scan

PERM = np.array([3, 0, 6, 1, 7, 2, 5, 4])  # stored order of the shuffled file
TOL = 1.0 / 4095  # the 12-bit counts are the 8-bit ones scaled and rounded


@pytest.fixture(scope="module")
def three(tmp_path_factory):
    root = tmp_path_factory.mktemp("root")
    src = hdf5.read_scan(simulate_scan(tmp_path_factory.mktemp("s") / "src.h5", "C100keV", "rot0", 200, seed=4))
    events = src.events[list(hdf5.REQUIRED_COLUMNS) + ["peak_adu", "brightness_mean"]]  # same clean selection
    attrs = {k: src.attrs[k] for k in hdf5.REQUIRED_ATTRS}
    pols = np.asarray(attrs["polarisation_deg"])
    variants = {
        "cam8": hdf5.Scan(src.images, events, attrs),
        "cam12": hdf5.Scan(np.rint(src.images * (4095 / 255)).astype(np.uint16), events, {**attrs, "camera_max": 4095}),
        "shuffled": hdf5.Scan(src.images[:, PERM], events, {**attrs, "polarisation_deg": list(pols[PERM])}),
    }
    out = {}
    for name, scan in variants.items():
        hdf5.write_scan(root / "data" / name / "C100keV_rot0.h5", scan)
        out[name] = profiles.from_dict({"profile": name, "seed": 2, "dataset": name, "samples": ["C100keV"],
                                        "events": {"rotated": {"C100keV": 1}, "test": {"C100keV": 1}}})
    sums = {name: checksums(root / "data" / name) for name in variants}
    yield root, out
    for name in variants:  # the consumers read the files, never rewrite them
        assert {k: v for k, v in checksums(root / "data" / name).items() if k.endswith(".h5")} == sums[name]


def test_file_conventions_are_what_they_claim(three):
    root, _ = three
    assert hdf5.read_scan(root / "data" / "cam12" / "C100keV_rot0.h5").images.dtype == np.uint16


def test_evaluation_and_search_inputs_follow_the_file(three, monkeypatch):
    """network_analysis.split_data + its camera range: what the search, the validation of the fit,
    the ensemble scores and notebook 05 preprocess."""
    from emulsion_core.analyses import network_analysis
    from emulsion_core.data import preprocessing
    root, p = three
    monkeypatch.setenv("EMULSION_DL_ROOT", str(root))
    x = {}
    for name, profile in p.items():
        rows, images, _ = network_analysis.split_data(profile, "validation")
        x[name] = preprocessing.preprocess(images, network_analysis.camera_max(profile))
    assert network_analysis.camera_max(p["cam12"]) == 4095
    assert x["cam8"].shape[0] > 20
    np.testing.assert_array_equal(x["shuffled"], x["cam8"])
    np.testing.assert_allclose(x["cam12"], x["cam8"], atol=TOL)


def test_training_batches_follow_the_file(three):
    from emulsion_core.networks.sequences import ScanSequence
    root, p = three
    x = {}
    for name in p:
        folder = root / "data" / name
        rows = hdf5.read_events(folder / "C100keV_rot0.h5")[["event_id"]].assign(file="C100keV_rot0.h5", label=1)
        seq = ScanSequence(folder, rows, batch_size=32, shuffle=False)
        x[name] = np.concatenate([seq[i][0] for i in range(len(seq))])
    np.testing.assert_array_equal(x["shuffled"], x["cam8"])
    np.testing.assert_allclose(x["cam12"], x["cam8"], atol=TOL)


def test_notebook_estimators_follow_the_polarisation_order(three, monkeypatch):
    from emulsion_core.analyses import conventional
    root, p = three
    monkeypatch.setenv("EMULSION_DL_ROOT", str(root))
    a = conventional.variables(p["cam8"], progress=False)
    b = conventional.variables(p["shuffled"], progress=False)
    for column in ("barshift_nm", "phi_deg", "pol1_deg", "pol2_deg", "path_nm", "regularity"):
        np.testing.assert_array_equal(a[column].to_numpy(), b[column].to_numpy(), err_msg=column)


def test_predict_follows_the_file(three, tmp_path):
    import pandas as pd

    from emulsion_core.networks import models
    from emulsion_core.networks.predict import predict_files
    root, _ = three
    model = tmp_path / "tiny.keras"
    net = models.compact_3d(filters=(4, 8))
    net.compile(optimizer="adam", loss=models.CombinedLoss(0.5))
    net.save(model)
    scores = {}
    for name in ("cam8", "cam12", "shuffled"):
        predict_files([model], [root / "data" / name / "C100keV_rot0.h5"], tmp_path / f"{name}.csv", progress=False)
        scores[name] = pd.read_csv(tmp_path / f"{name}.csv")[["p_C30keV", "p_C100keV", "p_fog"]].to_numpy()
    np.testing.assert_allclose(scores["shuffled"], scores["cam8"], atol=1e-6)
    np.testing.assert_allclose(scores["cam12"], scores["cam8"], atol=1e-3)


def test_mixed_ranges_share_one_array_at_the_largest_range(tmp_path):
    from emulsion_core.data import preprocessing
    images = np.arange(2 * 8 * 4 * 4).reshape(2, 8, 4, 4).astype(np.uint8)
    attrs = {"camera_max": 255, "polarisation_deg": [22.5 * i for i in range(8)]}
    out = preprocessing.standard_counts(images, attrs, 4095)
    assert out.dtype == np.uint16
    np.testing.assert_allclose(out / 4095, images / 255, atol=0.5 / 4095)
    with pytest.raises(TypeError, match="camera_max"):
        preprocessing.preprocess(images)
