"""Which engine scores an ensemble faster on this machine, Keras (TensorFlow) or ONNX Runtime:
measured, not assumed, as :mod:`xla_choice` decides XLA.

The two give the same log-odds within 1e-4 (``tests/test_onnx.py``), so only speed decides. On a
2-core AMD EPYC with AVX-512 (2026-12-07) a 3-member ``default`` ensemble scored 209 events/s with
Keras and 213 with ONNX Runtime 1.32 at 256 events per batch: no gain worth an export there. So
before a long scoring (:data:`MIN_EVENTS`) :func:`choose` times both engines on the very ensemble
(its ONNX export is made once per machine, ``export.ensemble_session``), and ONNX Runtime is used
only when it is faster by a margin and the events to score repay the export. The timings are
cached per machine (``onednn_guard.machine_key``), architecture, ensemble size and batch in
``~/.cache/emulsion-dl/engine_choice.json``; ``EMULSION_ENGINE=keras|onnx`` overrides the choice.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np

from emulsion_core.networks import timings

ENGINES = ("keras", "onnx")
MIN_EVENTS = 20_000  # below this, an export (~2.5 s per member) costs more than ONNX could save
MARGIN = 0.9  # ONNX Runtime's time per event must be below this fraction of Keras'
TIMING_EVENTS = 768
OVERRIDE_ENV = "EMULSION_ENGINE"


def cache_file(cache_dir=None) -> Path:
    return timings.cache_file("engine_choice", cache_dir)


def decide(keras_s: float, onnx_s: float, export_s: float, n_events: int) -> str:
    """``"onnx"`` when its seconds per event ``onnx_s`` are below MARGIN x Keras' ``keras_s`` and
    the ``n_events`` to score save more than the export's ``export_s`` seconds; else ``"keras"``."""
    return "onnx" if onnx_s < MARGIN * keras_s and n_events * (keras_s - onnx_s) > export_s else "keras"


def time_engines(models: list, model_paths: list, classes, batch_size: int, events: int = TIMING_EVENTS,
                 seed: int = 0) -> dict:
    """Seconds per event of Keras (``models``, loaded from ``model_paths``) and of ONNX Runtime (after
    a warm-up batch each) on ``events`` random preprocessed events, and the seconds the ONNX session
    took to make (export included when it was not cached)."""
    from emulsion_core.networks import export, scoring
    shape = (events,) + tuple(models[0].inputs[0].shape[1:])
    x = np.random.default_rng(seed).normal(0.0, 0.05, shape).astype("float32")
    for m in models:
        scoring.class_logits(m, x[:batch_size], batch_size)  # warm-up: the prediction function traced
    t = time.perf_counter()
    for m in models:
        scoring.class_logits(m, x, batch_size)
    keras_s = (time.perf_counter() - t) / events
    t = time.perf_counter()
    sess = export.ensemble_session(model_paths, classes)
    export_s = time.perf_counter() - t
    export.run(sess, x[:batch_size], batch_size)
    t = time.perf_counter()
    export.run(sess, x, batch_size)
    return {"keras_s_per_event": keras_s, "onnx_s_per_event": (time.perf_counter() - t) / events, "export_s": export_s}


def _key(models: list, batch_size: int) -> str:
    """Machine, architecture (the first member's configuration, weights aside), ensemble size, batch."""
    return timings.key(config=models[0].get_config(), members=len(models), batch_size=int(batch_size))


def choose(models: list, model_paths: list, classes, n_events: int, batch_size: int, cache_dir=None) -> str:
    """The engine (:data:`ENGINES`) to score ``n_events`` with the ensemble ``models`` (the networks
    of ``model_paths``, loaded and cached by ``predict``, which imports this module: both are passed
    so that no import cycle forms)."""
    override = os.environ.get(OVERRIDE_ENV, "").lower()
    if override in ENGINES:
        return override
    if n_events <= MIN_EVENTS:
        return "keras"
    path, key = cache_file(cache_dir), _key(models, batch_size)
    cached = timings.recall(path, key)
    if cached is None:
        try:
            cached = time_engines(models, model_paths, classes, batch_size)
        except Exception as err:  # noqa: BLE001 (an exporter's failure must not stop the scoring)
            print(f"[engine] keras: the ONNX export or runtime failed here ({type(err).__name__}: {err})",
                  file=sys.stderr)
            return "keras"
        timings.remember(path, key, cached)
    use = decide(cached["keras_s_per_event"], cached["onnx_s_per_event"], cached["export_s"], n_events)
    print(f"[engine] {use} for {n_events} events: Keras {1 / cached['keras_s_per_event']:.0f} events/s, ONNX Runtime "
          f"{1 / cached['onnx_s_per_event']:.0f} events/s (+{cached['export_s']:.0f} s to export), measured on this "
          f"machine at {batch_size} events per batch ({OVERRIDE_ENV}=keras|onnx overrides)", file=sys.stderr)
    return use
