"""Simulator throughput: events/s for a mixed dataset (render + features + compressed HDF5 writes).

Usage: python benchmarks/bench_simulate.py [--events N] [--workers W]
Prints the overall rate of one simulate_dataset call (worker start-up included) and the
single-process rate per sample; the goal is >= 5,000 events/s on 2 cores.
"""
import argparse
import tempfile
import time

from emulsion_core.config.simulator import SimulatorConfig
from emulsion_core.simulator.layout import scan_layout
from emulsion_core.simulator.simulate import _block_job, default_workers, simulate_dataset

SAMPLES = ("C30keV", "C100keV", "fog")


def per_process_rate(sample: str, n_blocks: int = 6, block: int = 1024) -> float:
    """Events/s of one process rendering, measuring and compressing blocks (after a warm-up)."""
    cfg = SimulatorConfig()
    layout = scan_layout(sample, "rot0", block * (n_blocks + 1), 1, cfg)
    _block_job((sample, "rot0", layout, 0, block, 0, 1, cfg, 64))
    t = time.perf_counter()
    for b in range(1, n_blocks + 1):
        _block_job((sample, "rot0", layout, b * block, (b + 1) * block, b, 1, cfg, 64))
    return n_blocks * block / (time.perf_counter() - t)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--events", type=int, default=30000, help="raw events per sample")
    ap.add_argument("--workers", type=int, default=None)
    args = ap.parse_args()
    workers = args.workers or default_workers()
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        simulate_dataset(tmp, {s: {"rot0": args.events} for s in SAMPLES}, seed=1, samples=SAMPLES,
                         progress=False, workers=workers)
        overall = len(SAMPLES) * args.events / (time.perf_counter() - t)
    print(f"simulator benchmark: {args.events} raw events per sample ({', '.join(SAMPLES)})")
    for sample in SAMPLES:
        print(f"  one process, {sample:8s} {per_process_rate(sample):8.0f} events/s")
    print(f"  simulate_dataset, {workers} workers: {overall:8.0f} events/s   (goal >= 5000 events/s on 2 cores)")


if __name__ == "__main__":
    main()
