"""The Keras callbacks of a fit: the learning-rate decay of Appendix A, early stopping on a
smoothed validation loss, epoch timing, and TensorBoard logs."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

from emulsion_core.networks.tf_quiet import keras


class ExponentialDecay(keras.callbacks.Callback):
    """Learning rate lr0 * decay_rate ** (t / T), set before every batch: t batches done, T those
    of the whole fit, so the rate has fallen by ``decay_rate`` at the end of training. Per batch
    rather than per epoch so that the decay also acts in the search's one-epoch fits, whose AUC
    then says something about ``decay_rate``. Logs ``learning_rate`` (at the epoch's end)."""

    def __init__(self, lr0: float, decay_rate: float, epochs: int):
        super().__init__()
        self.lr0, self.decay_rate, self.epochs = float(lr0), float(decay_rate), max(int(epochs), 1)
        self.epoch = 0

    def rate(self, epoch: int, batch: int, steps: int) -> float:
        return self.lr0 * self.decay_rate ** ((epoch * steps + batch) / (self.epochs * steps))

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        self.model.optimizer.learning_rate = self.rate(self.epoch, batch, max(int(self.params.get("steps") or 1), 1))

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))


def schedule_callback(params: dict, epochs: int):
    """The learning-rate decay callback for ``params`` (Appendix A names) over ``epochs``."""
    return ExponentialDecay(params["learning_rate"], params["decay_rate"], epochs)


class EpochTimer(keras.callbacks.Callback):
    """Wall time of each epoch of a fit (s), in ``seconds``."""

    def __init__(self):
        super().__init__()
        self.seconds, self._start = [], None

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)

    def events_per_s(self, events: int) -> float:
        """Training events/s of the fit's epochs of ``events`` each, the first (which traces the
        training step) left out when there are others."""
        timed = self.seconds[1:] or self.seconds
        return events * len(timed) / sum(timed) if timed else float("nan")


def tensorboard(log_dir) -> "keras.callbacks.TensorBoard":
    """TensorBoard logs of a fit's epochs (``tensorboard --logdir results/<profile>/logs``)."""
    return keras.callbacks.TensorBoard(str(log_dir), write_graph=False, update_freq="epoch", profile_batch=0)


def stop_epoch(val_loss, smoothing: int = 1, patience: int = 0, min_epochs: int = 1) -> int | None:
    """The epoch (1-based) at which early stopping ends a fit with validation losses ``val_loss``
    (one per epoch so far), or None while it goes on.

    The smoothed loss of epoch e is the mean of the last ``smoothing`` losses up to e (fewer at
    the start); the fit stops at the first epoch e >= ``min_epochs`` at which the smoothed loss has
    not fallen below its best for ``patience`` epochs. ``patience`` 0: never stops. A NaN loss
    counts as no improvement."""
    if patience <= 0:
        return None
    v = np.asarray(val_loss, dtype=float)
    best, since = np.inf, 0
    for i in range(len(v)):
        smoothed = v[max(0, i - int(smoothing) + 1):i + 1].mean()
        if smoothed < best:
            best, since = smoothed, 0
        else:
            since += 1
        if since >= patience and i + 1 >= min_epochs:
            return i + 1
    return None


class SmoothedEarlyStopping(keras.callbacks.Callback):
    """Stops the fit at :func:`stop_epoch` of the validation losses logged so far: the epochs
    before this run of ``fit`` from the fit's ``history.csv`` (so a resumed fit stops where an
    unbroken one would), this run's from the logs. Put it after ``batchnorm.Recalibration``
    (which logs ``val_loss``) and before the CSV logger."""

    def __init__(self, history_csv, smoothing: int, patience: int, min_epochs: int = 1):
        super().__init__()
        self.history_csv, self.smoothing, self.patience = Path(history_csv), int(smoothing), int(patience)
        self.min_epochs = int(min_epochs)
        self.stopped_epoch = None

    def on_epoch_end(self, epoch, logs=None):
        if not logs or "val_loss" not in logs:
            return
        before = []
        if self.history_csv.exists() and self.history_csv.stat().st_size:
            h = pd.read_csv(self.history_csv).drop_duplicates("epoch", keep="last")
            before = h.loc[h["epoch"] < epoch].sort_values("epoch")["val_loss"].tolist()
        if stop_epoch(before + [float(logs["val_loss"])], self.smoothing, self.patience, self.min_epochs) is not None:
            self.stopped_epoch = epoch + 1
            self.model.stop_training = True
