"""Barshift estimator throughput on simulated clean-ish events: events/s (goal >= 20,000 on 2 cores).

Usage: python benchmarks/bench_barshift.py [--events N]
"""
import argparse
import time

import numpy as np

from emulsion_core.barshift import conventional_variables
from emulsion_core.simulate import render_events
from emulsion_core.simconfig import SimulatorConfig


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--events", type=int, default=20000)
    args = ap.parse_args()
    cfg = SimulatorConfig()
    n = args.events
    kinds = np.where(np.arange(n) % 2 == 0, "track", "fog")
    images, _ = render_events("C100keV", "rot0", kinds, np.zeros(n), np.random.default_rng(1), cfg)
    conventional_variables(images[:256], cfg.optics.pixel_size_nm)
    t = time.perf_counter()
    conventional_variables(images, cfg.optics.pixel_size_nm)
    dt = time.perf_counter() - t
    print(f"barshift benchmark: {n} events of 8 x 40 x 40 px in {dt:.2f} s: {n / dt:,.0f} events/s "
          f"(goal >= 20,000 events/s on 2 cores)")


if __name__ == "__main__":
    main()
