"""Scaling with the number of workers (issue 18, item 6): search calls per hour, simulated and scored
events per second, serial and on Dask LocalClusters of 1..N single-threaded workers, on this machine.

Usage: python benchmarks/bench_scaling.py [--workers 1,2] [--events N] [--calls K] [--profile smoke]
Prints one table row per (task, where). The search row uses the profile's own search objective on
its dataset (simulated first if missing: ``python -m emulsion_core prepare --profile smoke``); the
scoring row a compact network on freshly simulated scans. Name the CPU (lscpu) beside the numbers.
"""
import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import pandas as pd

SAMPLES = ("C30keV", "C100keV", "fog")


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()}, {os.cpu_count()} cores"
    except OSError:
        pass
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"


def clusters(counts):
    """('serial', None), then a LocalCluster executor of n workers for each n."""
    from distributed import Client, LocalCluster
    yield "serial", None
    for n in counts:
        with LocalCluster(n_workers=n, threads_per_worker=1, dashboard_address=":0") as lc, Client(lc) as client:
            client.run(lambda: __import__("emulsion_core.simulator.simulate"))  # warm the workers' imports
            yield f"local:{n}", client.get_executor()


def simulate_rate(executor, events: int) -> float:
    from emulsion_core.simulator.simulate import simulate_dataset
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        simulate_dataset(tmp, {s: {"rot0": events} for s in SAMPLES}, seed=1, samples=SAMPLES, progress=False,
                         workers=1, executor=executor)
        return len(SAMPLES) * events / (time.perf_counter() - t)


def score_rate(executor, files, model) -> float:
    from emulsion_core.networks.predict import predict_files
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        result = predict_files([model], files, Path(tmp) / "scores.csv", progress=False, executor=executor)
        return result["scored"] / (time.perf_counter() - t)


def search_rate(executor, profile, calls: int) -> float:
    from functools import partial

    from emulsion_core.analyses.network_analysis import search_objective
    from emulsion_core.config.paper import PAPER_PARAMETERS
    from emulsion_core.networks import search
    t = time.perf_counter()
    search.run(partial(search_objective, profile), calls, calls, profile.seed, progress=False,
               dimensions=profile.search["dimensions"], fixed=PAPER_PARAMETERS, batch_size=max(1, calls // 2),
               executor=executor)
    return calls / (time.perf_counter() - t) * 3600


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--workers", default="1,2", help="comma-separated LocalCluster sizes")
    ap.add_argument("--events", type=int, default=6000, help="raw events per sample to simulate")
    ap.add_argument("--calls", type=int, default=4, help="search calls per measurement (0: no search row)")
    ap.add_argument("--profile", default="smoke", help="profile whose dataset and search the search row uses")
    args = ap.parse_args()
    counts = [int(n) for n in args.workers.split(",")]
    from emulsion_core.config import profiles
    from emulsion_core.networks import models
    from emulsion_core.simulator.simulate import simulate_scan
    profile = profiles.load(args.profile)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        files = [simulate_scan(tmp / f"{s}_test.h5", s, "test", 2500, seed=3) for s in SAMPLES + ("gamma",)]
        model = tmp / "compact.keras"
        net = models.compact_3d()
        net.compile(optimizer="adam", loss=models.CombinedLoss(0.5))
        net.save(model)
        for where, executor in clusters(counts):
            row = {"where": where, "simulated events/s": round(simulate_rate(executor, args.events)),
                   "scored events/s": round(score_rate(executor, files, model))}
            if args.calls:
                row["search calls/hour"] = round(search_rate(executor, profile, args.calls), 1)
            rows.append(row)
            print(row, flush=True)
    print(f"\nscaling benchmark on {cpu_name()} ({args.events} raw events per sample simulated; "
          f"{len(files)} scan files scored by compact_3d; {args.calls} {profile.name} search calls)")
    print(pd.DataFrame(rows).set_index("where").to_string())


if __name__ == "__main__":
    main()
