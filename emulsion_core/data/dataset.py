"""A dataset: the scan files of a profile plus ``splits.csv``, simulated (by
:mod:`emulsion_core.app.prepare`, never from here) or given.

``require`` reads a profile's folder as it is (:mod:`emulsion_core.formats.ownership` tells
which): the simulator's (complete, or :class:`DatasetNotReady`) or given scans (checked as
``info`` checks them, a missing ``splits.csv`` made by :mod:`emulsion_core.formats.splits`, never
written into otherwise). ``events_table`` joins every scan's events with its file attributes
and split, measuring the cluster features a given file lacks from its images (cached);
``load_images`` reads the images of chosen events in the one convention every consumer uses.
"""

from __future__ import annotations

import hashlib
import io as _bytes_io
import json
from pathlib import Path

import numpy as np
import pandas as pd

from emulsion_core.formats import hdf5, ownership, splits
from emulsion_core.storage import paths, provenance
from emulsion_core.data import preprocessing
from emulsion_core.measure import depth
from emulsion_core.measure.features import FEATURE_COLUMNS, cluster_features
from emulsion_core.config.profiles import Profile
from emulsion_core.config.samples import SAMPLES, SCANS
from emulsion_core.storage import atomic


def dataset_dir(profile: Profile) -> Path:
    return paths.data_dir(profile.dataset)


class DatasetNotReady(FileNotFoundError):
    """The profile's data folder holds no analysable dataset yet (no ``splits.csv``)."""


def require(profile: Profile) -> Path:
    """The profile's dataset folder, ready to read; returns it.

    Given scans (files the simulator did not write) are checked as ``info`` checks them (cached),
    and a missing ``splits.csv`` is made by the rule of :mod:`emulsion_core.formats.splits`. A
    simulated dataset must be complete: reading never simulates. That is decided at the top, by
    ``python -m emulsion_core prepare`` (``run_all.sh``) or a notebook's first cell
    (:func:`emulsion_core.app.prepare.ensure_dataset`); otherwise :class:`DatasetNotReady` names
    the folder and the command. Both in one folder: :class:`ownership.ForeignFilesError`."""
    folder = dataset_dir(profile)
    if ownership.inspect(folder).given:
        splits.ensure(folder, profile.seed, profile.validation_fraction)
        check_given(folder)
        return folder
    listing = folder / splits.FILE
    command = f"`python -m emulsion_core prepare --profile {profile.path or profile.name}` (run_all.sh does)"
    if not listing.exists():
        raise DatasetNotReady(f"{folder}: no dataset of profile {profile.name!r} yet ({splits.FILE} missing); "
                              f"run {command}")
    missing = [f for f in sorted(hdf5.read_splits(folder)["file"].unique()) if not (folder / f).exists()]
    if missing:
        raise DatasetNotReady(f"{folder}: {len(missing)} scan file(s) listed in {splits.FILE} are missing "
                              f"({', '.join(missing[:3])}{'...' if len(missing) > 3 else ''}); run {command}")
    return folder


def check_given(folder) -> list:
    """Check every scan file listed in ``splits.csv`` as ``python -m emulsion_core info`` does
    (attributes, events, every image block) and measure the cluster features it lacks; both
    cached (:func:`given_features`). Returns the file names. Raises :class:`hdf5.DataFormatError`."""
    folder = Path(folder)
    names = sorted(hdf5.read_splits(folder)["file"].unique())
    for name in names:
        given_features(folder / name, _missing_features(hdf5.read_events(folder / name)))
    return names


def _missing_features(events: pd.DataFrame) -> list:
    return [c for c in FEATURE_COLUMNS if c not in events.columns]


def given_features(path, columns) -> pd.DataFrame:
    """``event_id`` and the cluster features ``columns`` of a scan file, measured on its images by
    :func:`features.cluster_features` (the definitions the cleaning cuts assume).

    The file is read block by block through :func:`hdf5.iter_scan_blocks`, so every block is
    validated exactly as ``info`` validates it. Cached under ``<root>/cache/<folder name>/``,
    keyed by the file's path, size and modification time and by the code (provenance).
    """
    path = Path(path).resolve()
    columns = list(columns)
    stat = path.stat()
    cache = paths.cache_dir(path.parent.name) / f"{path.name}.features.npz"
    key = provenance.key("given_features", file=str(path), bytes=stat.st_size, mtime_ns=stat.st_mtime_ns,
                         columns=columns)
    if provenance.is_current(cache, key):
        with np.load(cache) as z:
            return pd.DataFrame({c: z[c] for c in ["event_id"] + columns})
    parts = []
    for images, events in hdf5.iter_scan_blocks(path):
        block = cluster_features(images)[columns] if columns else pd.DataFrame(index=range(len(images)))
        parts.append(block.reset_index(drop=True).assign(event_id=events["event_id"].to_numpy()))
    table = pd.concat(parts, ignore_index=True)[["event_id"] + columns]
    buffer = _bytes_io.BytesIO()
    np.savez(buffer, **{c: table[c].to_numpy() for c in table.columns})
    with atomic.replacing(cache) as tmp:
        tmp.write_bytes(buffer.getvalue())
    provenance.write(cache, key)
    return table


def events_table(folder) -> pd.DataFrame:
    """All events of a dataset folder with ``file``, ``sample``, ``scan``, ``rotation_deg``,
    ``area``, ``is_signal`` and ``split`` columns. Images are read only for the cluster features
    a file lacks (:data:`features.FEATURE_COLUMNS`, measured once and cached: :func:`given_features`),
    so every cut works on files that hold just the format's required columns. A file without
    ``depth_um`` gets it from its stage z (:func:`emulsion_core.measure.depth.imaging_depth_from_z`)."""
    folder = Path(folder)
    listing = hdf5.read_splits(folder)
    parts = []
    for name in sorted(listing["file"].unique()):
        path = folder / name
        attrs = hdf5.read_attrs(path)
        ev = hdf5.read_events(path)
        need = _missing_features(ev)
        if need:
            measured = given_features(path, need)
            for c in need:
                ev[c] = measured[c].to_numpy()
        if "depth_um" not in ev and "z_um" in ev:
            ev["depth_um"] = depth.imaging_depth_from_z(ev)  # a file written before convert did
        ev.insert(0, "file", name)
        for key in ("sample", "scan", "rotation_deg", "area", "is_signal"):
            ev[key] = attrs[key]
        parts.append(ev)
    table = pd.concat(parts, ignore_index=True)
    table = table.merge(listing, on=["file", "event_id"], how="left", validate="one_to_one")
    missing = table["split"].isna()
    if missing.any():
        row = table[missing].iloc[0]
        raise hdf5.DataFormatError(folder / splits.FILE, "split", f"no split for {row['file']}",
                                 event=int(row["event_id"]))
    table["sample"] = pd.Categorical(table["sample"], categories=[s for s in SAMPLES if s in set(table["sample"])])
    order = {s: i for i, s in enumerate(SCANS)}
    table["_o"] = table["scan"].map(order)
    return table.sort_values(["sample", "_o", "event_id"], kind="stable").drop(columns="_o").reset_index(drop=True)


def camera_max(folder) -> float:
    """The camera range (ADU) that :func:`load_images` serves a dataset's images at: the largest
    ``camera_max`` attribute of the scan files listed in its ``splits.csv``."""
    folder = Path(folder)
    return float(max(hdf5.read_attrs(folder / n)["camera_max"] for n in hdf5.read_splits(folder)["file"].unique()))


def load_images(folder, rows: pd.DataFrame, block_size: int = 4096) -> np.ndarray:
    """Images (len(rows), 8, H, W) of the events ``rows`` (with ``file`` and ``event_id``), in order,
    in the one convention every consumer uses (:func:`preprocessing.standard_counts`): each
    file's polarisations in the standard order of its ``polarisation_deg`` attribute, and its
    counts on the dataset's camera range :func:`camera_max` (a file of a smaller range is
    rescaled; uint8 when that range is at most 255, else uint16).

    Each file is streamed in blocks and the wanted events picked out, which is much faster
    than scattered reads of compressed chunks when many events are wanted.
    """
    folder = Path(folder)
    common = camera_max(folder)
    out = None
    names = rows["file"].to_numpy()
    for name in pd.unique(names):
        pos_out = np.flatnonzero(names == name)
        ids = pd.Index(hdf5.read_events(folder / name)["event_id"])
        wanted = ids.get_indexer(rows["event_id"].to_numpy()[pos_out])  # positions in the file
        if (wanted < 0).any():
            raise hdf5.DataFormatError(folder / name, "event_id", "no such event",
                                     event=int(rows["event_id"].to_numpy()[pos_out][np.argmax(wanted < 0)]))
        order = np.argsort(wanted)
        wanted, pos_out = wanted[order], pos_out[order]
        if len(wanted) < 64:  # a few events: direct reads
            images = hdf5.read_scan(folder / name, events=wanted).images
        else:
            parts, start = [], 0
            for block, _ in hdf5.iter_scan_blocks(folder / name, block_size):
                sel = wanted[(wanted >= start) & (wanted < start + len(block))] - start
                parts.append(block[sel])
                start += len(block)
                if start > wanted[-1]:
                    break
            images = np.concatenate(parts)
        images = preprocessing.standard_counts(images, hdf5.read_attrs(folder / name), common, str(folder / name))
        if out is None:
            out = np.empty((len(rows),) + images.shape[1:], dtype=images.dtype)
        out[pos_out] = images
    return out


def truth_column(folder, rows: pd.DataFrame, column: str) -> np.ndarray | None:
    """The simulator's truth ``column`` (e.g. ``true_n_grains``) of the events ``rows`` (with
    ``file`` and ``event_id``), in order; None when any file lacks it (real scans carry no truth)."""
    folder = Path(folder)
    out = np.empty(len(rows), dtype=np.float64)
    names = rows["file"].to_numpy()
    for name in pd.unique(names):
        events = hdf5.read_events(folder / name)
        if column not in events:
            return None
        pos = np.flatnonzero(names == name)
        at = pd.Index(events["event_id"]).get_indexer(rows["event_id"].to_numpy()[pos])
        if (at < 0).any():
            raise hdf5.DataFormatError(folder / name, "event_id", "no such event",
                                     event=int(rows["event_id"].to_numpy()[pos][np.argmax(at < 0)]))
        out[pos] = np.asarray(events[column])[at]
    return out


def measure_events(folder, events: pd.DataFrame, measure, desc: str, progress: bool = True,
                   threads: int | None = None) -> pd.DataFrame:
    """Stream every file of ``events`` (rows with ``file``, ``event_id``) once, block by block, and
    measure the wanted events: ``measure(images, attrs, path) -> DataFrame`` gets the block's
    wanted images (N, P, H, W) and the file's attributes. Returns ``file``, ``event_id`` and the
    measured columns, one row per wanted event (a progress bar counts them).

    The blocks are read here and measured on ``threads`` threads (default: the machine's cores, at
    most 4; numpy's medians and sorts release the interpreter lock: 1.8x on 2 cores), a few blocks
    ahead at most; the rows come back in the files' and blocks' order whatever the threads."""
    import os
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    from tqdm import tqdm
    folder = Path(folder)
    threads = max(1, threads if threads is not None else min(os.cpu_count() or 1, 4))
    parts, pending = [], deque()
    bar = tqdm(total=len(events), unit="ev", desc=desc, **({} if progress else {"disable": True}))

    def collect(limit: int) -> None:
        while len(pending) > limit:
            ids, name, future = pending.popleft()
            measured = future.result()
            parts.append(pd.concat([ids.assign(file=name), measured.reset_index(drop=True)], axis=1))
            bar.update(len(ids))

    with ThreadPoolExecutor(threads) as pool:
        for name, group in events.groupby("file", sort=False):
            wanted = set(group["event_id"].to_numpy().tolist())
            attrs = hdf5.read_attrs(folder / name)
            for images, block in hdf5.iter_scan_blocks(folder / name):
                keep = block["event_id"].isin(wanted).to_numpy()
                if keep.any():
                    pending.append((block.loc[keep, ["event_id"]].reset_index(drop=True), name,
                                    pool.submit(measure, images[keep], attrs, folder / name)))
                    collect(2 * threads)
        collect(0)
    bar.close()
    return pd.concat(parts, ignore_index=True)


def scan_geometry(folder) -> tuple[list, float]:
    """Polarisation angles (deg) of the images :func:`load_images` serves (the standard order)
    and the pixel size (nm) of the dataset, from its first scan file."""
    name = hdf5.read_splits(folder)["file"].iloc[0]
    attrs = hdf5.read_attrs(Path(folder) / name)
    return list(preprocessing.POLARISATIONS_DEG), float(attrs["pixel_size_nm"])


def fingerprint(folder) -> str:
    """Short hash identifying a dataset's content: ``splits.csv`` and each scan file's name and
    size with, for the simulator's own files, the provenance key the manifest records (seed,
    configuration, simulator code) and, for any other file, its modification time. Caches built
    from the dataset key on it and are rebuilt when it changes (e.g. after re-simulation)."""
    folder = Path(folder)
    listed = (ownership.read_manifest(folder) or {"files": {}})["files"]
    items = [hashlib.sha256((folder / splits.FILE).read_bytes()).hexdigest()]
    for path in sorted(folder.glob("*.h5")):
        stat, entry = path.stat(), listed.get(path.name, {})
        own = entry.get("status") == "written" and entry.get("bytes") == stat.st_size
        items.append((path.name, stat.st_size, entry.get("provenance") if own else stat.st_mtime_ns))
    return hashlib.sha256(json.dumps(items, default=str, sort_keys=True).encode()).hexdigest()[:16]
