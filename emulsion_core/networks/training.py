"""Training NEWSnet: batches from polarisation images, Adam with an exponentially decaying
learning rate, a checkpoint every epoch, resumption, and the snapshot ensemble of the last epochs.

The training practice is the profile's (``training`` section): the class list the network
learns (``network.classes``, saved beside the fit as ``network.json`` and checked when the fit
is loaded again), the class balance (``class_balance``: inverse-frequency event weights,
oversampling of the smaller classes, or none) and early stopping on a smoothed validation
loss (``early_stopping``: the snapshot ensemble is then the last epochs up to the stop).

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

import contextlib
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from emulsion_core.networks import batchnorm, onednn_guard
from emulsion_core.networks.callbacks import (  # noqa: F401  (the callbacks of a fit, also as training.*)
    EpochTimer, ExponentialDecay, SmoothedEarlyStopping, schedule_callback, stop_epoch, tensorboard)

from emulsion_core.networks.models import (
    PAPER_CLASSES, ClassListError, CombinedLoss, check_output, keras, newsnet, signal_indices)
from emulsion_core.networks.sequences import (  # noqa: F401  (sequences.EventSequence, sequences.ScanSequence)
    CLASS_BALANCES, EventSequence, ScanSequence, _check_balance, class_weights, oversampled)
from emulsion_core.storage import atomic, locks

NETWORK_FILE = "network.json"  # beside a fit's epochs: its class list and, once finished, its last epoch


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
    from emulsion_core.networks import xla_choice
    return xla_choice.choose(lambda jit: build(params, width_scale, jit_compile=jit),
                             {"network": "newsnet", "params": dict(params), "width_scale": width_scale},
                             batch_size, event_passes)


def compile_model(model, params: dict, jit_compile: bool = False, classes=None) -> "keras.Model":
    """Compile ``model`` with Adam and the combined loss from ``params`` (Appendix A names), whose
    signal term sums the carbon classes of ``classes`` (default ``params["classes"]``, else the
    paper's; checked against the model's output size).

    ``jit_compile`` (XLA) costs ~15 s more per new model and speeds training up on some CPUs and
    slows it down on others: :func:`use_xla` measures it for long fits."""
    onednn_guard.require_safe()  # before the first network is trained: oneDNN must not be on where it crashes
    beta_1 = 1.0 - 1.0 / float(params["beta_1_inv"])  # [P21]: beta searched as 1 / (1 - beta)
    beta_2 = 1.0 - 1.0 / float(params["beta_2_inv"])
    classes = class_list(params, classes)
    check_output(model, classes)
    model.compile(optimizer=keras.optimizers.Adam(float(params["learning_rate"]), beta_1=beta_1, beta_2=beta_2),
                  loss=CombinedLoss(float(params["loss_lambda"]), signal_indices(classes)), jit_compile=jit_compile)
    prebuild_optimizer(model)
    return model


def prebuild_optimizer(model) -> None:
    """Create the optimiser's variables (Adam's moments, zeros) now, outside the training step: built
    inside the first traced step instead, they make TensorFlow trace that step twice (~3 s more per new
    network here; the same weights after the fit, a test)."""
    if getattr(model, "built", False) and not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)


def class_list(params: dict, classes=None) -> tuple:
    """The class list a network is built for: ``classes``, else ``params["classes"]`` (callers that
    pass only the parameters, such as the search, carry it there), else the paper's."""
    return tuple(classes if classes is not None else params.get("classes", PAPER_CLASSES))


def build(params: dict, width_scale=1.0, jit_compile: bool = False, classes=None) -> "keras.Model":
    """NEWSnet with ``params`` (Appendix A names) and one output per class of ``classes``
    (:func:`class_list`), compiled with Adam and the combined loss; in ``params["precision"]``
    (:func:`precision_policy`, default float32)."""
    classes = class_list(params, classes)
    with precision_policy(params.get("precision", "float32")):
        model = newsnet(**scaled_widths(params, width_scale), n_classes=len(classes))
    return compile_model(model, params, jit_compile, classes)


@contextlib.contextmanager
def precision_policy(precision: str):
    """Build layers under Keras' dtype policy ``precision`` (``float32``, or ``mixed_bfloat16``:
    bfloat16 arithmetic on float32 weights; the class layer stays float32), the global policy
    restored afterwards. A layer keeps the policy it was built with, also when saved and loaded."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(precision)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def fit_in_memory(model, params: dict, images: np.ndarray, labels: np.ndarray, epochs: int, batch_size: int,
                  seed: int = 0, verbose: int = 0, camera_max: float | None = None,
                  class_balance: str | None = None, log_dir=None, callbacks=()) -> "keras.Model":
    """Train a compiled ``model`` on in-memory events (shuffled, augmented, full batches) with the
    learning-rate schedule of ``params``, then re-estimate its batch-normalisation statistics on
    the training events (``batchnorm.recalibrate``), as every network that is evaluated needs.

    images : (N, 8, H, W) camera counts of range ``camera_max`` (ADU); labels : (N,) indices of
    the model's classes (one per output); class_balance : as :class:`EventSequence` (default
    ``params["class_balance"]``, else ``"weights"``, the profiles' default); log_dir : TensorBoard
    logs of the fit (loss and learning rate per epoch) there; callbacks : more Keras callbacks (e.g.
    :class:`EpochTimer`). Returns ``model``."""
    balance = class_balance or params.get("class_balance", "weights")
    train = EventSequence(images, labels, batch_size, shuffle=True, augment=True, seed=seed, camera_max=camera_max,
                          n_classes=int(model.output_shape[-1]), class_balance=balance)
    # shuffle=False: the sequence shuffles itself, deterministically (see :func:`fit`)
    callbacks = [schedule_callback(params, epochs)] + ([tensorboard(log_dir)] if log_dir else []) + list(callbacks)
    model.fit(train, epochs=epochs, verbose=verbose, callbacks=callbacks, shuffle=False)
    batchnorm.recalibrate(model, batchnorm.sequence_batches(
        EventSequence(images, None, batch_size, shuffle=True, seed=seed + 1, full_batches=True, camera_max=camera_max)))
    return model


def read_network(workdir) -> dict | None:
    """The fit's ``network.json`` (class list, and ``last_epoch`` once finished), or None."""
    path = Path(workdir) / NETWORK_FILE
    return json.loads(path.read_text()) if path.exists() else None


def check_classes(workdir, classes) -> None:
    """Raise :class:`ClassListError` when the fit in ``workdir`` was made with another class list."""
    info = read_network(workdir)
    if info is not None and list(info["classes"]) != list(classes):
        raise ClassListError(f"the networks in {workdir} were trained with the classes {info['classes']}, "
                             f"not {list(classes)} (network.classes of the profile)")


def _write_network(workdir: Path, classes, **extra) -> None:
    info = {"classes": list(classes), "signal": [classes[i] for i in signal_indices(classes)],
            "background": [c for i, c in enumerate(classes) if i not in signal_indices(classes)], **extra}
    atomic.write_json(workdir / NETWORK_FILE, info, indent=1)


def _members(workdir: Path, last: int, ensemble: int) -> list:
    """The snapshot ensemble: the last ``ensemble`` epochs up to ``last`` (at least epoch 1)."""
    return [workdir / f"epoch_{e:03d}.keras" for e in range(max(1, last - ensemble + 1), last + 1)] if ensemble else []


class BackupWithRandomState(keras.callbacks.BackupAndRestore):
    """Keras' BackupAndRestore, which keeps the weights and the optimiser but not the random state
    of the dropout layers (their seed generators are not saved with the weights, Keras 3.15), plus
    that state: written for every backed-up epoch (``seed_generators_<epoch>.npz``, before the
    weights) and restored with the epoch the fit resumes at, so a fit killed anywhere and resumed
    draws the dropout masks an unbroken fit would."""

    def _seed_states(self) -> list:
        return [v for v in self.model.variables if "seed_generator_state" in v.path]

    def _seed_file(self, epoch: int) -> Path:
        return Path(self.backup_dir) / f"seed_generators_{int(epoch):03d}.npz"

    def _save_model(self):
        path = self._seed_file(self._current_epoch)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic.replacing(path, keep_suffix=True) as tmp:
            np.savez(tmp, *[keras.ops.convert_to_numpy(v) for v in self._seed_states()])
        super()._save_model()

    def _load_model(self):
        super()._load_model()
        meta = Path(self.backup_dir) / "training_metadata.json"
        if meta.exists():
            path = self._seed_file(json.loads(meta.read_text())["epoch"])
            if path.exists():
                with np.load(path) as saved:
                    for i, v in enumerate(self._seed_states()):
                        v.assign(saved[f"arr_{i}"])


def fit(params: dict, train, validation, epochs: int, workdir, width_scale=1.0, ensemble: int = 0,
        verbose: int = 0, classes=None, early_stopping: dict | None = None, log_dir=None, seed: int | None = None):
    """Train, writing ``epoch_NNN.keras`` after every epoch into ``workdir``; an interrupted fit
    resumes from ``workdir/backup`` (BackupAndRestore); a finished one is loaded, not redone.
    At every epoch's end the batch-normalisation statistics are re-estimated on training batches
    (``batchnorm.Recalibration``) before ``val_loss`` is computed and the epoch saved.

    classes : the class list (:func:`class_list`), written to ``workdir/network.json`` and
    checked against it (:class:`models.ClassListError` when the fit there used another);
    early_stopping : {"smoothing", "patience"} (:func:`stop_epoch`; needs ``validation``; never
    before the ensemble's epochs exist). The last epoch trained is recorded in ``network.json``.
    log_dir : TensorBoard logs (loss, ``val_loss``, ``val_auc``, learning rate per epoch) there;
    seed : Keras' global seed, set right before the network is built, after the XLA decision, whose
    timing builds networks of its own (:func:`use_xla`): the initial weights are then the same
    whether that timing ran now or was read from the machine's cache.
    Returns (model, history DataFrame, ensemble member paths: the last ``ensemble`` epochs up to
    the last epoch trained). One process at a time fits in ``workdir`` (:mod:`locks`): a second waits
    and then reads the finished fit back.
    """
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    with locks.exclusive(workdir, f"the fit in {workdir}"):
        return _fit(params, train, validation, epochs, workdir, width_scale, ensemble, verbose, classes,
                    early_stopping, log_dir, seed)


def _fit(params, train, validation, epochs, workdir: Path, width_scale, ensemble, verbose, classes, early_stopping,
         log_dir=None, seed=None):
    classes = class_list(params, classes)
    check_classes(workdir, classes)
    es = dict(early_stopping or {})
    smoothing, patience = int(es.get("smoothing", 1)), int(es.get("patience", 0)) if validation is not None else 0
    info, backup = read_network(workdir) or {}, workdir / "backup"
    last = info.get("last_epoch")
    if last is None and not backup.exists() and (workdir / f"epoch_{epochs:03d}.keras").exists():
        last = epochs  # finished before network.json existed
    elif last is None and patience and (workdir / "history.csv").exists():
        # killed between an early stop and the end of the fit: finished at the stop
        logged = _history(workdir)
        e = stop_epoch(logged["val_loss"], smoothing, patience, ensemble) if "val_loss" in logged else None
        if e is not None and (workdir / f"epoch_{e:03d}.keras").exists():
            last = e
            shutil.rmtree(backup, ignore_errors=True)
    if last is not None and not backup.exists():  # finished before: nothing to redo
        _write_network(workdir, classes, last_epoch=int(last))
        model = load_member(workdir / f"epoch_{last:03d}.keras", classes)
        return model, _history(workdir), _members(workdir, int(last), ensemble)
    _write_network(workdir, classes)
    jit = use_xla({**params, "classes": list(classes)}, width_scale, train.batch_size, epochs * len(train) * train.batch_size)
    if seed is not None:
        keras.utils.set_random_seed(int(seed))  # after the XLA timing, which draws initial weights of its own
    model = build(params, width_scale, classes=classes, jit_compile=jit)
    callbacks = [
        schedule_callback(params, epochs),
        # before the callbacks that save or log the epoch; val_loss and val_auc from one validation pass
        batchnorm.Recalibration(train, validation, signal=signal_indices(classes)),
        SmoothedEarlyStopping(workdir / "history.csv", smoothing, patience, min_epochs=ensemble),
        keras.callbacks.ModelCheckpoint(str(workdir / "epoch_{epoch:03d}.keras")),
        BackupWithRandomState(str(backup)),
        keras.callbacks.CSVLogger(str(workdir / "history.csv"), append=True),
        *([tensorboard(log_dir)] if log_dir else []),
    ]
    meta = backup / "training_metadata.json"
    if meta.exists() and hasattr(train, "on_epoch_end"):
        # resuming: give the batches of the epoch the fit restarts at, as an unbroken fit would
        for _ in range(int(json.loads(meta.read_text()).get("epoch", 0))):
            train.on_epoch_end()
    # shuffle=False: our sequences shuffle themselves (deterministic from their seed and epoch); Keras
    # would also shuffle the order of batches, which makes ScanSequence re-read a window of scan
    # blocks for every other batch: 3x slower on 2 CPU cores (55 against 180 events/s, default)
    model.fit(train, epochs=epochs, callbacks=callbacks, verbose=verbose, shuffle=False)
    history = _history(workdir)
    last = int(history["epoch"].max()) + 1
    _write_network(workdir, classes, last_epoch=last)
    return model, history, _members(workdir, last, ensemble)


def _history(workdir: Path) -> pd.DataFrame:
    """The fit's per-epoch log (a resumed fit appends; the last entry of an epoch counts)."""
    return pd.read_csv(workdir / "history.csv").drop_duplicates("epoch", keep="last").sort_values("epoch")


def load_member(path, classes=None) -> "keras.Model":
    """A saved network for inference (optimizer state not restored). With ``classes``, its output
    size and the class list saved beside it (``network.json``, when there) must match them, else
    :class:`models.ClassListError`."""
    path = Path(path)
    if classes is not None:
        check_classes(path.parent, classes)
    model = keras.models.load_model(path, custom_objects={"CombinedLoss": CombinedLoss}, compile=False)
    if classes is not None:
        check_output(model, classes, str(path))
    return model


def predict(models: list, images: np.ndarray, batch_size: int = 256, camera_max: float | None = None) -> np.ndarray:
    """Class probabilities of every ensemble member, (M, N, 3) float32.

    images : (N, 8, H, W) counts in the standard polarisation order; camera_max : their range
    (ADU), required (see :class:`EventSequence`)."""
    seq = EventSequence(images, None, batch_size, camera_max=camera_max)
    return np.stack([m.predict(seq, verbose=0) for m in models]).astype(np.float32)
