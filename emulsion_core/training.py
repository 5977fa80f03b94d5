"""Training NEWSnet: batches from polarisation images, Adam with an exponentially decaying
learning rate, a checkpoint every epoch, resumption, and the snapshot ensemble of the last epochs.

``ScanSequence`` streams the training split from the scan files window by window (only a few
blocks in memory); ``EventSequence`` serves events already in memory as uint8 (12.8 kB per
event). Each batch is preprocessed to float32 on the fly (``preprocessing``), with a random
symmetry of the pixel grid per event for training batches (pixel statistics unchanged). The
preprocessing has no statistics fitted to data (each image's own median is subtracted), so
nothing can leak from validation or test.

Training batches all have the same shape (``full_batches``: a last, partial batch is filled up
with events from the start of the epoch or window): TensorFlow 2.21's oneDNN convolution
backward pass corrupts the heap when the batch shape changes during a fit with small channel
counts (an Intel AMX and an AMD AVX-512 CPU; ``onednn_guard``).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from . import batchnorm, onednn_guard, preprocessing
from .models import CLASSES, CombinedLoss, keras, newsnet

SIGNAL_CLASSES = (0, 1)  # C30keV, C100keV


class EventSequence(keras.utils.PyDataset):
    """Keras dataset over in-memory events: (N, 8, H, W) camera counts and class labels.

    Batches are preprocessed on the fly; ``augment`` adds one random grid symmetry per event.
    Shuffling and symmetries are drawn from (seed, epoch, batch), so a resumed or repeated
    training sees the same batches. ``full_batches`` (default: ``shuffle``, i.e. for training)
    fills a last, partial batch up with the first events of the epoch's order, so every batch
    has ``batch_size`` events; sequences for evaluation serve each event exactly once.
    camera_max : the range (ADU) of the files the images come from (``dataset.camera_max``, or
    the file's attribute), required: it is never assumed.
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray | None, batch_size: int, shuffle: bool = False,
                 augment: bool = False, seed: int = 0, camera_max: float | None = None, full_batches: bool | None = None,
                 **kw):
        if camera_max is None:
            raise TypeError("EventSequence needs camera_max, the range of the scan files the images come from")
        super().__init__(**kw)
        self.images, self.labels = images, labels
        self.batch_size, self.shuffle, self.augment, self.seed = int(batch_size), shuffle, augment, int(seed)
        self.full_batches = bool(shuffle if full_batches is None else full_batches)
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
        sel = np.sort(_filled(self.order[idx * self.batch_size:(idx + 1) * self.batch_size], self.order,
                              self.batch_size if self.full_batches else 0))
        x = preprocessing.preprocess(self.images[sel], self.camera_max)
        if self.augment:
            x = preprocessing.random_symmetry(x, np.random.default_rng([self.seed, self.epoch, idx]))
        if self.labels is None:
            return (x,)
        return x, keras.utils.to_categorical(self.labels[sel], len(CLASSES))

    def on_epoch_end(self):
        self.epoch += 1
        self._order()


def _filled(sel: np.ndarray, pool: np.ndarray, size: int) -> np.ndarray:
    """``sel`` filled up to ``size`` entries with the first entries of ``pool`` (cyclically)."""
    if len(sel) >= size:
        return sel
    return np.concatenate([sel, np.resize(pool, size - len(sel))])


CHANNEL_MULTIPLE = 8  # residual widths are rounded up to a multiple of this (oneDNN fault, ``onednn_guard``)


def width_pair(width_scale) -> tuple[float, float]:
    """``(stem scale, residual scale)`` from a profile's ``width_scale``: one number for both, or a
    pair ``[stem, residual]``."""
    if isinstance(width_scale, (tuple, list)):
        stem, residual = width_scale
        return float(stem), float(residual)
    return float(width_scale), float(width_scale)


def scaled_widths(params: dict, width_scale) -> dict:
    """Network parameters with the filter widths scaled: ``width_scale`` is one factor for every
    width, or a pair ``[stem, residual]`` (:func:`width_pair`), since the stem's two full-resolution
    convolutions are most of the FLOPs and the residual stages can be widened cheaply.

    The residual widths (``filters_1``, ``filters_2``, searched) are rounded up to a multiple of 8
    (at least 8): searched widths like 5, 7 or 12 took part in the oneDNN crash seen on an Intel
    AMX CPU (``onednn_guard``), and vector units work in blocks of 8 or 16 channels anyway. The
    stem's fixed widths (32, 64 in the paper; 72 % of the FLOPs) are rounded to the nearest
    integer (at least 4), as before: at x 1/8 they are (4, 8), with which the paper's network
    ran on that CPU; rounding them up to 8 would cost 1.7x the FLOPs per event. The decisive
    avoidance is elsewhere: training batches of one shape (``full_batches``)."""
    m = CHANNEL_MULTIPLE
    stem_scale, residual_scale = width_pair(width_scale)
    residual = lambda f: max(m, m * math.ceil(f * residual_scale / m - 1e-9))  # noqa: E731
    stem = lambda f: max(4, int(round(f * stem_scale)))  # noqa: E731
    return {**params, "filters_1": residual(params["filters_1"]), "filters_2": residual(params["filters_2"]),
            "stem_filters": (stem(32), stem(64))}


def use_xla(params: dict, width_scale, batch_size: int, event_passes: int) -> bool:
    """Whether NEWSnet with ``params`` should be compiled with XLA for a fit of ``event_passes``
    (events x epochs): measured on this machine (:func:`xla_choice.choose`)."""
    from . import xla_choice
    return xla_choice.choose(lambda jit: build(params, width_scale, jit_compile=jit),
                             {"network": "newsnet", "params": dict(params), "width_scale": width_scale},
                             batch_size, event_passes)


def compile_model(model, params: dict, jit_compile: bool = False) -> "keras.Model":
    """Compile ``model`` with Adam and the combined loss from ``params`` (Appendix A names).

    ``jit_compile`` (XLA) costs ~15 s more per new model and speeds training up on some CPUs and
    slows it down on others: :func:`use_xla` measures it for long fits."""
    onednn_guard.require_safe()  # before the first network is trained: oneDNN must not be on where it crashes
    beta_1 = 1.0 - 1.0 / float(params["beta_1_inv"])  # [P21]: beta searched as 1 / (1 - beta)
    beta_2 = 1.0 - 1.0 / float(params["beta_2_inv"])
    model.compile(optimizer=keras.optimizers.Adam(float(params["learning_rate"]), beta_1=beta_1, beta_2=beta_2),
                  loss=CombinedLoss(float(params["loss_lambda"]), SIGNAL_CLASSES), jit_compile=jit_compile)
    return model


def build(params: dict, width_scale=1.0, jit_compile: bool = False) -> "keras.Model":
    """NEWSnet with ``params`` (Appendix A names), compiled with Adam and the combined loss."""
    return compile_model(newsnet(**scaled_widths(params, width_scale)), params, jit_compile)


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


def fit_in_memory(model, params: dict, images: np.ndarray, labels: np.ndarray, epochs: int, batch_size: int,
                  seed: int = 0, verbose: int = 0, camera_max: float | None = None) -> "keras.Model":
    """Train a compiled ``model`` on in-memory events (shuffled, augmented, full batches) with the
    learning-rate schedule of ``params``, then re-estimate its batch-normalisation statistics on
    the training events (``batchnorm.recalibrate``), as every network that is evaluated needs.

    images : (N, 8, H, W) camera counts of range ``camera_max`` (ADU); labels : (N,) class
    indices. Returns ``model``."""
    model.fit(EventSequence(images, labels, batch_size, shuffle=True, augment=True, seed=seed, camera_max=camera_max),
              epochs=epochs, verbose=verbose, callbacks=[schedule_callback(params, epochs)])
    batchnorm.recalibrate(model, batchnorm.sequence_batches(
        EventSequence(images, None, batch_size, shuffle=True, seed=seed + 1, full_batches=True, camera_max=camera_max)))
    return model


def fit(params: dict, train: EventSequence, validation: EventSequence | None, epochs: int, workdir,
        width_scale=1.0, ensemble: int = 0, verbose: int = 0):
    """Train, writing ``epoch_NNN.keras`` after every epoch into ``workdir``; an interrupted fit
    resumes from ``workdir/backup`` (BackupAndRestore); a finished one is loaded, not redone.
    At every epoch's end the batch-normalisation statistics are re-estimated on training batches
    (``batchnorm.Recalibration``) before ``val_loss`` is computed and the epoch saved.
    Returns (model, history DataFrame, ensemble member paths: the last ``ensemble`` epochs)."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    members = [workdir / f"epoch_{e:03d}.keras" for e in range(epochs - ensemble + 1, epochs + 1)] if ensemble else []
    done = workdir / f"epoch_{epochs:03d}.keras"
    if done.exists() and not (workdir / "backup").exists():  # finished before: nothing to redo
        return load_member(done), _history(workdir), members
    model = build(params, width_scale, jit_compile=use_xla(params, width_scale, train.batch_size,
                                                           epochs * len(train) * train.batch_size))
    callbacks = [
        schedule_callback(params, epochs),
        batchnorm.Recalibration(train, validation),  # before the callbacks that save or log the epoch
        keras.callbacks.ModelCheckpoint(str(workdir / "epoch_{epoch:03d}.keras")),
        keras.callbacks.BackupAndRestore(str(workdir / "backup")),
        keras.callbacks.CSVLogger(str(workdir / "history.csv"), append=True),
    ]
    meta = workdir / "backup" / "training_metadata.json"
    if meta.exists() and hasattr(train, "on_epoch_end"):
        # resuming: give the batches of the epoch the fit restarts at, as an unbroken fit would
        import json
        for _ in range(int(json.loads(meta.read_text()).get("epoch", 0))):
            train.on_epoch_end()
    model.fit(train, epochs=epochs, callbacks=callbacks, verbose=verbose)
    return model, _history(workdir), members


def _history(workdir: Path) -> pd.DataFrame:
    """The fit's per-epoch log (a resumed fit appends; the last entry of an epoch counts)."""
    return pd.read_csv(workdir / "history.csv").drop_duplicates("epoch", keep="last")


def load_member(path) -> "keras.Model":
    """A saved network for inference (optimizer state not restored)."""
    return keras.models.load_model(path, custom_objects={"CombinedLoss": CombinedLoss}, compile=False)


def predict(models: list, images: np.ndarray, batch_size: int = 256, camera_max: float | None = None) -> np.ndarray:
    """Class probabilities of every ensemble member, (M, N, 3) float32.

    images : (N, 8, H, W) counts in the standard polarisation order; camera_max : their range
    (ADU), required (see :class:`EventSequence`)."""
    seq = EventSequence(images, None, batch_size, camera_max=camera_max)
    return np.stack([m.predict(seq, verbose=0) for m in models]).astype(np.float32)


def signal_probability(probabilities: np.ndarray) -> np.ndarray:
    """Summed carbon probability p(C30keV) + p(C100keV). In float32 it rounds to 1 once p(fog)
    < ~3e-8: rank and cut on ``scoring``'s log-odds instead."""
    return probabilities[..., list(SIGNAL_CLASSES)].sum(axis=-1)


class ScanSequence(keras.utils.PyDataset):
    """Keras dataset streamed from scan files, for datasets larger than memory.

    events : table with ``file``, ``event_id`` and ``label`` of the wanted events. Each epoch the
    wanted events of every file are cut into contiguous blocks of ``block_events`` (read with one
    slice each), the blocks of all files are shuffled with the classes interleaved evenly
    (``_stratified``) and taken ``window_blocks`` at a time, and
    each window's events are shuffled and cut into batches, so batches mix classes while reads
    stay sequential. Only one window is in memory. Deterministic from (seed, epoch).
    Polarisation order and camera range come from each file's attributes
    (:func:`preprocessing.standard_counts`; files of a smaller range are rescaled to the largest).
    ``full_batches`` (default: ``shuffle``) fills each window's last, partial batch up with the
    first events of that window, so every batch has ``batch_size`` events.
    """

    def __init__(self, folder, events: pd.DataFrame, batch_size: int, shuffle: bool = True, augment: bool = False,
                 seed: int = 0, block_events: int = 1024, window_blocks: int = 8, full_batches: bool | None = None,
                 **kw):
        from . import io
        super().__init__(**kw)
        self.folder = Path(folder)
        self.batch_size, self.shuffle, self.augment, self.seed = int(batch_size), shuffle, augment, int(seed)
        self.full_batches = bool(shuffle if full_batches is None else full_batches)
        self.block_events, self.window_blocks = block_events, window_blocks
        self.files, self.attrs = {}, {}
        for name, group in events.groupby("file", sort=True):
            self.attrs[name] = io.read_attrs(self.folder / name)
            ids = pd.Index(io.read_events(self.folder / name)["event_id"])
            pos = ids.get_indexer(group["event_id"].to_numpy())
            order = np.argsort(pos)
            self.files[name] = (pos[order], group["label"].to_numpy()[order])
        self.camera_max = max(float(a["camera_max"]) for a in self.attrs.values())
        self.epoch = 0
        self._plan()

    def _plan(self):
        rng = np.random.default_rng([self.seed, self.epoch])
        blocks = [(name, a) for name, (pos, _) in self.files.items() for a in range(0, len(pos), self.block_events)]
        if self.shuffle:
            blocks = self._stratified(blocks, rng)
        self.windows = [blocks[i:i + self.window_blocks] for i in range(0, len(blocks), self.window_blocks)]
        self.batches = []  # (window index, batch index within window)
        self.window_sizes = []
        for w, window in enumerate(self.windows):
            n = sum(min(self.block_events, len(self.files[name][0]) - a) for name, a in window)
            self.window_sizes.append(n)
            self.batches += [(w, b) for b in range(math.ceil(n / self.batch_size))]
        self._cached = (None, None)

    def _stratified(self, blocks: list, rng: np.random.Generator) -> list:
        """Blocks in a random order that spreads every class evenly over the epoch: each class's
        blocks are shuffled and block k of a class gets the key (events before it + u * its
        events) / the class's events, u uniform; sorting by key interleaves the classes, so every
        window holds them in about their overall proportions (a plain shuffle of a few large
        per-sample blocks gives windows of mostly one class, and the fit chases each window's
        class mix). A block's class is its most common label."""
        by_class = {}
        for b in blocks:
            labels = self.files[b[0]][1][b[1]:b[1] + self.block_events]
            by_class.setdefault(int(np.bincount(labels).argmax()), []).append((b, len(labels)))
        keyed = []
        for members in by_class.values():
            members = [members[i] for i in rng.permutation(len(members))]
            sizes = np.array([n for _, n in members], dtype=float)
            start = np.concatenate([[0.0], np.cumsum(sizes)[:-1]])
            keys = (start + rng.uniform(size=len(members)) * sizes) / sizes.sum()
            keyed += zip(keys, [b for b, _ in members])
        return [b for _, b in sorted(keyed, key=lambda kb: kb[0])]

    def _window(self, w):
        from . import io
        if self._cached[0] == w:
            return self._cached[1]
        images, labels = [], []
        for name, a in self.windows[w]:
            pos, lab = self.files[name]
            sel, lab = pos[a:a + self.block_events], lab[a:a + self.block_events]
            lo, hi = int(sel[0]), int(sel[-1]) + 1
            with io.h5py.File(self.folder / name, "r") as f:
                block = f["images"][lo:hi]
            images.append(preprocessing.standard_counts(block[sel - lo], self.attrs[name], self.camera_max, name))
            labels.append(lab)
        images, labels = np.concatenate(images), np.concatenate(labels)
        if self.shuffle:
            perm = np.random.default_rng([self.seed, self.epoch, w]).permutation(len(labels))
            images, labels = images[perm], labels[perm]
        self._cached = (w, (images, labels))
        return images, labels

    def __len__(self):
        return len(self.batches)

    def __getitem__(self, idx):
        w, b = self.batches[idx]
        images, labels = self._window(w)
        n = len(labels)
        sl = _filled(np.arange(b * self.batch_size, min((b + 1) * self.batch_size, n)), np.arange(n),
                     self.batch_size if self.full_batches else 0)
        x = preprocessing.preprocess(images[sl], self.camera_max)
        if self.augment:
            x = preprocessing.random_symmetry(x, np.random.default_rng([self.seed, self.epoch, idx]))
        return x, keras.utils.to_categorical(labels[sl], len(CLASSES))

    def on_epoch_end(self):
        self.epoch += 1
        self._plan()
