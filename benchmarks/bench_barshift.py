"""Barshift estimator throughput on simulated clean-ish events: events/s (goal >= 20,000 on 2 cores).

Usage: python benchmarks/bench_barshift.py [--events N]
"""
import argparse
import time

import numpy as np

from emulsion_core.measure.barshift import conventional_variables
from emulsion_core.simulator.simulate import render_events
from emulsion_core.config.simulator import SimulatorConfig


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--events", type=int, default=20000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    cfg = SimulatorConfig()
    n = args.events
    kinds = np.where(np.arange(n) % 2 == 0, "track", "fog")
    images, _ = render_events("C100keV", "rot0", kinds, np.zeros(n), np.random.default_rng(1), cfg)
    conventional_variables(images[:256], cfg.optics.pixel_size_nm)
    times = []
    for _ in range(args.repeat):
        t = time.perf_counter()
        conventional_variables(images, cfg.optics.pixel_size_nm)
        times.append(time.perf_counter() - t)
    rates = sorted(n / t for t in times)
    print(f"barshift benchmark: {n} events of 8 x 40 x 40 px, {args.repeat} runs: median {rates[len(rates) // 2]:,.0f}, "
          f"best {rates[-1]:,.0f} events/s (goal >= 20,000 events/s on 2 cores)")


if __name__ == "__main__":
    main()
