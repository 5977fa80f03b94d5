"""Scoring engines: Keras against ONNX Runtime on one ensemble, events/s at several batch sizes, and
their largest log-odds difference (issue 19, item 2).

Usage: python benchmarks/bench_engines.py [--members a.keras b.keras ...] [--events N] [--batches 64,256,1024]
Default members: a NEWSnet of the default profile's widths with random weights (timing only; give a
trained ensemble, e.g. results/default/newsnet/final/epoch_00[345].keras, for its numbers).
"""
import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

CLASSES = ("C30keV", "C100keV", "fog")


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return f"{line.split(':', 1)[1].strip()}, {os.cpu_count()} cores"
    return "unknown CPU"


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--members", nargs="*", default=None)
    ap.add_argument("--events", type=int, default=2048)
    ap.add_argument("--batches", default="64,256,1024")
    args = ap.parse_args()
    from emulsion_core.config.paper import PAPER_PARAMETERS
    from emulsion_core.data import preprocessing
    from emulsion_core.networks import export, scoring, training
    from emulsion_core.networks.models import keras
    from emulsion_core.simulator.simulate import simulate_scan
    from emulsion_core.formats import hdf5
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        members = args.members
        if not members:
            keras.utils.set_random_seed(1)
            members = [tmp / "epoch_001.keras"]
            training.build({**PAPER_PARAMETERS, "classes": list(CLASSES), "n_identity": 1}, [0.125, 0.25]).save(members[0])
        scan = hdf5.read_scan(simulate_scan(tmp / "fog_test.h5", "fog", "test", args.events, seed=2))
        images = preprocessing.standard_counts(scan.images, scan.attrs, source="bench")
        x = preprocessing.preprocess(images, scan.attrs["camera_max"])
        models = [training.load_member(p) for p in members]
        t = time.perf_counter()
        sess = export.session(export.export(members, tmp / "e.onnx", CLASSES))
        export_s = time.perf_counter() - t
        rows, odds = [], {}
        for batch in map(int, args.batches.split(",")):
            scoring.predict_logits(models, images[:batch], batch, scan.attrs["camera_max"])  # warm-up
            t = time.perf_counter()
            odds["keras"] = scoring.ensemble_log_odds(scoring.predict_logits(models, images, batch, scan.attrs["camera_max"]), CLASSES)
            keras_rate = len(images) / (time.perf_counter() - t)
            export.run(sess, x[:batch], batch)
            t = time.perf_counter()
            logits, _ = export.run(sess, x, batch)
            onnx_rate = len(images) / (time.perf_counter() - t)
            odds["onnx"] = scoring.ensemble_log_odds(logits.astype(np.float64), CLASSES)
            rows.append({"batch": batch, "keras events/s": round(keras_rate), "onnx events/s": round(onnx_rate),
                         "max |log-odds difference|": float(np.abs(odds["onnx"] - odds["keras"]).max())})
    print(f"scoring engines on {cpu_name()}: {len(members)} member(s), {args.events} events, export {export_s:.1f} s")
    print(pd.DataFrame(rows).set_index("batch").to_string())


if __name__ == "__main__":
    main()
