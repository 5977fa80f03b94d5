"""The oneDNN self-test's workload (:mod:`emulsion_core.networks.onednn_guard`), run in a child
process: ``python -m emulsion_core.networks.selftest workload|fault``. It imports TensorFlow with
oneDNN on, so the guard itself never has to."""

from __future__ import annotations

import os
import sys

from emulsion_core.networks.onednn_guard import FAIL_ENV


def run(mode: str) -> int:
    """One self-test (see the module): NEWSnet with widths (4, 7) in the stem and 5, 7 in the
    residual stages, 215 events (batches of 64: three full, one of 23 unless filled up)."""
    import numpy as np

    from emulsion_core.config.paper import PAPER_PARAMETERS

    from emulsion_core.networks.models import keras, newsnet
    from emulsion_core.networks.sequences import EventSequence
    from emulsion_core.networks.training import compile_model, fit_in_memory
    fail = os.environ.get(FAIL_ENV, "") not in ("", "0")
    params = {**PAPER_PARAMETERS, "n_identity": 1, "filters_1": 5, "filters_2": 7, "stem_filters": (4, 7)}
    rng = np.random.default_rng(0)
    images = rng.integers(20, 60, (3 * 64 + 23, 8, 40, 40), dtype=np.uint8)
    labels = np.arange(len(images)) % 3

    class Abort(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if fail and batch == 3:  # where the fault strikes: after the first partial batch
                os.abort()

    if mode == "fault":  # the known trigger: plain Keras on arrays, the batch shape changes
        keras.utils.set_random_seed(0)
        net = compile_model(newsnet(**params), params)
        x = np.random.default_rng(0).normal(0.0, 0.05, (len(images), 9, 40, 40, 1)).astype(np.float32)
        net.fit(x, keras.utils.to_categorical(labels, 3), batch_size=64, epochs=2, verbose=0, callbacks=[Abort()])
    else:  # as this suite trains: full batches, recalibration, two batch sizes, inference
        for batch_size in (64, 48):
            keras.utils.set_random_seed(0)
            net = compile_model(newsnet(**params), params)
            if fail:
                net.fit(EventSequence(images, labels, batch_size, shuffle=True, camera_max=255), epochs=1, verbose=0,
                        callbacks=[Abort()])
            fit_in_memory(net, params, images, labels, 1, batch_size, camera_max=255)
            net.predict(EventSequence(images, None, batch_size, camera_max=255), verbose=0)
    print(f"oneDNN self-test {mode} passed", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(run(sys.argv[1]))
