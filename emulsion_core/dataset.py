"""A dataset: the scan files of a profile plus ``splits.csv``; simulated on demand.

``events_table`` joins every scan's events with its file attributes and split, without
reading any image; ``load_images`` reads the images of chosen events.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from . import io, paths
from .profiles import Profile
from .simconfig import SAMPLES, SimulatorConfig
from .simulate import SCAN_ORDER, simulate_dataset


def dataset_dir(profile: Profile) -> Path:
    return paths.data_dir(profile.dataset)


def ensure_dataset(profile: Profile, cfg: SimulatorConfig | None = None, progress: bool = True) -> Path:
    """Simulate the profile's dataset where scans are missing or stale; returns its folder.

    Scans already complete (same seed, configuration, size) are kept, so this is cheap when
    the data are there and resumes an interrupted simulation scan by scan.
    """
    folder = dataset_dir(profile)
    simulate_dataset(folder, profile.events, profile.seed, profile.samples, cfg,
                     profile.validation_fraction, profile.block_size, progress=progress)
    return folder


def events_table(folder) -> pd.DataFrame:
    """All events of a dataset folder with ``file``, ``sample``, ``scan``, ``rotation_deg``,
    ``area``, ``is_signal`` and ``split`` columns (images are not read)."""
    folder = Path(folder)
    splits = io.read_splits(folder)
    parts = []
    for name in sorted(splits["file"].unique()):
        path = folder / name
        attrs = io.read_attrs(path)
        ev = io.read_events(path)
        ev.insert(0, "file", name)
        for key in ("sample", "scan", "rotation_deg", "area", "is_signal"):
            ev[key] = attrs[key]
        parts.append(ev)
    table = pd.concat(parts, ignore_index=True)
    table = table.merge(splits, on=["file", "event_id"], how="left", validate="one_to_one")
    missing = table["split"].isna()
    if missing.any():
        row = table[missing].iloc[0]
        raise io.DataFormatError(folder / "splits.csv", "split", f"no split for {row['file']}",
                                 event=int(row["event_id"]))
    table["sample"] = pd.Categorical(table["sample"], categories=[s for s in SAMPLES if s in set(table["sample"])])
    order = {s: i for i, s in enumerate(SCAN_ORDER)}
    table["_o"] = table["scan"].map(order)
    return table.sort_values(["sample", "_o", "event_id"], kind="stable").drop(columns="_o").reset_index(drop=True)


def load_images(folder, rows: pd.DataFrame) -> np.ndarray:
    """Images (len(rows), P, H, W) of the events ``rows`` (with ``file`` and ``event_id``), in order."""
    folder = Path(folder)
    out = None
    for name, group in rows.groupby("file", sort=False):
        ids = pd.Index(io.read_events(folder / name)["event_id"])
        idx = ids.get_indexer(group["event_id"].to_numpy())  # positions in the file
        if (idx < 0).any():
            raise io.DataFormatError(folder / name, "event_id", "no such event",
                                     event=int(group["event_id"].to_numpy()[np.argmax(idx < 0)]))
        order = np.argsort(idx)
        scan = io.read_scan(folder / name, events=idx[order])
        if out is None:
            out = np.empty((len(rows),) + scan.images.shape[1:], dtype=scan.images.dtype)
        pos = np.flatnonzero(rows["file"].to_numpy() == name)
        out[pos[order]] = scan.images
    return out


def scan_geometry(folder) -> tuple[list, float]:
    """Polarisation angles (deg) and pixel size (nm) of a dataset, from its first scan file."""
    name = io.read_splits(folder)["file"].iloc[0]
    attrs = io.read_attrs(Path(folder) / name)
    return attrs["polarisation_deg"], float(attrs["pixel_size_nm"])
