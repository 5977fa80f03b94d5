"""Training NEWSnet: batches from polarisation images, Adam with an exponentially decaying
learning rate, a checkpoint every epoch, resumption, and the snapshot ensemble of the last epochs.

The raw uint8 images of a split stay in memory (12.8 kB per event: the paper's 129k training
events take 1.7 GB); each batch is preprocessed to float32 on the fly (``preprocessing``), with
a random rotation per event for training batches. The preprocessing has no statistics fitted
to data (each image's own median is subtracted), so nothing can leak from validation or test.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from . import preprocessing
from .models import CLASSES, CombinedLoss, keras, newsnet

SIGNAL_CLASSES = (0, 1)  # C30keV, C100keV


class EventSequence(keras.utils.PyDataset):
    """Keras dataset over in-memory events: (N, 8, H, W) camera counts and class labels.

    Batches are preprocessed on the fly; ``augment`` adds one random rotation per event.
    Shuffling and rotations are drawn from (seed, epoch, batch), so a resumed or repeated
    training sees the same batches.
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray | None, batch_size: int, shuffle: bool = False,
                 augment: bool = False, seed: int = 0, camera_max: float = 255.0, **kw):
        super().__init__(**kw)
        self.images, self.labels = images, labels
        self.batch_size, self.shuffle, self.augment, self.seed = int(batch_size), shuffle, augment, int(seed)
        self.camera_max = camera_max
        self.epoch = 0
        self._order()

    def _order(self):
        n = len(self.images)
        self.order = (np.random.default_rng([self.seed, self.epoch]).permutation(n) if self.shuffle
                      else np.arange(n))

    def __len__(self):
        return math.ceil(len(self.images) / self.batch_size)

    def __getitem__(self, idx):
        sel = np.sort(self.order[idx * self.batch_size:(idx + 1) * self.batch_size])
        x = preprocessing.preprocess(self.images[sel], self.camera_max)
        if self.augment:
            x = preprocessing.random_rotation(x, np.random.default_rng([self.seed, self.epoch, idx]))
        if self.labels is None:
            return (x,)
        return x, keras.utils.to_categorical(self.labels[sel], len(CLASSES))

    def on_epoch_end(self):
        self.epoch += 1
        self._order()


def scaled_widths(params: dict, width_scale: float) -> dict:
    """Network parameters with every filter width multiplied by ``width_scale`` (at least 4)."""
    w = lambda f: max(4, int(round(f * width_scale)))  # noqa: E731
    return {**params, "filters_1": w(params["filters_1"]), "filters_2": w(params["filters_2"]),
            "stem_filters": (w(32), w(64))}


def build(params: dict, width_scale: float = 1.0) -> "keras.Model":
    """NEWSnet with ``params`` (Appendix A names), compiled with Adam and the combined loss."""
    model = newsnet(**scaled_widths(params, width_scale))
    beta_1 = 1.0 - 1.0 / float(params["beta_1_inv"])  # [P21]: beta searched as 1 / (1 - beta)
    beta_2 = 1.0 - 1.0 / float(params["beta_2_inv"])
    model.compile(optimizer=keras.optimizers.Adam(float(params["learning_rate"]), beta_1=beta_1, beta_2=beta_2),
                  loss=CombinedLoss(float(params["loss_lambda"]), SIGNAL_CLASSES))
    return model


def learning_rate_schedule(lr0: float, decay_rate: float, epochs: int):
    """Per-epoch exponential decay: lr(e) = lr0 * decay_rate ** (e / epochs), so the rate has
    fallen by ``decay_rate`` at the end of training."""
    return lambda epoch, lr=None: float(lr0 * decay_rate ** (epoch / max(epochs, 1)))


def fit(params: dict, train: EventSequence, validation: EventSequence | None, epochs: int, workdir,
        width_scale: float = 1.0, ensemble: int = 0, verbose: int = 0):
    """Train, writing ``epoch_NNN.keras`` after every epoch into ``workdir``; an interrupted fit
    resumes from ``workdir/backup`` (BackupAndRestore). Returns (model, history DataFrame,
    ensemble member paths: the last ``ensemble`` epochs)."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    model = build(params, width_scale)
    callbacks = [
        keras.callbacks.LearningRateScheduler(learning_rate_schedule(params["learning_rate"], params["decay_rate"], epochs)),
        keras.callbacks.ModelCheckpoint(str(workdir / "epoch_{epoch:03d}.keras")),
        keras.callbacks.BackupAndRestore(str(workdir / "backup")),
        keras.callbacks.CSVLogger(str(workdir / "history.csv"), append=True),
    ]
    model.fit(train, validation_data=validation, epochs=epochs, callbacks=callbacks, verbose=verbose)
    history = pd.read_csv(workdir / "history.csv").drop_duplicates("epoch", keep="last")
    members = [workdir / f"epoch_{e:03d}.keras" for e in range(epochs - ensemble + 1, epochs + 1)] if ensemble else []
    return model, history, members


def load_member(path) -> "keras.Model":
    """A saved network for inference (optimizer state not restored)."""
    return keras.models.load_model(path, custom_objects={"CombinedLoss": CombinedLoss}, compile=False)


def predict(models: list, images: np.ndarray, batch_size: int = 256, camera_max: float = 255.0) -> np.ndarray:
    """Class probabilities of every ensemble member, (M, N, 3) float32."""
    seq = EventSequence(images, None, batch_size, camera_max=camera_max)
    return np.stack([m.predict(seq, verbose=0) for m in models]).astype(np.float32)


def signal_probability(probabilities: np.ndarray) -> np.ndarray:
    """Summed carbon probability p(C30keV) + p(C100keV)."""
    return probabilities[..., list(SIGNAL_CLASSES)].sum(axis=-1)
