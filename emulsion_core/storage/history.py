"""Resumable call histories (calibration, hyper-parameter search): a JSON list rewritten
atomically after every call, so a killed job restarts from the last completed call."""

from __future__ import annotations

import json
from pathlib import Path

from emulsion_core.storage import atomic


def load(path) -> list:
    """The saved rows, or an empty list when there is no file (or no path)."""
    if path is None:
        return []
    path = Path(path)
    return json.loads(path.read_text()) if path.exists() else []


def save(path, rows: list) -> None:
    """Write ``rows`` to ``path`` through a temporary file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_json(path, rows, indent=1)
