"""Scan files, format_version 1 (DESIGN.md section 2): write atomically, read with validation.

One HDF5 file per scan: ``images`` (N, P, H, W) raw camera counts (uint8 or uint16),
``events`` a compound dataset with one record per event, and file attributes describing the
sample, scan and camera. Every malformed input raises :class:`DataFormatError` naming the file
and the field (and the event where one is at fault).
"""

from __future__ import annotations

import json
import os
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import h5py
import numpy as np
import pandas as pd

from emulsion_core.config.samples import SAMPLES, SPLITS
from emulsion_core.storage import atomic

FORMAT_VERSION = 1
REQUIRED_COLUMNS = {
    "event_id": "i", "view": "i", "x_um": "f", "y_um": "f", "z_um": "f", "npx": "if",
    "volume": "if", "brightness_max": "if", "n_peaks": "i", "view_density": "if",
}
TRUTH_COLUMNS = ("true_kind", "true_n_grains", "true_length_nm", "true_phi_deg", "true_theta_deg")
REQUIRED_ATTRS = ("format_version", "sample", "is_signal", "energy_keV", "scan", "rotation_deg",
                  "area", "beam_phi_deg", "pixel_size_nm", "camera_max", "polarisation_deg")
SIMULATION_ATTRS = ("simulator_version", "simulator_config", "seed")
CHUNK_EVENTS = 64
SPLITS_FILE = "splits.csv"  # beside the scans: every event's split (formats.splits)


class DataFormatError(ValueError):
    """A scan file does not follow format_version 1; the message names the file and field."""

    def __init__(self, path, field_name: str, problem: str, event: int | None = None):
        where = f"{path}: field '{field_name}'"
        if event is not None:
            where += f", event {event}"
        super().__init__(f"{where}: {problem}")
        self.path, self.field, self.event = str(path), field_name, event


@dataclass
class Scan:
    """One scan in memory: images (N, P, H, W), events table, file attributes."""

    images: np.ndarray
    events: pd.DataFrame
    attrs: dict = field(default_factory=dict)

    @property
    def n_events(self) -> int:
        return len(self.events)


# ----------------------------------------------------------------------------------- writing
def _records(events: pd.DataFrame) -> np.ndarray:
    """Compound array from a DataFrame; text columns become fixed-length ASCII."""
    cols = {}
    for name in events.columns:
        values = events[name].to_numpy()
        if values.dtype == object or values.dtype.kind in "UO":
            values = np.asarray(values.astype(str), dtype="S")
        cols[name] = values
    dtype = [(k, v.dtype) for k, v in cols.items()]
    rec = np.empty(len(events), dtype=dtype)
    for k, v in cols.items():
        rec[k] = v
    return rec


def _attr_value(value):
    if isinstance(value, (list, tuple)):
        return np.asarray(value, dtype=np.float64)
    if isinstance(value, (dict,)):
        return json.dumps(value)
    return value


class ScanWriter:
    """Write a scan block by block into ``path`` atomically (temporary file, then rename).

    Image chunks are gzip-compressed in a thread pool (zlib releases the GIL) and written as
    raw chunks, so the file is a plain gzip-filtered HDF5 dataset readable by any HDF5 tool.
    Use as a context manager; on an exception the temporary file is removed.
    """

    def __init__(self, path, n_events: int, image_shape: tuple, dtype, attrs: dict,
                 compression_level: int = 1, threads: int = 2):
        self.path = Path(path)
        self.tmp = atomic.temporary(self.path)
        self.n_events, self.attrs = n_events, attrs
        self.level = compression_level
        self.pool = ThreadPoolExecutor(max_workers=threads)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.f = h5py.File(self.tmp, "w")
        chunk = (min(CHUNK_EVENTS, max(n_events, 1)),) + tuple(image_shape)
        self.chunk = chunk[0]
        self.images = self.f.create_dataset("images", shape=(n_events,) + tuple(image_shape),
                                            dtype=dtype, chunks=chunk, compression="gzip",
                                            compression_opts=compression_level)
        self.written = 0
        self.events: list[pd.DataFrame] = []
        self._pending = np.empty((0,) + tuple(image_shape), dtype=dtype)

    def append(self, images: np.ndarray, events: pd.DataFrame) -> None:
        """Add a block of events (their images and table rows), in order."""
        buf = np.concatenate([self._pending, images]) if len(self._pending) else images
        n_full = (len(buf) // self.chunk) * self.chunk
        if self.written + len(buf) == self.n_events:
            n_full = len(buf)  # the last, possibly partial chunk
        blobs = self.pool.map(lambda i: compress_chunk(buf[i:i + self.chunk], self.chunk, self.level),
                              range(0, n_full, self.chunk))
        self._write_chunks(list(blobs), n_full)
        self._pending = buf[n_full:]
        self.events.append(events)

    def append_compressed(self, blobs: list[bytes], n: int, events: pd.DataFrame) -> None:
        """Add ``n`` events whose image chunks were compressed by :func:`compress_chunk`."""
        if len(self._pending):
            raise ValueError("append_compressed after a block that ended inside a chunk")
        self._write_chunks(blobs, n)
        self.events.append(events)

    def _write_chunks(self, blobs: list[bytes], n: int) -> None:
        for i, blob in enumerate(blobs):
            self.images.id.write_direct_chunk((self.written + i * self.chunk, 0, 0, 0), blob)
        self.written += n

    def close(self) -> None:
        if self.written + len(self._pending) != self.n_events:
            raise ValueError(f"{self.path}: wrote {self.written + len(self._pending)} of {self.n_events} events")
        table = pd.concat(self.events, ignore_index=True) if self.events else pd.DataFrame()
        self.f.create_dataset("events", data=_records(table), chunks=True, compression="gzip")
        for key, value in self.attrs.items():
            self.f.attrs[key] = _attr_value(value)
        self.f.close()
        self.pool.shutdown()
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        self.pool.shutdown(cancel_futures=True)
        try:
            self.f.close()
        finally:
            self.tmp.unlink(missing_ok=True)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self.abort()
        return False


try:  # Intel ISA-L deflate: the same zlib stream as the HDF5 gzip filter, about twice as fast
    from isal import isal_zlib as _deflate
except ImportError:  # pragma: no cover - platforms without isal wheels
    _deflate = zlib


def compress_chunk(block: np.ndarray, chunk: int, level: int = 1) -> bytes:
    """zlib (HDF5 gzip filter) bytes of one image chunk, zero-padded to ``chunk`` events."""
    return _deflate.compress(np.ascontiguousarray(_pad(block, chunk)).tobytes(), min(level, 3))


def _pad(block: np.ndarray, n: int) -> np.ndarray:
    if len(block) == n:
        return block
    out = np.zeros((n,) + block.shape[1:], dtype=block.dtype)
    out[:len(block)] = block
    return out


def write_scan(path, scan: Scan) -> Path:
    """Write ``scan`` to ``path`` atomically; returns the path."""
    images = np.asarray(scan.images)
    with ScanWriter(path, len(images), images.shape[1:], images.dtype, scan.attrs) as w:
        w.append(images, scan.events.reset_index(drop=True))
    return Path(path)


# ----------------------------------------------------------------------------------- reading
def _open(path) -> h5py.File:
    path = Path(path)
    if not path.exists():
        raise DataFormatError(path, "file", "no such file")
    if path.stat().st_size == 0:
        raise DataFormatError(path, "file", "empty file (0 bytes)")
    try:
        return h5py.File(path, "r")
    except OSError as err:
        raise DataFormatError(path, "file", f"not a readable HDF5 file (truncated or another format): {err}") from None


def _decode(value):
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.ndarray):
        return [float(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _header(f: h5py.File, path) -> tuple[dict, h5py.Dataset, np.dtype]:
    """Validate attributes, dataset presence, dtypes and shapes; return attrs, images, events dtype."""
    attrs = {k: _decode(v) for k, v in f.attrs.items()}
    if "format_version" not in attrs:
        raise DataFormatError(path, "format_version", "missing attribute")
    if attrs["format_version"] != FORMAT_VERSION:
        raise DataFormatError(path, "format_version",
                              f"unknown format_version {attrs['format_version']!r}, this reader knows {FORMAT_VERSION}")
    for key in REQUIRED_ATTRS:
        if key not in attrs:
            raise DataFormatError(path, key, "missing attribute")
    if attrs["sample"] not in SAMPLES:
        raise DataFormatError(path, "sample", f"unknown sample {attrs['sample']!r}, expected one of {SAMPLES}")
    pols = attrs["polarisation_deg"]
    pols = [pols] if not isinstance(pols, list) else pols
    attrs["polarisation_deg"] = pols
    for name in ("images", "events"):
        if name not in f:
            raise DataFormatError(path, name, "missing dataset")
    images = f["images"]
    if images.ndim != 4:
        raise DataFormatError(path, "images", f"expected shape (N, P, H, W), got {images.shape}")
    n, p, h, w = images.shape
    if images.dtype.kind == "f":
        _check_finite_images(images, path)
    if images.dtype not in (np.uint8, np.uint16):
        raise DataFormatError(path, "images", f"dtype {images.dtype}, expected uint8 or uint16 camera counts")
    if p != len(pols):
        raise DataFormatError(path, "images", f"{p} polarisation images per event but attribute "
                              f"'polarisation_deg' lists {len(pols)} angles")
    if h < 8 or w < 8:
        raise DataFormatError(path, "images", f"images of {h} x {w} pixels are too small")
    if n == 0:
        raise DataFormatError(path, "images", "no events in the file")
    cam = attrs["camera_max"]
    if not (isinstance(cam, (int, float)) and 0 < cam <= np.iinfo(images.dtype).max):
        raise DataFormatError(path, "camera_max", f"{cam!r} does not fit dtype {images.dtype}")
    events = f["events"]
    if events.dtype.names is None:
        raise DataFormatError(path, "events", "expected a compound dataset (one record per event)")
    if events.shape != (n,):
        raise DataFormatError(path, "events", f"{events.shape[0] if events.ndim else 0} records for {n} image sets")
    for col, kinds in REQUIRED_COLUMNS.items():
        if col not in events.dtype.names:
            raise DataFormatError(path, col, "missing column in 'events'")
        if events.dtype[col].kind not in kinds + ("u" if "i" in kinds else ""):
            raise DataFormatError(path, col, f"column dtype {events.dtype[col]} is not numeric of kind {kinds}")
    return attrs, images, events.dtype


def _check_finite_images(images, path) -> None:
    for start in range(0, images.shape[0], 1024):
        block = images[start:start + 1024]
        bad = ~np.isfinite(block).reshape(len(block), -1).all(axis=1)
        if bad.any():
            raise DataFormatError(path, "images", "NaN or inf pixel values", event=start + int(np.argmax(bad)))


def _events_frame(rec: np.ndarray, path, offset: int = 0) -> pd.DataFrame:
    df = pd.DataFrame.from_records(rec)
    for col in df.columns:
        if df[col].dtype == object:
            df[col] = df[col].str.decode("ascii")
        elif df[col].dtype.kind == "f":
            bad = ~np.isfinite(df[col].to_numpy())
            if col.startswith("true_"):
                continue  # truth angles are NaN where undefined (e.g. a single grain has no direction)
            if bad.any():
                raise DataFormatError(path, col, "NaN or inf value", event=offset + int(np.argmax(bad)))
    return df


def _wrap_read(path, name, fn):
    try:
        return fn()
    except DataFormatError:
        raise
    except (OSError, RuntimeError, KeyError) as err:
        raise DataFormatError(path, name, f"cannot read data (truncated or corrupt file): {err}") from None


def read_attrs(path) -> dict:
    """Validated attributes of a scan file (cheap: no image data is read)."""
    with _open(path) as f:
        attrs, _, _ = _wrap_read(path, "file", lambda: _header(f, path))
    return attrs


def read_events(path) -> pd.DataFrame:
    """Validated events table of a scan file (no image data is read)."""
    with _open(path) as f:
        _wrap_read(path, "file", lambda: _header(f, path))
        return _events_frame(_wrap_read(path, "events", lambda: f["events"][()]), path)


def read_scan(path, events: np.ndarray | None = None) -> Scan:
    """Read and validate a whole scan (or the rows ``events``, sorted indices) into memory."""
    with _open(path) as f:
        attrs, images, _ = _wrap_read(path, "file", lambda: _header(f, path))
        rec = _wrap_read(path, "events", lambda: f["events"][()])
        table = _events_frame(rec, path)
        if events is None:
            data = _wrap_read(path, "images", lambda: images[()])
        else:
            idx = np.asarray(events)
            data = _wrap_read(path, "images", lambda: images[idx] if len(idx) else images[:0])
            table = table.iloc[idx].reset_index(drop=True)
    _check_range(data, attrs, path)
    return Scan(data, table, attrs)


def iter_scan_blocks(path, block_size: int = 4096) -> Iterator[tuple[np.ndarray, pd.DataFrame]]:
    """Yield (images, events) blocks of ``block_size`` events; the file is never read whole."""
    with _open(path) as f:
        attrs, images, _ = _wrap_read(path, "file", lambda: _header(f, path))
        n = images.shape[0]
        for start in range(0, n, block_size):
            stop = min(start + block_size, n)
            rec = _wrap_read(path, "events", lambda: f["events"][start:stop])
            data = _wrap_read(path, "images", lambda: images[start:stop])
            _check_range(data, attrs, path, offset=start)
            yield data, _events_frame(rec, path, offset=start)


def check_scan(path, block_size: int = 4096) -> tuple[dict, pd.DataFrame]:
    """Validate a whole scan file: attributes, events and every image block (dtype, shape,
    range), as the analysis reads it (``info`` and the check of given scans use this reading).
    Returns (attrs, events); raises :class:`DataFormatError`."""
    attrs, events = read_attrs(path), read_events(path)
    for _ in iter_scan_blocks(path, block_size):
        pass
    return attrs, events


def _check_range(data: np.ndarray, attrs: dict, path, offset: int = 0) -> None:
    if data.size and int(data.max()) > attrs["camera_max"]:
        flat = data.reshape(len(data), -1).max(axis=1)
        ev = int(np.argmax(flat > attrs["camera_max"]))
        raise DataFormatError(path, "images", f"pixel value {int(flat[ev])} above camera_max {attrs['camera_max']}",
                              event=offset + ev)


# ----------------------------------------------------------------------------------- datasets
def scan_path(dataset_dir, sample: str, scan: str) -> Path:
    """``<dataset_dir>/<sample>_<scan>.h5``."""
    return Path(dataset_dir) / f"{sample}_{scan}.h5"


def read_splits(dataset_dir) -> pd.DataFrame:
    """The dataset's ``splits.csv`` (file, event_id, split), validated."""
    path = Path(dataset_dir) / SPLITS_FILE
    if not path.exists():
        raise DataFormatError(path, "file", "no such file")
    df = pd.read_csv(path)
    for col in ("file", "event_id", "split"):
        if col not in df.columns:
            raise DataFormatError(path, col, "missing column")
    bad = ~df["split"].isin(SPLITS)
    if bad.any():
        raise DataFormatError(path, "split", f"unknown split {df['split'][bad].iloc[0]!r}", event=int(np.argmax(bad)))
    return df
