"""``splits.csv`` for given (not simulated) scans: the documented rule, never an overwrite.

The rule ([P21] Appendix B, DESIGN.md section 2), applied per scan file in name order:

- a file whose ``scan`` attribute is ``test`` (an independent test area): every event ``test``;
- a rotated scan (``rot0``, ``rot45``, ``rot90``, ``rot0_repeat``): a random ``validation_fraction``
  of its events (rounded to the nearest event) ``validation``, the rest ``train``, drawn from
  ``numpy.random.default_rng`` seeded by the profile's seed and the file name, so every file
  (hence every rotation) is split in the same proportion and the split is reproducible;
- any other ``scan`` value: an error naming the file (the rule cannot tell its role).

An existing ``splits.csv`` is the user's and is never rewritten; the simulator writes its own
for the folders it owns (:func:`emulsion_core.simulator.simulate.write_splits`, the same proportions).
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from emulsion_core.formats import hdf5
from emulsion_core.config.samples import ROTATED_SCANS, TEST_SCANS
from emulsion_core.storage import atomic

FILE = hdf5.SPLITS_FILE


def _rng(seed: int, name: str) -> np.random.Generator:
    word = int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "little")
    return np.random.default_rng([int(seed), word])


def by_rule(folder, seed: int, validation_fraction: float, files=None) -> pd.DataFrame:
    """The rule's ``file, event_id, split`` table for the scan files of ``folder`` (default: every
    ``*.h5``). Raises :class:`hdf5.DataFormatError` for a file whose ``scan`` has no rule."""
    folder = Path(folder)
    names = sorted(files) if files is not None else sorted(p.name for p in folder.glob("*.h5"))
    if not names:
        raise hdf5.DataFormatError(folder, "file", "no scan files (*.h5) to make splits.csv from")
    rows = []
    for name in names:
        attrs = hdf5.read_attrs(folder / name)
        ids = hdf5.read_events(folder / name)["event_id"].to_numpy()
        n = len(ids)
        if attrs["scan"] in TEST_SCANS:
            split = np.full(n, attrs["scan"], dtype=object)  # test, test_bulk
        elif attrs["scan"] in ROTATED_SCANS:
            split = np.full(n, "train", dtype=object)
            split[_rng(seed, name).permutation(n)[: int(round(validation_fraction * n))]] = "validation"
        else:
            raise hdf5.DataFormatError(folder / name, "scan", f"scan {attrs['scan']!r} has no split rule (test: "
                                     f"{', '.join(TEST_SCANS)}; train/validation: {', '.join(ROTATED_SCANS)}); "
                                     f"write {FILE} yourself")
        rows.append(pd.DataFrame({"file": name, "event_id": ids, "split": split}))
    return pd.concat(rows, ignore_index=True)


def ensure(folder, seed: int, validation_fraction: float, announce: bool = True) -> Path:
    """``folder/splits.csv``: kept when it exists, otherwise written by the rule (one line on
    stderr says so). Returns its path."""
    path = Path(folder) / FILE
    if path.exists():
        return path
    table = by_rule(folder, seed, validation_fraction)
    atomic.write_csv(table, path, index=False)
    if announce:
        counts = table["split"].value_counts()
        print(f"wrote {path} by the rule of emulsion_core.formats.splits (seed {seed}, validation fraction "
              f"{validation_fraction:g}): " + ", ".join(f"{counts.get(s, 0)} {s}" for s in ("train", "validation", "test")),
              file=sys.stderr)
    return path
