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
    cfg = cfg if cfg is not None else profile.simulator_config()
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


def load_images(folder, rows: pd.DataFrame, block_size: int = 4096) -> np.ndarray:
    """Images (len(rows), P, H, W) of the events ``rows`` (with ``file`` and ``event_id``), in order.

    Each file is streamed in blocks and the wanted events picked out, which is much faster
    than scattered reads of compressed chunks when many events are wanted.
    """
    folder = Path(folder)
    out = None
    names = rows["file"].to_numpy()
    for name in pd.unique(names):
        pos_out = np.flatnonzero(names == name)
        ids = pd.Index(io.read_events(folder / name)["event_id"])
        wanted = ids.get_indexer(rows["event_id"].to_numpy()[pos_out])  # positions in the file
        if (wanted < 0).any():
            raise io.DataFormatError(folder / name, "event_id", "no such event",
                                     event=int(rows["event_id"].to_numpy()[pos_out][np.argmax(wanted < 0)]))
        order = np.argsort(wanted)
        wanted, pos_out = wanted[order], pos_out[order]
        if len(wanted) < 64:  # a few events: direct reads
            images = io.read_scan(folder / name, events=wanted).images
        else:
            parts, start = [], 0
            for block, _ in io.iter_scan_blocks(folder / name, block_size):
                sel = wanted[(wanted >= start) & (wanted < start + len(block))] - start
                parts.append(block[sel])
                start += len(block)
                if start > wanted[-1]:
                    break
            images = np.concatenate(parts)
        if out is None:
            out = np.empty((len(rows),) + images.shape[1:], dtype=images.dtype)
        out[pos_out] = images
    return out


def scan_geometry(folder) -> tuple[list, float]:
    """Polarisation angles (deg) and pixel size (nm) of a dataset, from its first scan file."""
    name = io.read_splits(folder)["file"].iloc[0]
    attrs = io.read_attrs(Path(folder) / name)
    return attrs["polarisation_deg"], float(attrs["pixel_size_nm"])


def fingerprint(folder) -> str:
    """Short hash identifying a dataset's content: each scan file's name, size, event count,
    seed and simulator configuration, and ``splits.csv``. Caches built from the dataset store
    it and are rebuilt when it changes (for example after re-simulation)."""
    import hashlib
    import json
    folder = Path(folder)
    items = [hashlib.sha256((folder / "splits.csv").read_bytes()).hexdigest()]
    for path in sorted(folder.glob("*.h5")):
        attrs = io.read_attrs(path)
        items.append((path.name, path.stat().st_size, attrs.get("seed"), attrs.get("simulator_config"),
                      attrs.get("format_version")))
    return hashlib.sha256(json.dumps(items, default=str).encode()).hexdigest()[:16]
