"""Batch-normalisation statistics re-estimated after training ("BN recalibration", PreciseBN in
Wu & Johnson 2021, "Rethinking 'Batch' in BatchNorm", arXiv:2105.07576).

During training a batch-normalisation layer normalises with each batch's own mean and variance
and keeps a moving average of them for inference, with momentum 0.99 in Keras: after ``n``
steps the moving statistics still hold 0.99**n of their initial values (89 % after the
search's ~12 steps), so in inference mode every event is normalised with nearly the initial
statistics and the network gives nearly the same output for all of them. And the moving
average lags behind weights that change quickly, even in long fits.

``recalibrate`` replaces the moving statistics of every batch-normalisation layer by the
average over a number of training batches of the batch statistics the layer sees with the
trained weights, with dropout off (as in inference). ``Recalibration`` does it at the end of
every epoch of a fit, before the epoch's checkpoint is written, and then computes the
validation loss, so the logged ``val_loss`` and every saved snapshot use sound statistics.
"""

from __future__ import annotations

import math
import weakref

import numpy as np

from emulsion_core.networks.tf_quiet import keras, tf

RECALIBRATION_EVENTS = 2048  # training events whose batch statistics are averaged (at most): in the
# deepest layer of NEWSnet still ~1.5e5 values per channel, so the mean is known to < 1 % of its spread


def _layers(model, kind) -> list:
    """Layers of ``kind`` in ``model``, nested models included."""
    out = []
    for layer in model.layers:
        if isinstance(layer, kind):
            out.append(layer)
        elif isinstance(layer, keras.Model):
            out += _layers(layer, kind)
    return out


_FORWARD = weakref.WeakKeyDictionary()  # network -> its training-mode forward pass, traced once


def _forward(model):
    """``model(x, training=True)`` as a ``tf.function``, traced once per network (~2x eager). The
    trace reads the dropout rates and batch-norm momenta as constants: it is traced and called only
    inside :func:`recalibrate`, where they are always 0."""
    if model not in _FORWARD:
        network = weakref.ref(model)  # the cache must not keep the network alive
        _FORWARD[model] = tf.function(lambda x: network()(x, training=True))
    return _FORWARD[model]


def recalibrate(model, batches) -> int:
    """Set every batch-normalisation layer's moving mean and variance to the average of its
    batch statistics over ``batches``, the network running in training mode with dropout off.

    model : a Keras model with ``BatchNormalization`` layers (weights are not changed).
    batches : iterable of network inputs, e.g. (B, 9, 40, 40, 1) float32 preprocessed events;
        mix the classes in every batch (a shuffled order) so that each batch's statistics are
        those of the training population.
    Returns the number of batches used (0 leaves the model as it was).
    """
    norms = _layers(model, keras.layers.BatchNormalization)
    drops = _layers(model, keras.layers.Dropout)
    if not norms:
        return 0
    saved = [(layer.momentum, [v.numpy() for v in (layer.moving_mean, layer.moving_variance)]) for layer in norms]
    rates = [layer.rate for layer in drops]
    sums = [[np.zeros(layer.moving_mean.shape, np.float64), np.zeros(layer.moving_variance.shape, np.float64)]
            for layer in norms]
    n = 0
    try:
        for layer in drops:
            layer.rate = 0.0
        for layer in norms:
            layer.momentum = 0.0  # the moving statistics become the current batch's
        forward = _forward(model)  # traced with these settings (once per network: every epoch of a fit)
        for x in batches:
            forward(x)
            for s, layer in zip(sums, norms):
                s[0] += layer.moving_mean.numpy()
                s[1] += layer.moving_variance.numpy()
            n += 1
    finally:
        for layer, rate in zip(drops, rates):
            layer.rate = rate
        for layer, (momentum, values) in zip(norms, saved):
            layer.momentum = momentum
            if n == 0:
                layer.moving_mean.assign(values[0])
                layer.moving_variance.assign(values[1])
    for layer, (mean, variance) in zip(norms, sums):
        if n:
            layer.moving_mean.assign((mean / n).astype(np.float32))
            layer.moving_variance.assign((variance / n).astype(np.float32))
    return n


def sequence_batches(sequence, events: int = RECALIBRATION_EVENTS):
    """The network inputs of the first batches of a Keras ``PyDataset`` (at most ``events``
    events, at least one batch); labels are dropped."""
    n = min(len(sequence), max(1, math.ceil(events / sequence.batch_size)))
    for i in range(n):
        item = sequence[i]
        yield item[0] if isinstance(item, tuple) else item


class Recalibration(keras.callbacks.Callback):
    """At the end of every epoch: ``recalibrate`` on the first batches of ``train`` (a shuffled
    training ``PyDataset``), then, when ``validation`` is given, log its loss as ``val_loss`` and,
    with ``signal`` (the indices of the carbon classes), the ROC AUC of the summed carbon
    probability against the rest as ``val_auc``: both from one pass over the validation events
    (:func:`validation_metrics`).

    Put it before the callbacks that save or log the epoch (checkpoints, CSV logger), and fit
    without ``validation_data`` (Keras would compute the validation loss before this callback,
    with the moving statistics of training)."""

    def __init__(self, train, validation=None, events: int = RECALIBRATION_EVENTS, signal=None):
        super().__init__()
        self.train, self.validation, self.events = train, validation, int(events)
        self.signal = None if signal is None else list(signal)

    def on_epoch_end(self, epoch, logs=None):
        recalibrate(self.model, sequence_batches(self.train, self.events))
        if self.validation is not None and logs is not None:
            logs.update(validation_metrics(self.model, self.validation, self.signal))


def validation_metrics(model, validation, signal=None) -> dict:
    """``val_loss`` of the compiled ``model`` on ``validation`` (the events' mean loss, each weighted
    by its sample weight, as ``model.evaluate``) and, with ``signal``, ``val_auc`` (summed
    probability of the ``signal`` classes against the others), from one prediction pass.

    validation : an unshuffled ``EventSequence`` with labels (events served once, in order); any
    other ``PyDataset`` is evaluated by Keras (``val_loss`` only)."""
    labels = getattr(validation, "labels", None)
    if labels is None or getattr(validation, "shuffle", True) or getattr(validation, "class_balance", "") == "oversample":
        return {"val_loss": float(model.evaluate(validation, verbose=0, return_dict=True)["loss"])}
    p = model.predict(validation, verbose=0)
    y = keras.utils.to_categorical(labels, p.shape[-1]).astype(np.float32)
    per_event = keras.ops.convert_to_numpy(model.loss.call(keras.ops.convert_to_tensor(y), keras.ops.convert_to_tensor(p)))
    weights = validation.weights[labels] if getattr(validation, "weights", None) is not None else 1.0
    out = {"val_loss": float(np.mean(np.asarray(per_event, np.float64) * weights))}
    if signal:
        from sklearn.metrics import roc_auc_score
        out["val_auc"] = float(roc_auc_score(np.isin(labels, signal), p[:, signal].sum(axis=1)))
    return out
