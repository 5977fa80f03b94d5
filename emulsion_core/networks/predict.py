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


def predict_files(model_paths: list, inputs: list, output, on_error: str = "stop", block_size: int = 2048,
                  batch_size: int = 256, progress: bool = True, classes=None) -> dict:
    """Score ``inputs`` with the mean of ``model_paths``; returns {"scored": n, "failed": [files]}.
    classes : the networks' class list (default: read beside them, :func:`model_classes`)."""
    from emulsion_core.data import preprocessing
    from emulsion_core.networks import scoring, training
    models = [training.load_member(p) for p in model_paths]
    classes = model_classes(model_paths, models, classes)
    columns = ["file", "event_id", "score", "score_std", "log_odds"] + [f"p_{c}" for c in classes]
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    header = not output.exists() or output.stat().st_size == 0
    done = set()
    if not header:  # resume: files already complete in the output are not scored again
        prev = pd.read_csv(output)
        if list(prev.columns) != columns:
            raise ClassListError(f"{output} holds the columns {list(prev.columns)}, not those of networks with "
                                 f"the classes {list(classes)}: write to another file")
        done = set(prev["file"].unique())
    total, failed = 0, []
    with open(output, "a", newline="") as out:
        for path in inputs:
            path = Path(path)
            if str(path) in done:
                continue
            try:
                attrs = hdf5.read_attrs(path)
                n = len(hdf5.read_events(path))
                bar = tqdm(total=n, unit="ev", desc=path.name, **({} if progress else {"disable": True}))
                rows = []
                for images, events in hdf5.iter_scan_blocks(path, block_size):
                    images = preprocessing.standard_counts(images, attrs, source=str(path))
                    logits = scoring.predict_logits(models, images, batch_size, attrs["camera_max"])
                    probs = np.exp(scoring.log_probabilities(logits))
                    s = scoring.signal_probability(probs, classes)
                    mean = probs.mean(axis=0)
                    # log_odds: the ensemble score notebook 04's cut (newsnet_threshold.json) applies to
                    rows.append(pd.DataFrame({"file": str(path), "event_id": events["event_id"].to_numpy(),
                                              "score": s.mean(axis=0), "score_std": s.std(axis=0),
                                              "log_odds": scoring.ensemble_log_odds(logits, classes),
                                              **{f"p_{c}": mean[:, i] for i, c in enumerate(classes)}}))
                    bar.update(len(images))
                bar.close()
            except hdf5.DataFormatError as err:
                failed.append(str(path))
                print(f"error: {err}", file=sys.stderr)
                if on_error == "stop":
                    break
                continue
            # a file's rows are written together, so the output never holds half a file
            table = pd.concat(rows, ignore_index=True)
            table.to_csv(out, header=header, index=False, float_format="%.6g")
            out.flush()
            header = False
            total += len(table)
    return {"scored": total, "failed": failed}
