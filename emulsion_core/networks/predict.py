"""Score any number of scan files with trained networks, streaming each file in blocks.

Rows (file, event_id, score, score_std, log_odds, then p_<class> for every class the networks learnt,
e.g. p_C30keV, p_C100keV, p_fog) are appended to the output CSV block by block and flushed, so an
interrupted run keeps everything already scored. A file that cannot be read is reported by name and
either skipped or stops the run.

The class list comes from the ``network.json`` saved beside the networks by the fit
(``training.fit``), or from ``classes``; a network of another class list, members of different
lists, or an output file written for other classes stop the run (:class:`models.ClassListError`).
A network saved without ``network.json`` and with 3 outputs is read with the paper's classes.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from emulsion_core.formats import hdf5
from emulsion_core.config.paper import PAPER_CLASSES
from emulsion_core.networks import engine_choice
from emulsion_core.networks.models import ClassListError, check_output


def model_classes(model_paths: list, models: list, classes=None) -> tuple:
    """The class list of the ensemble ``models`` (loaded from ``model_paths``): the one saved beside
    them (``network.json``), which ``classes`` must equal when given; ``classes`` for networks
    saved without one; else the paper's for 3-output networks. Every network's output size is
    checked (:class:`models.ClassListError`)."""
    from emulsion_core.networks import training
    saved = {tuple(info["classes"]) for info in (training.read_network(Path(p).parent) for p in model_paths) if info}
    if len(saved) > 1:
        raise ClassListError(f"the networks were trained with different class lists: {sorted(saved)}")
    if classes is not None and saved and saved != {tuple(classes)}:
        raise ClassListError(f"the networks were trained with the classes {list(saved.pop())}, not {list(classes)}")
    if classes is None and saved:
        classes = saved.pop()
    elif classes is None:
        classes = PAPER_CLASSES
        print(f"note: no network.json beside {model_paths[0]}: reading its outputs as {list(classes)}", file=sys.stderr)
    for model, path in zip(models, model_paths):
        check_output(model, classes, str(path))
    return tuple(classes)


_MODELS = {}  # per process: a cluster worker loads an ensemble once


def load_models(model_paths: list) -> list:
    """The networks of ``model_paths`` for inference, loaded once per process."""
    from emulsion_core.networks import training
    key = tuple(str(p) for p in model_paths)
    if key not in _MODELS:
        _MODELS.clear()
        _MODELS[key] = [training.load_member(p) for p in model_paths]
    return _MODELS[key]


ENGINES = ("auto", *engine_choice.ENGINES)  # auto: the faster here, measured


def resolve_engine(engine: str, model_paths: list, classes, n_events: int, batch_size: int) -> str:
    """``engine`` itself, or for ``"auto"`` the faster on this machine for ``n_events``
    (:func:`engine_choice.choose`)."""
    if engine not in ENGINES:
        raise ValueError(f"scoring engine {engine!r}: expected one of {', '.join(ENGINES)}")
    if engine != "auto":
        return engine
    return engine_choice.choose(load_models(model_paths), model_paths, classes, n_events, batch_size)


def ensemble_logits(model_paths, classes, images, camera_max, engine: str = "keras", batch_size: int = 256) -> np.ndarray:
    """(M, N, C) float64 logits of raw events (N, 8, H, W camera counts of range ``camera_max``) by
    every member of ``model_paths``: by Keras (float64 last layer) or by ONNX Runtime on the
    ensemble exported once per machine (``export.ensemble_session``; log-odds within 1e-4 of Keras')."""
    from emulsion_core.networks import scoring
    if engine == "onnx":
        from emulsion_core.data import preprocessing
        from emulsion_core.networks import export
        logits, _ = export.run(export.ensemble_session(model_paths, classes),
                               preprocessing.preprocess(images, camera_max), batch_size)
        return logits.astype(np.float64)
    return scoring.predict_logits(load_models(model_paths), images, batch_size, camera_max)


def score_file(model_paths: list, path, classes, block_size: int = 2048, batch_size: int = 256,
               progress: bool = False, engine: str = "auto") -> pd.DataFrame:
    """Every event of the scan file ``path`` scored by the ensemble (the rows of :func:`predict_files`)
    with ``engine`` (:data:`ENGINES`: Keras, ONNX Runtime on the ensemble exported once per machine
    (log-odds within 1e-4 of Keras'), or the faster of the two here, :func:`resolve_engine`); raises :class:`hdf5.DataFormatError` naming the file
    when it cannot be read."""
    from emulsion_core.data import preprocessing
    from emulsion_core.networks import scoring
    path = Path(path)
    attrs = hdf5.read_attrs(path)
    n = len(hdf5.read_events(path))
    engine = resolve_engine(engine, model_paths, classes, n, batch_size)
    rows = []
    with tqdm(total=n, unit="ev", desc=path.name, **({} if progress else {"disable": True})) as bar:
        for images, events in hdf5.iter_scan_blocks(path, block_size):
            images = preprocessing.standard_counts(images, attrs, source=str(path))
            logits = ensemble_logits(model_paths, classes, images, attrs["camera_max"], engine, batch_size)
            probs = np.exp(scoring.log_probabilities(logits))
            s = scoring.signal_probability(probs, classes)
            mean = probs.mean(axis=0)
            # log_odds: the ensemble score notebook 04's cut (newsnet_threshold.json) applies to
            rows.append(pd.DataFrame({"file": str(path), "event_id": events["event_id"].to_numpy(),
                                      "score": s.mean(axis=0), "score_std": s.std(axis=0),
                                      "log_odds": scoring.ensemble_log_odds(logits, classes),
                                      **{f"p_{c}": mean[:, i] for i, c in enumerate(classes)}}))
            bar.update(len(images))
    return pd.concat(rows, ignore_index=True)


def _columns(classes) -> list:
    return ["file", "event_id", "score", "score_std", "log_odds"] + [f"p_{c}" for c in classes]


def _open_output(output: Path, classes) -> tuple[bool, set]:
    """(header still to write, files already complete in ``output``); another class list refused."""
    output.parent.mkdir(parents=True, exist_ok=True)
    if not output.exists() or output.stat().st_size == 0:
        return True, set()
    prev = pd.read_csv(output)
    if list(prev.columns) != _columns(classes):
        raise ClassListError(f"{output} holds the columns {list(prev.columns)}, not those of networks with "
                             f"the classes {list(classes)}: write to another file")
    return False, set(prev["file"].unique())


def predict_files(model_paths: list, inputs: list, output, on_error: str = "stop", block_size: int = 2048,
                  batch_size: int = 256, progress: bool = True, classes=None, executor=None,
                  engine: str = "auto") -> dict:
    """Score ``inputs`` with the mean of ``model_paths``; returns {"scored": n, "failed": [files]}.
    classes : the networks' class list (default: read beside them, :func:`model_classes`);
    executor : score the files in parallel there (:func:`predict_sharded`), the same output;
    engine : :data:`ENGINES` (:func:`score_file`)."""
    if executor is not None:
        return predict_sharded(model_paths, inputs, output, executor, on_error, block_size, batch_size, classes,
                               engine)
    classes = model_classes(model_paths, load_models(model_paths), classes)
    output = Path(output)
    header, done = _open_output(output, classes)
    if engine == "auto":  # one choice for the whole run, from all its events
        engine = resolve_engine(engine, model_paths, classes, _count_events([p for p in inputs if str(p) not in done]),
                                batch_size)
    total, failed = 0, []
    with open(output, "a", newline="") as out:
        for path in inputs:
            if str(path) in done:
                continue
            try:
                table = score_file(model_paths, path, classes, block_size, batch_size, progress, engine)
            except hdf5.DataFormatError as err:
                failed.append(str(path))
                print(f"error: {err}", file=sys.stderr)
                if on_error == "stop":
                    break
                continue
            # a file's rows are written together, so the output never holds half a file
            table.to_csv(out, header=header, index=False, float_format=FLOAT_FORMAT)
            out.flush()
            header = False
            total += len(table)
    return {"scored": total, "failed": failed}


FLOAT_FORMAT = "%.6g"


def _count_events(inputs: list) -> int:
    """Events in the readable files of ``inputs`` (an unreadable one counts 0: it is reported when scored)."""
    n = 0
    for p in inputs:
        try:
            n += len(hdf5.read_events(p))
        except (hdf5.DataFormatError, OSError):
            pass
    return n


def score_shard(model_paths: list, path, shard, classes, block_size: int, batch_size: int,
                engine: str = "keras") -> dict:
    """A cluster task: score one file into its ``shard`` CSV (rows only, written through a temporary
    file); returns {"file", "rows"} or {"file", "error"}."""
    from emulsion_core.storage import atomic
    try:
        table = score_file(model_paths, path, classes, block_size, batch_size, engine=engine)
    except hdf5.DataFormatError as err:
        return {"file": str(path), "error": str(err)}
    atomic.write_text(shard, table.to_csv(header=False, index=False, float_format=FLOAT_FORMAT))
    return {"file": str(path), "rows": len(table)}


def predict_sharded(model_paths: list, inputs: list, output, executor, on_error: str = "stop",
                    block_size: int = 2048, batch_size: int = 256, classes=None, engine: str = "auto") -> dict:
    """:func:`predict_files` with one task per file on ``executor`` (a Dask cluster's): each worker
    loads the ensemble once from its ``.keras`` files and writes its file's shard
    (``<output>.shards/NNNNN.csv``); the shards are appended to ``output`` in input order, so it
    equals the serial output byte for byte. Resumable: a shard already written is not scored
    again, a file already in ``output`` is skipped; the shards are removed once merged."""
    classes = model_classes(model_paths, load_models(model_paths), classes)
    output = Path(output)
    header, done = _open_output(output, classes)
    if engine == "auto":  # chosen here, on the driver's machine, for every worker
        engine = resolve_engine(engine, model_paths, classes, _count_events([p for p in inputs if str(p) not in done]),
                                batch_size)
    shards = output.with_name(output.name + ".shards")
    shards.mkdir(parents=True, exist_ok=True)
    todo = [(i, str(p)) for i, p in enumerate(inputs) if str(p) not in done]
    shard = {i: shards / f"{i:05d}.csv" for i, _ in todo}
    futures = {i: executor.submit(score_shard, list(map(str, model_paths)), p, shard[i], tuple(classes),
                                  block_size, batch_size, engine) for i, p in todo if not shard[i].exists()}
    outcome = {i: (futures[i].result() if i in futures else {"file": p}) for i, p in todo}
    total, failed = 0, []
    with open(output, "a", newline="") as out:
        if header:
            out.write(",".join(_columns(classes)) + "\n")
        for i, p in todo:
            if "error" in outcome[i]:
                failed.append(p)
                print(f"error: {outcome[i]['error']}", file=sys.stderr)
                if on_error == "stop":
                    break
                continue
            text = shard[i].read_text()
            out.write(text)
            out.flush()
            shard[i].unlink()  # merged; shards after a stop stay for the rerun
            total += text.count("\n")
    if not any(shards.iterdir()):
        shards.rmdir()
    return {"scored": total, "failed": failed}
