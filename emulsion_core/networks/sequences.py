"""Batches for training and scoring: events in memory (:class:`EventSequence`, uint8, 12.8 kB per
event) or streamed from the scan files window by window (:class:`ScanSequence`, only a few blocks
in memory), preprocessed to float32 on the fly (:mod:`emulsion_core.data.preprocessing`), with a
random symmetry of the pixel grid per training event; the class balance (inverse-frequency
weights or oversampling) and full training batches (a partial batch filled up: the oneDNN fault of
:mod:`emulsion_core.networks.onednn_guard`)."""

from __future__ import annotations

import math

from pathlib import Path

import numpy as np
import pandas as pd

from emulsion_core.config.paper import PAPER_CLASSES
from emulsion_core.data import preprocessing
from emulsion_core.networks.tf_quiet import keras

CLASS_BALANCES = ("weights", "oversample", "none")


def class_weights(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Inverse-frequency class weights (n_classes,), normalised so that the mean weight over the
    events is 1 (scikit-learn's "balanced": N / (K n_k)); every class then weighs N / K events in
    total, and the loss keeps its scale. A class without events raises ``ValueError``."""
    counts = np.bincount(np.asarray(labels, dtype=int), minlength=n_classes)[:n_classes]
    if (counts == 0).any():
        raise ValueError(f"class balance: no training events of class index {int(np.argmin(counts))} "
                         f"(events per class: {counts.tolist()})")
    return counts.sum() / (n_classes * counts.astype(float))


def oversampled(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Event indices of one oversampled epoch: every class drawn as often as the largest one
    (all its events once per whole copy, the remainder a random subset), in random order."""
    labels = np.asarray(labels)
    present = np.unique(labels)
    n = max(int((labels == c).sum()) for c in present)
    parts = []
    for c in present:
        idx = np.flatnonzero(labels == c)
        reps, rest = divmod(n, len(idx))
        parts += [rng.permutation(idx) for _ in range(reps)] + [rng.permutation(idx)[:rest]]
    return rng.permutation(np.concatenate(parts))


def _check_balance(class_balance: str) -> str:
    if class_balance not in CLASS_BALANCES:
        raise ValueError(f"class_balance {class_balance!r}: expected one of {', '.join(CLASS_BALANCES)}")
    return class_balance


class EventSequence(keras.utils.PyDataset):
    """Keras dataset over in-memory events: (N, 8, H, W) camera counts and class labels.

    Batches are preprocessed on the fly; ``augment`` adds one random grid symmetry per event.
    Labels are one-hot over ``n_classes``. ``class_balance`` (training only): ``"weights"`` serves
    each event's inverse-frequency class weight (:func:`class_weights`) as its sample weight,
    ``"oversample"`` draws every class as often as the largest (:func:`oversampled`), ``"none"``
    neither.
    Shuffling and symmetries are drawn from (seed, epoch, batch), so a resumed or repeated
    training sees the same batches. ``full_batches`` (default: ``shuffle``, i.e. for training)
    fills a last, partial batch up with the first events of the epoch's order, so every batch
    has ``batch_size`` events; sequences for evaluation serve each event exactly once.
    camera_max : the range (ADU) of the files the images come from (``dataset.camera_max``, or
    the file's attribute), required: it is never assumed.
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray | None, batch_size: int, shuffle: bool = False,
                 augment: bool = False, seed: int = 0, camera_max: float | None = None, full_batches: bool | None = None,
                 n_classes: int = len(PAPER_CLASSES), class_balance: str = "none", **kw):
        if camera_max is None:
            raise TypeError("EventSequence needs camera_max, the range of the scan files the images come from")
        super().__init__(**kw)
        self.images, self.labels = images, labels
        self.n_classes, self.class_balance = int(n_classes), _check_balance(class_balance)
        self.weights = (class_weights(labels, self.n_classes) if labels is not None and class_balance == "weights"
                        else None)
        self.n_events = len(images)
        if labels is not None and class_balance == "oversample":
            self.n_events = len(np.unique(labels)) * max(np.bincount(np.asarray(labels, dtype=int)))
        self.batch_size, self.shuffle, self.augment, self.seed = int(batch_size), shuffle, augment, int(seed)
        self.full_batches = bool(shuffle if full_batches is None else full_batches)
        self.camera_max = camera_max
        self.epoch = 0
        self._order()

    def _order(self):
        n = len(self.images)
        rng = np.random.default_rng([self.seed, self.epoch])
        if self.labels is not None and self.class_balance == "oversample":
            self.order = oversampled(self.labels, rng)
        else:
            self.order = rng.permutation(n) if self.shuffle else np.arange(n)

    def __len__(self):
        return math.ceil(self.n_events / self.batch_size)

    def __getitem__(self, idx):
        sel = np.sort(_filled(self.order[idx * self.batch_size:(idx + 1) * self.batch_size], self.order,
                              self.batch_size if self.full_batches else 0))
        x = preprocessing.preprocess(self.images[sel], self.camera_max)
        if self.augment:
            x = preprocessing.random_symmetry(x, np.random.default_rng([self.seed, self.epoch, idx]))
        if self.labels is None:
            return (x,)
        y = keras.utils.to_categorical(self.labels[sel], self.n_classes)
        return (x, y) if self.weights is None else (x, y, self.weights[self.labels[sel]].astype(np.float32))

    def on_epoch_end(self):
        self.epoch += 1
        self._order()


def _filled(sel: np.ndarray, pool: np.ndarray, size: int) -> np.ndarray:
    """``sel`` filled up to ``size`` entries with the first entries of ``pool`` (cyclically)."""
    if len(sel) >= size:
        return sel
    return np.concatenate([sel, np.resize(pool, size - len(sel))])


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
    Labels are one-hot over ``n_classes``; ``class_balance`` as :class:`EventSequence`:
    ``"weights"`` serves the inverse-frequency class weights of all wanted events as sample
    weights, ``"oversample"`` repeats the blocks of the smaller classes each epoch until every
    class has about as many events as the largest (to within a block), so windows hold the
    classes in equal shares.
    """

    def __init__(self, folder, events: pd.DataFrame, batch_size: int, shuffle: bool = True, augment: bool = False,
                 seed: int = 0, block_events: int = 1024, window_blocks: int = 8, full_batches: bool | None = None,
                 n_classes: int = len(PAPER_CLASSES), class_balance: str = "none", **kw):
        from emulsion_core.formats import hdf5
        super().__init__(**kw)
        self.folder = Path(folder)
        self.batch_size, self.shuffle, self.augment, self.seed = int(batch_size), shuffle, augment, int(seed)
        self.full_batches = bool(shuffle if full_batches is None else full_batches)
        self.n_classes, self.class_balance = int(n_classes), _check_balance(class_balance)
        self.weights = (class_weights(events["label"].to_numpy(), self.n_classes) if class_balance == "weights"
                        else None)
        self.block_events, self.window_blocks = block_events, window_blocks
        self.files, self.attrs = {}, {}
        for name, group in events.groupby("file", sort=True):
            self.attrs[name] = hdf5.read_attrs(self.folder / name)
            ids = pd.Index(hdf5.read_events(self.folder / name)["event_id"])
            pos = ids.get_indexer(group["event_id"].to_numpy())
            order = np.argsort(pos)
            self.files[name] = (pos[order], group["label"].to_numpy()[order])
        self.camera_max = max(float(a["camera_max"]) for a in self.attrs.values())
        self.epoch = 0
        self._plan()

    def _plan(self):
        rng = np.random.default_rng([self.seed, self.epoch])
        blocks = [(name, a) for name, (pos, _) in self.files.items() for a in range(0, len(pos), self.block_events)]
        if self.class_balance == "oversample":
            blocks = self._oversampled(blocks, rng)
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
        keyed = []
        by_class = self._by_class(blocks)
        for members in by_class.values():
            members = [members[i] for i in rng.permutation(len(members))]
            sizes = np.array([n for _, n in members], dtype=float)
            start = np.concatenate([[0.0], np.cumsum(sizes)[:-1]])
            keys = (start + rng.uniform(size=len(members)) * sizes) / sizes.sum()
            keyed += zip(keys, [b for b, _ in members])
        return [b for _, b in sorted(keyed, key=lambda kb: kb[0])]

    def _by_class(self, blocks: list) -> dict:
        """{class: [(block, events in it)]}; a block's class is its most common label."""
        by_class = {}
        for b in blocks:
            labels = self.files[b[0]][1][b[1]:b[1] + self.block_events]
            by_class.setdefault(int(np.bincount(labels).argmax()), []).append((b, len(labels)))
        return by_class

    def _oversampled(self, blocks: list, rng: np.random.Generator) -> list:
        """``blocks`` with those of every class repeated (whole copies, then randomly chosen blocks)
        until the class holds at least as many events as the largest class, less one block."""
        by_class = self._by_class(blocks)
        largest = max(sum(n for _, n in members) for members in by_class.values())
        out = []
        for members in by_class.values():
            total = sum(n for _, n in members)
            reps, rest = divmod(largest, total)
            out += [b for _ in range(reps) for b, _ in members]
            for i in rng.permutation(len(members)):
                if rest <= members[i][1] / 2:
                    break
                out.append(members[i][0])
                rest -= members[i][1]
        return out

    def _window(self, w):
        from emulsion_core.formats import hdf5
        if self._cached[0] == w:
            return self._cached[1]
        images, labels = [], []
        for name, a in self.windows[w]:
            pos, lab = self.files[name]
            sel, lab = pos[a:a + self.block_events], lab[a:a + self.block_events]
            lo, hi = int(sel[0]), int(sel[-1]) + 1
            with hdf5.h5py.File(self.folder / name, "r") as f:
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
        y = keras.utils.to_categorical(labels[sl], self.n_classes)
        return (x, y) if self.weights is None else (x, y, self.weights[labels[sl]].astype(np.float32))

    def on_epoch_end(self):
        self.epoch += 1
        self._plan()
