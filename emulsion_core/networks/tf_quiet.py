"""Import TensorFlow and Keras without the C++ start-up lines on stderr (oneDNN notices, absl
warnings), which clutter notebooks and reports; ``TF_CPP_MIN_LOG_LEVEL`` alone does not silence
them in TF 2.21 (ecosystem.md 2.4). Everything else TensorFlow logs later is kept.

Every module of the package imports TensorFlow through here, so ``onednn_guard.ensure`` runs
first: it can still switch oneDNN off (``TF_ENABLE_ONEDNN_OPTS=0``) on a machine where oneDNN's
convolutions crash."""

from __future__ import annotations

import os

from emulsion_core.networks import onednn_guard

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
onednn_guard.ensure()  # before TensorFlow is imported: oneDNN off on a machine where its self-test dies


def _import_quietly():
    fd = 2  # the C++ runtime writes to file descriptor 2, whatever sys.stderr is
    try:
        saved = os.dup(fd)
    except OSError:
        saved = None
    try:
        if saved is not None:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, fd)
            os.close(devnull)
        import tensorflow as tf
        import keras
        # the oneDNN notice is printed when the first kernels run: run a few now, silenced
        x = tf.ones((1, 3, 4, 4, 1))
        tf.nn.conv3d(x, tf.ones((1, 1, 1, 1, 1)), strides=[1] * 5, padding="SAME")
        tf.matmul(tf.ones((2, 2)), tf.ones((2, 2)))
    finally:
        if saved is not None:
            os.dup2(saved, fd)
            os.close(saved)
    return tf, keras


tf, keras = _import_quietly()


def _not_retracing(record) -> bool:
    """TensorFlow's "N out of the last M calls ... triggered tf.function retracing" warning: every
    new network of a search or a table traces its predict function once, by design; the notice
    would reach the collaboration's rendered reports. Every other TensorFlow message passes."""
    return "tf.function retracing" not in record.getMessage()


tf.get_logger().addFilter(_not_retracing)
