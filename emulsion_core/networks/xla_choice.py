"""Whether a long fit should be compiled with XLA on this machine: measured, not assumed.

XLA (``jit_compile=True``) trained NEWSnet ~1.3x faster on a 2-core AMD EPYC, 3-5x slower on
the same machine under load, and halved full-width training on an Intel AMX machine (6 against
12 events/s, issue 10). So before a fit long enough for the compilation (~15 s per new model) to
matter (:data:`MIN_EVENT_PASSES`), :func:`choose` times a few training steps of the very network
with and without XLA on random events, and XLA is used only when its steps are faster by a margin
and the fit is long enough for the saving to repay the compilation. The decision is cached per
machine (``onednn_guard.machine_key``: CPU model and flags, library versions), network
configuration and batch size in ``~/.cache/emulsion-dl/`` (``EMULSION_DL_CACHE`` moves it);
``EMULSION_XLA=on|off`` overrides it.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from emulsion_core.networks import timings

MIN_EVENT_PASSES = 20_000  # below this, the compilation costs more than XLA could save
MARGIN = 0.9  # XLA's step time must be below this fraction of the plain step time
OVERRIDE_ENV = "EMULSION_XLA"


def cache_file(cache_dir=None) -> Path:
    return timings.cache_file("xla_choice", cache_dir)


def decide(plain_s: float, xla_s: float, compile_s: float, steps: int) -> bool:
    """XLA when its step time ``xla_s`` is below MARGIN x ``plain_s`` and the ``steps`` of the fit
    save more than the extra compilation time ``compile_s`` (seconds)."""
    return xla_s < MARGIN * plain_s and steps * (plain_s - xla_s) > compile_s


def time_steps(model_factory, batch_size: int, jit_compile: bool, steps: int = 6, seed: int = 0) -> tuple[float, float]:
    """(seconds per training step after warm-up, seconds of the first step: build and compile) of the
    network ``model_factory(jit_compile)`` (compiled) on random preprocessed events."""
    import numpy as np
    model = model_factory(jit_compile)
    rng = np.random.default_rng(seed)
    shape = (batch_size,) + tuple(model.inputs[0].shape[1:])
    x = rng.normal(0.0, 0.05, shape).astype("float32")
    n_classes = model.outputs[0].shape[-1]
    y = np.eye(n_classes, dtype="float32")[rng.integers(0, n_classes, batch_size)]
    t0 = time.perf_counter()
    model.train_on_batch(x, y)
    t1 = time.perf_counter()
    model.train_on_batch(x, y)  # a second warm-up step
    t2 = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(x, y)
    return (time.perf_counter() - t2) / steps, t1 - t0


def choose(model_factory, config: dict, batch_size: int, event_passes: int, cache_dir=None) -> bool:
    """Whether to compile a fit of ``event_passes`` (events x epochs) with XLA.

    model_factory : jit_compile -> a compiled network; config : what identifies the network (its
    settings, JSON-able) for the cache."""
    override = os.environ.get(OVERRIDE_ENV, "").lower()
    if override in ("on", "off"):
        return override == "on"
    if event_passes <= MIN_EVENT_PASSES:
        return False
    from emulsion_core.networks.models import keras
    key = timings.key(config=config, batch_size=batch_size)
    path = cache_file(cache_dir)
    cached = timings.recall(path, key)
    if cached is None:
        plain, plain_first = time_steps(model_factory, batch_size, False)
        keras.backend.clear_session()
        xla, xla_first = time_steps(model_factory, batch_size, True)
        keras.backend.clear_session()
        cached = {"plain_s_per_step": plain, "xla_s_per_step": xla, "compile_s": max(xla_first - plain_first, 0.0)}
        timings.remember(path, key, cached)
    steps = event_passes // batch_size
    use = decide(cached["plain_s_per_step"], cached["xla_s_per_step"], cached["compile_s"], steps)
    print(f"[xla] {'on' if use else 'off'} for this fit: {1e3 * cached['plain_s_per_step']:.0f} ms per step without XLA, "
          f"{1e3 * cached['xla_s_per_step']:.0f} ms with it (+{cached['compile_s']:.0f} s to compile), "
          f"{steps} steps (measured on this machine; {OVERRIDE_ENV}=on|off overrides)", file=sys.stderr)
    return use
