"""One writer per artefact: a lock file beside it (``filelock``), so that several processes (Dask
workers, a physicist's two notebooks) sharing a data or results folder never write the same
artefact at once. A second process waits for the first and then finds the artefact made (and
reuses it) instead of crashing or removing the first one's temporary files as stale.

The lock file is ``.<name>.lock`` beside the artefact (a dotfile: the dataset folder's ownership
check skips it). ``filelock`` releases the lock when its holder dies, so a killed run never leaves
a folder locked.
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from pathlib import Path


def lock_path(artefact) -> Path:
    """The lock file guarding ``artefact`` (a file or a folder)."""
    artefact = Path(artefact)
    return artefact.parent / f".{artefact.name}.lock"


@contextmanager
def exclusive(artefact, what: str | None = None, log=None):
    """Hold the lock of ``artefact`` for the block; when another process holds it, say so once
    (``log``, default stderr) and wait for it."""
    from filelock import FileLock, Timeout
    path = lock_path(artefact)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(path))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        (log or (lambda m: print(m, file=sys.stderr, flush=True)))(
            f"waiting for another process writing {what or artefact} (lock {path})")
        lock.acquire()
    try:
        yield
    finally:
        lock.release()
