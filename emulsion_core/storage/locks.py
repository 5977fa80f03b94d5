"""One writer per artefact: a lock file (``filelock``), so that several processes (Dask
workers, a physicist's two notebooks) sharing a data or results folder never write the same
artefact at once. A second process waits for the first and then finds the artefact made (and
reuses it) instead of crashing or removing the first one's temporary files as stale.

The lock files live under the output root's ``.locks/`` (:func:`lock_path`). ``filelock``
releases the lock when its holder dies, so a killed run never leaves a folder locked.
"""

from __future__ import annotations

import hashlib
import sys
from contextlib import contextmanager
from pathlib import Path


def lock_path(artefact) -> Path:
    """The lock file guarding ``artefact``: under the output root's ``.locks/`` (shared by every process
    that shares the root, as a cluster's workers must), named by the artefact's absolute path, so no
    file ever appears in a data folder, not even one of the user's scans the simulator refuses to touch."""
    from emulsion_core.storage import paths
    artefact = Path(artefact).resolve()
    key = hashlib.sha256(str(artefact).encode()).hexdigest()[:16]
    return paths.root() / ".locks" / f"{artefact.name}-{key}.lock"


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
