"""Atomic writes: a file is written to a temporary sibling (``<name>.tmp<pid>``) and renamed over
its final name only once complete, so a reader, a second process or an interrupted run never sees
half a file. The one place this pattern is coded; :mod:`emulsion_core.formats.ownership`
recognises the temporary names as leftovers of a run."""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path


def temporary(path, keep_suffix: bool = False) -> Path:
    """The temporary sibling this process writes ``path`` through: ``<name>.tmp<pid>``, or with
    ``keep_suffix`` ``<stem>.tmp<pid><suffix>`` for writers that insist on their suffix (Keras'
    ``.keras``, NumPy's ``.npz``, the ONNX exporter)."""
    path = Path(path)
    if keep_suffix:
        return path.with_name(f"{path.stem}.tmp{os.getpid()}{path.suffix}")
    return path.with_name(f"{path.name}.tmp{os.getpid()}")


@contextmanager
def replacing(path, keep_suffix: bool = False):
    """Yield a temporary path to write (:func:`temporary`); on success it replaces ``path``, on
    error it is removed."""
    path = Path(path)
    tmp = temporary(path, keep_suffix)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically; returns ``path``."""
    with replacing(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_json(path, value, **dumps) -> Path:
    """Write ``value`` as JSON (``json.dumps(value, **dumps)``) to ``path`` atomically."""
    return write_text(path, json.dumps(value, **dumps))


def write_csv(frame, path, **to_csv) -> Path:
    """Write a pandas frame with ``frame.to_csv(path, **to_csv)`` atomically."""
    with replacing(path) as tmp:
        frame.to_csv(tmp, **to_csv)
    return Path(path)
