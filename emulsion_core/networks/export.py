"""A trained ensemble as one ONNX model, for the experiment's C++ chain (ONNX Runtime, ROOT's SOFIE).

The graph takes the network's input (what :func:`emulsion_core.data.preprocessing.preprocess`
makes of the camera counts, described step by step in the sidecar) and gives every member's class
logits and the ensemble's score, the log-odds of the carbon classes against the background ones
with the members' probabilities averaged in log space, as :func:`scoring.ensemble_log_odds`.
Converted by Keras' own exporter (``model.export(format="onnx")``, tf2onnx underneath). The JSON
sidecar beside it holds what a C++ user needs: input shape and layout, the preprocessing, the
classes, the cut in log-odds with its Table 1 working point, and the fit's provenance.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path

import numpy as np

from emulsion_core.formats.ownership import sha256_file
from emulsion_core.networks.models import background_indices, keras, signal_indices
from emulsion_core.storage import atomic

OPSET = 17
INPUT_NAME = "events"


def ensemble_graph(members: list, classes) -> "keras.Model":
    """One Keras model over the ensemble: input (N, 9, H, W, 1) float32, outputs ``logits`` (N, M,
    C) and ``log_odds`` (N,)."""
    ops = keras.ops
    shape = tuple(members[0].inputs[0].shape[1:])
    x = keras.Input(shape, name=INPUT_NAME, dtype="float32")
    logits = ops.stack([m(x, training=False) for m in _logit_models(members)], axis=1)  # (N, M, C)
    log_p = logits - ops.logsumexp(logits, axis=-1, keepdims=True)
    mean = ops.logsumexp(log_p, axis=1) - np.float32(np.log(len(members)))  # (N, C): log of the mean p
    log_odds = (ops.logsumexp(ops.take(mean, list(signal_indices(classes)), axis=-1), axis=-1)
                - ops.logsumexp(ops.take(mean, list(background_indices(classes)), axis=-1), axis=-1))
    return keras.Model(x, {"logits": logits, "log_odds": log_odds}, name="newsnet_ensemble")


def _logit_models(members: list) -> list:
    """Each member up to its class layer's logits (the softmax left out)."""
    from emulsion_core.networks.scoring import OUTPUT_LAYER
    out = []
    for i, m in enumerate(members):
        layer = m.get_layer(OUTPUT_LAYER)
        features = keras.Model(m.inputs, layer.input, name=f"member_{i}_features")
        dense = keras.layers.Dense(layer.units, name=f"member_{i}_logits")
        dense.build(features.output_shape)
        dense.set_weights(layer.get_weights())
        out.append(keras.Sequential([features, dense], name=f"member_{i}"))
    return out


def export(member_paths: list, output, classes, sidecar: dict | None = None) -> Path:
    """Write the ensemble of ``member_paths`` to ``output`` (``.onnx``) and its sidecar
    (``.json`` beside it, :func:`sidecar` plus ``sidecar``); both through temporary files. Returns
    the ONNX path."""
    from emulsion_core.networks import training
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    members = [training.load_member(p, classes) for p in member_paths]
    graph = ensemble_graph(members, classes)
    graph(np.zeros((1, *graph.inputs[0].shape[1:]), np.float32))  # Keras exports only a model that was called
    with atomic.replacing(output, keep_suffix=True) as tmp, warnings.catch_warnings():
        # Keras' tf2onnx patch probes np.object (NumPy 2 warns)
        warnings.filterwarnings("ignore", category=FutureWarning, module="keras.src.export.tf2onnx_lib")
        graph.export(str(tmp), format="onnx", verbose=False, opset_version=OPSET)
    info = {**describe(members, classes), "members": [Path(p).name for p in member_paths],
            "members_sha256": [sha256_file(p) for p in member_paths], **(sidecar or {})}
    atomic.write_json(output.with_suffix(".json"), info, indent=1)
    return output


def describe(members: list, classes) -> dict:
    """The sidecar's input, output and preprocessing description."""
    _, steps, h, w, _ = members[0].inputs[0].shape
    return {
        "format": "ONNX", "opset": OPSET, "keras": keras.__version__,
        "input": {"name": INPUT_NAME, "dtype": "float32", "shape": ["N", steps, h, w, 1],
                  "layout": "event, image (the 8 polarisations in the standard order, then polarisation 0 "
                            "again), row, column, channel"},
        "outputs": {"logits": "per member and class, shape [N, members, classes]",
                    "log_odds": "ln(sum of the signal classes' p) - ln(sum of the background classes' p) of "
                                "the members' mean probabilities, shape [N]: the score the cut applies to"},
        "preprocessing": [
            "take the 8 polarisation images of an event (H x W camera counts each) and order them by polariser "
            "angle 0, 22.5, ..., 157.5 deg (the file's polarisation_deg attribute gives each image's angle)",
            "divide the counts by camera_max (the camera's range in ADU, the file attribute; 255 for 8-bit)",
            "subtract from each image its own median (over its H x W pixels)",
            "append the first image (polarisation 0) as a 9th",
            "add a channel axis of size 1: shape [N, 9, H, W, 1], float32",
        ],
        "classes": list(classes), "signal": [classes[i] for i in signal_indices(classes)],
        "background": [classes[i] for i in background_indices(classes)],
    }


def session(onnx_path):
    """An ONNX Runtime inference session on the CPU (and the GPU where the runtime has one)."""
    import onnxruntime as ort
    providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in ort.get_available_providers()]
    return ort.InferenceSession(str(onnx_path), providers=providers)


def run(sess, x: np.ndarray, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """(logits (M, N, C), log_odds (N,)) of preprocessed inputs ``x`` (N, 9, H, W, 1) float32."""
    names = [o.name for o in sess.get_outputs()]
    logits, odds = [], []
    for a in range(0, len(x), batch_size):
        out = dict(zip(names, sess.run(None, {sess.get_inputs()[0].name: x[a:a + batch_size]})))
        logits.append(out["logits"])
        odds.append(out["log_odds"])
    return np.concatenate(logits).transpose(1, 0, 2), np.concatenate(odds)


_SESSIONS = {}  # per process


def ensemble_session(member_paths: list, classes):
    """An ONNX Runtime session of the ensemble of ``member_paths``, exported once per machine into
    the machine cache (``EMULSION_DL_CACHE``, ``~/.cache/emulsion-dl/onnx/``) under a name made from
    the members' contents, the classes and the exporter's versions."""
    from emulsion_core.storage import locks, paths
    key = hashlib.sha256(json.dumps([[sha256_file(p) for p in member_paths], list(classes), keras.__version__, OPSET])
                         .encode()).hexdigest()[:16]
    if key not in _SESSIONS:
        path = paths.machine_cache() / "onnx" / f"ensemble-{key}.onnx"
        with locks.exclusive(path, "the ONNX export of an ensemble"):
            if not path.exists():
                export(member_paths, path, classes)
        _SESSIONS.clear()
        _SESSIONS[key] = session(path)
    return _SESSIONS[key]

