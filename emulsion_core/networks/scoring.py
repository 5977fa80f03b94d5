"""Network outputs as a numerically safe score: the log-odds of carbon against the background,

    score = ln[sum of the signal probabilities] - ln[sum of the background probabilities]
          = ln[p(C30keV) + p(C100keV)] - ln p(fog) for the paper's classes,

signal being the carbon classes of the class list (``models.signal_indices``: C30keV, C60keV,
C100keV) and background the others (fog, gamma). Every function takes the class list the logits
belong to (``classes``, default the paper's) and refuses logits of another width.

computed in float64 from the logits of the class layer (log-softmax), never from float32
probabilities. The paper cuts on the summed probability p(C30keV) + p(C100keV) (0.9975);
in float32 that sum rounds to exactly 1 once p(fog) < ~3e-8, so events a paper-like cut must
separate tie. The log-odds is a strictly increasing function of the summed probability
(p = 1 / (1 + exp(-score))), so a cut on it selects the same events wherever the float32
probability still resolves them, and keeps resolving them beyond.

An ensemble's score is the log-odds of its mean probabilities (the paper's ensemble mean),
``ensemble_log_odds``; ``member_log_odds`` gives every member's own.
"""

from __future__ import annotations

import weakref

import numpy as np
from scipy.special import logsumexp

from emulsion_core.config.paper import PAPER_CLASSES

from emulsion_core.networks.models import ClassListError, background_indices, signal_indices

OUTPUT_LAYER = "class_probabilities"  # the dense softmax layer every network of ``models`` ends with
INFERENCE_BATCH = 256  # events per inference batch (scoring only; training keeps network.batch_size): on a
# 2-core AMD EPYC (AVX-512) a 3-member default ensemble scored 209 events/s at 256 against 149 at 64
# (benchmarks/bench_engines.py, 2026-12-07); the scores do not depend on it (inference mode)


def class_logits(model, x, batch_size: int = INFERENCE_BATCH) -> np.ndarray:
    """Logits of the class layer, (N, C) float64.

    model : a network ending in a dense softmax layer named ``class_probabilities``;
    x : preprocessed inputs (N, 9, H, W, 1) float32 or a Keras ``PyDataset`` of them.
    The features entering the class layer are computed by the network (float32); the last
    matrix product is done in float64.
    """
    layer = model.get_layer(OUTPUT_LAYER)
    features = _features_model(model).predict(x, batch_size=batch_size, verbose=0)
    kernel, bias = layer.get_weights()
    return np.asarray(features, np.float64) @ kernel.astype(np.float64) + bias.astype(np.float64)


_FEATURES = weakref.WeakKeyDictionary()  # network -> its sub-network up to the class layer (traced once)


def _features_model(model):
    """The sub-network of ``model`` whose output enters the class layer (shares its weights)."""
    from emulsion_core.networks.models import keras
    if model not in _FEATURES:
        inputs = model.inputs if len(model.inputs) > 1 else model.inputs[0]
        _FEATURES[model] = keras.Model(inputs, model.get_layer(OUTPUT_LAYER).input)
    return _FEATURES[model]


def predict_logits(models: list, images: np.ndarray, batch_size: int = INFERENCE_BATCH, camera_max: float | None = None) -> np.ndarray:
    """Logits of every ensemble member for raw events, (M, N, C) float64.

    images : (N, 8, H, W) camera counts (preprocessed here, without augmentation)."""
    from emulsion_core.networks.sequences import EventSequence
    seq = EventSequence(images, None, batch_size, camera_max=camera_max)
    return np.stack([class_logits(m, seq) for m in models])


def log_probabilities(logits: np.ndarray) -> np.ndarray:
    """ln p of every class, (..., C) float64 (log-softmax over the last axis)."""
    z = np.asarray(logits, np.float64)
    return z - logsumexp(z, axis=-1, keepdims=True)


def _log_odds(log_p: np.ndarray, classes=PAPER_CLASSES) -> np.ndarray:
    """ln(sum of signal p) - ln(sum of background p) from log-probabilities (..., C) of ``classes``."""
    if log_p.shape[-1] != len(classes):
        raise ClassListError(f"scores of {log_p.shape[-1]} classes cannot be read with the class list "
                             f"{list(classes)} ({len(classes)} classes)")
    signal, background = list(signal_indices(classes)), list(background_indices(classes))
    if not signal or not background:
        raise ClassListError(f"class list {list(classes)}: needs a carbon (signal) and a background class")
    return logsumexp(log_p[..., signal], axis=-1) - logsumexp(log_p[..., background], axis=-1)


def member_log_odds(logits: np.ndarray, classes=PAPER_CLASSES) -> np.ndarray:
    """Each member's score ln[sum of signal p] - ln[sum of background p], (M, N) float64 from
    (M, N, C) logits of ``classes``."""
    return _log_odds(log_probabilities(logits), classes)


def ensemble_log_odds(logits: np.ndarray, classes=PAPER_CLASSES) -> np.ndarray:
    """The ensemble's score: log-odds of the members' mean probabilities, (N,) float64 from
    (M, N, C) logits of ``classes`` (the mean is taken in log space, so nothing rounds)."""
    log_p = log_probabilities(logits)
    mean_log_p = logsumexp(log_p, axis=0) - np.log(log_p.shape[0])
    return _log_odds(mean_log_p, classes)


def signal_probability(probabilities: np.ndarray, classes=PAPER_CLASSES) -> np.ndarray:
    """Summed carbon probability of ``classes`` (p(C30keV) + p(C100keV) for the paper's). In float32
    it rounds to 1 once the background's is < ~3e-8: rank and cut on ``scoring``'s log-odds instead."""
    if probabilities.shape[-1] != len(classes):
        raise ClassListError(f"probabilities of {probabilities.shape[-1]} classes, class list {list(classes)}")
    return probabilities[..., list(signal_indices(classes))].sum(axis=-1)


def probability_from_log_odds(score) -> np.ndarray:
    """The summed signal (carbon) probability, p(C30keV) + p(C100keV) for the paper's classes, of a
    log-odds ``score`` (float64; for display next to the paper's 0.9975, not for cuts)."""
    return 1.0 / (1.0 + np.exp(-np.asarray(score, np.float64)))
