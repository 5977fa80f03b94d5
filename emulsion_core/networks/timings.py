"""Timings measured once per machine and kept in its cache: what the XLA choice (``xla_choice``) and
the scoring-engine choice (``engine_choice``) decide from. One JSON file per choice beside the oneDNN
self-test's (``paths.machine_cache``, ``EMULSION_DL_CACHE`` moves it), keyed by the machine
(``onednn_guard.machine_key``: CPU model and flags, library versions) and what was timed."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from emulsion_core.storage import atomic


def cache_file(name: str, cache_dir=None) -> Path:
    """The cache file ``<name>.json`` of this machine's timings."""
    from emulsion_core.networks.onednn_guard import cache_file as guard_cache
    return guard_cache(cache_dir).with_name(f"{name}.json")


def key(**what) -> str:
    """A short key for ``what`` was timed (JSON-able) on this machine."""
    from emulsion_core.networks.onednn_guard import machine_key
    return hashlib.sha256(json.dumps({"machine": machine_key(), **what}, sort_keys=True, default=str)
                          .encode()).hexdigest()[:16]


def _read(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def recall(path: Path, record_key: str) -> dict | None:
    """The timings kept under ``record_key`` in ``path``, or None."""
    return _read(path).get(record_key)


def remember(path: Path, record_key: str, record: dict) -> None:
    """Keep ``record`` under ``record_key`` in ``path`` (the other records kept; written atomically)."""
    records = _read(path)
    records[record_key] = record
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_json(path, records, indent=1)
