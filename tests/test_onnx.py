"""ONNX export (issue 19): the ensemble as one graph scores like Keras within 1e-4 in log-odds, the
sidecar describes the preprocessing well enough for a program with ONNX Runtime alone, and
predict's two engines agree on every event."""

import json

import numpy as np
import pandas as pd
import pytest

from emulsion_core.simulator.simulate import simulate_scan

CLASSES = ("C30keV", "C100keV", "fog")


@pytest.fixture(scope="module")
def ensemble(tmp_path_factory):
    """Two members of a small NEWSnet with different weights, saved as a fit saves them."""
    from emulsion_core.config.paper import PAPER_PARAMETERS
    from emulsion_core.networks import training
    from emulsion_core.networks.models import keras
    folder = tmp_path_factory.mktemp("fit")
    paths = []
    for seed in (1, 2):
        keras.utils.set_random_seed(seed)
        model = training.build({**PAPER_PARAMETERS, "classes": list(CLASSES)}, 0.125)
        layer = model.get_layer("class_probabilities")  # large random logits: events scored far apart
        kernel, bias = layer.get_weights()
        layer.set_weights([np.random.default_rng(seed).normal(0, 30, kernel.shape).astype("float32"), bias])
        paths.append(folder / f"epoch_{seed:03d}.keras")
        model.save(paths[-1])
    training._write_network(folder, CLASSES)
    return paths


@pytest.fixture(scope="module")
def scans(tmp_path_factory):
    folder = tmp_path_factory.mktemp("scans")
    return [simulate_scan(folder / f"{s}_test.h5", s, "test", 120, seed=4) for s in ("C100keV", "fog")]


def test_exported_graph_scores_as_keras_and_its_sidecar_preprocesses_alone(ensemble, scans, tmp_path):
    import onnxruntime as ort

    from emulsion_core.formats import hdf5
    from emulsion_core.networks import export, scoring, training
    onnx_path = export.export(ensemble, tmp_path / "newsnet.onnx", CLASSES, {"cut": {"log_odds": 1.5}})
    side = json.loads(onnx_path.with_suffix(".json").read_text())
    assert side["classes"] == list(CLASSES) and side["signal"] == ["C30keV", "C100keV"] and side["cut"]["log_odds"] == 1.5
    scan = hdf5.read_scan(scans[0])
    # a program that knows only the sidecar: order by polariser angle, divide, subtract medians, append pol 0
    order = np.argsort(scan.attrs["polarisation_deg"])
    x = scan.images[:, order].astype(np.float32) / np.float32(scan.attrs["camera_max"])
    x -= np.median(x.reshape(len(x), 8, -1), axis=-1)[:, :, None, None]
    x = np.concatenate([x, x[:, :1]], axis=1)[..., None]
    assert list(x.shape[1:]) == side["input"]["shape"][1:]
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    log_odds = sess.run(["log_odds"], {side["input"]["name"]: x})[0]
    models = [training.load_member(p) for p in ensemble]
    keras_odds = scoring.ensemble_log_odds(scoring.predict_logits(models, scan.images[:, order], 64,
                                                                  scan.attrs["camera_max"]), CLASSES)
    np.testing.assert_allclose(log_odds, keras_odds, atol=1e-4, rtol=0)
    assert np.ptp(keras_odds) > 1e-3  # the members score events differently: a test that can fail


def test_predict_engines_agree_on_every_event(ensemble, scans, tmp_path, monkeypatch):
    from emulsion_core.networks.predict import predict_files
    monkeypatch.setenv("EMULSION_DL_CACHE", str(tmp_path / "cache"))
    for engine in ("keras", "onnx"):
        predict_files(ensemble, scans, tmp_path / f"{engine}.csv", progress=False, engine=engine)
    k, o = pd.read_csv(tmp_path / "keras.csv"), pd.read_csv(tmp_path / "onnx.csv")
    assert len(k) == len(o) == 240 and (k["event_id"] == o["event_id"]).all()
    np.testing.assert_allclose(o["log_odds"], k["log_odds"], atol=1e-4, rtol=0)
    assert list((tmp_path / "cache" / "onnx").glob("ensemble-*.onnx"))  # exported once, cached


# ---- the engine chosen by measurement (engine_choice) ----

def test_engine_decision_needs_a_faster_runtime_and_events_enough_to_repay_the_export():
    from emulsion_core.networks.engine_choice import decide
    assert decide(keras_s=1e-3, onnx_s=5e-4, export_s=5.0, n_events=50_000) == "onnx"
    assert decide(keras_s=1e-3, onnx_s=5e-4, export_s=5.0, n_events=5_000) == "keras"  # saves 2.5 s < 5 s
    assert decide(keras_s=1e-3, onnx_s=9.5e-4, export_s=0.0, n_events=10**7) == "keras"  # within the margin
    assert decide(keras_s=5e-4, onnx_s=1e-3, export_s=0.0, n_events=10**7) == "keras"


def test_engine_measured_once_per_machine_and_architecture_and_honoured(ensemble, scans, tmp_path, monkeypatch):
    """auto: a short scoring stays with Keras unmeasured; a long one is timed once (both engines, on
    the very ensemble), cached, and the faster engine scores; EMULSION_ENGINE overrides."""
    from emulsion_core.networks import engine_choice, predict
    monkeypatch.setenv("EMULSION_DL_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv(engine_choice.OVERRIDE_ENV, raising=False)
    models = predict.load_models(ensemble)
    assert engine_choice.choose(models, ensemble, CLASSES, 1_000, 64) == "keras"
    assert not engine_choice.cache_file().exists()
    calls = []
    real = engine_choice.time_engines

    def timed(*a, **kw):
        calls.append(1)
        out = real(*a, **kw)
        assert out["keras_s_per_event"] > 0 and out["onnx_s_per_event"] > 0 and out["export_s"] > 0
        return {**out, "onnx_s_per_event": 0.1 * out["keras_s_per_event"]}  # pretend ONNX Runtime is 10x faster

    monkeypatch.setattr(engine_choice, "time_engines", timed)
    assert engine_choice.choose(models, ensemble, CLASSES, 10**7, 64) == "onnx"
    assert engine_choice.choose(models, ensemble, CLASSES, 10**7, 64) == "onnx" and len(calls) == 1  # from the cache
    assert predict.resolve_engine("auto", ensemble, CLASSES, 10**7, 64) == "onnx"
    monkeypatch.setenv(engine_choice.OVERRIDE_ENV, "keras")
    assert engine_choice.choose(models, ensemble, CLASSES, 10**7, 64) == "keras"
    with pytest.raises(ValueError, match="scoring engine"):
        predict.resolve_engine("tensorrt", ensemble, CLASSES, 10, 64)
