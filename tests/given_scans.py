"""Helpers for tests that need scans written by another program (no simulator attributes) and profiles
written outside the repository."""

import hashlib
from pathlib import Path

import yaml

from emulsion_core.formats import hdf5
from emulsion_core.simulator.simulate import simulate_scan


def foreign_scan(dest, sample: str, scan: str, n: int, seed: int, scratch) -> Path:
    """A valid format_version 1 file as another program would write it: the simulator's images
    and events, but only the format's required columns and attributes, written by hdf5.write_scan."""
    src = simulate_scan(Path(scratch) / f"src_{sample}_{scan}_{seed}.h5", sample, scan, n, seed)
    s = hdf5.read_scan(src)
    attrs = {k: s.attrs[k] for k in hdf5.REQUIRED_ATTRS}
    events = s.events[list(hdf5.REQUIRED_COLUMNS)]
    return hdf5.write_scan(dest, hdf5.Scan(s.images, events, attrs))


def checksums(folder) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(Path(folder).iterdir()) if p.is_file()}


def write_profile(path, name: str, dataset: str, samples, rotated: int, test: int, seed: int = 11, **extra) -> Path:
    raw = {"profile": name, "seed": seed, "dataset": dataset, "samples": list(samples),
           "events": {"rotated": {s: rotated for s in samples}, "test": {s: test for s in samples}}, **extra}
    Path(path).write_text(yaml.safe_dump(raw))
    return Path(path)
