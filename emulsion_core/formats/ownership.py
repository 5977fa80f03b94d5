"""Which files of a dataset folder the simulator wrote, so that it never touches any other.

The simulator keeps a manifest, ``simulation_manifest.json``, in every dataset folder it writes
into. Before it writes anything it lists there the files it is about to write; after each file
it records the file's size, seed and provenance key (:mod:`emulsion_core.storage.provenance`), and the
SHA-256 of ``splits.csv``. A file of the folder is **its own** when both agree:

- a scan file: listed in the manifest, carrying the simulator's attributes
  (``simulator_version``, ``simulator_config``, ``seed``) with the listed seed and, once
  recorded, the recorded size in bytes;
- ``splits.csv``: listed, with the recorded SHA-256 (a user's edit makes it foreign);
- the manifest itself, and the temporary files of an interrupted write of a listed file
  (``<name>.tmp...``).

Every other entry (real scans written by a converter or by hand, scans simulated before
manifests existed or copied from elsewhere, an edited ``splits.csv``, any other file or
folder) is **foreign**; hidden entries (names starting with ``.``) are ignored, since the
simulator never writes such names. The simulator writes only into a folder that is missing,
empty or holds nothing foreign (:func:`claim`); otherwise it stops with
:class:`ForeignFilesError` naming the foreign files. A folder holding only foreign files is
*given data*: the analysis reads it as it is (:func:`emulsion_core.data.dataset.require`).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

from emulsion_core.formats import hdf5
from emulsion_core.storage import atomic

MANIFEST = "simulation_manifest.json"
SPLITS = hdf5.SPLITS_FILE
SIMULATOR_ATTRS = hdf5.SIMULATION_ATTRS


class ForeignFilesError(RuntimeError):
    """The simulator was asked to write into a folder holding files it did not write."""

    def __init__(self, folder, names: list, note: str = ""):
        self.folder, self.names = Path(folder), list(names)
        shown = ", ".join(self.names[:10]) + (f" and {len(self.names) - 10} more" if len(self.names) > 10 else "")
        super().__init__(
            f"{self.folder} holds {len(self.names)} file(s) the simulator did not write: {shown}. "
            f"The simulator writes only into an empty folder or one holding its own files (listed in "
            f"{MANIFEST}), so it has written nothing and left them untouched.{note}")


@dataclass(frozen=True)
class FolderContents:
    """Entries of a dataset folder by who wrote them (names, sorted)."""

    folder: Path
    own: tuple = ()
    foreign: tuple = ()
    leftovers: tuple = ()  # own temporary files of an interrupted write
    manifest: dict | None = None

    @property
    def given(self) -> bool:
        """Data the simulator did not write and must only read: foreign files and none of its own."""
        return bool(self.foreign) and not self.own

    @property
    def unlisted_simulations(self) -> tuple:
        """Foreign scan files that carry the simulator's attributes (simulated before manifests
        existed, or copied here): read as given data, never rewritten."""
        return tuple(n for n in self.scans if _has_simulator_attrs(self.folder / n))

    @property
    def scans(self) -> tuple:
        """The scan files (``*.h5``) among the foreign entries."""
        return tuple(n for n in self.foreign if n.endswith(".h5"))


def sha256_file(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_manifest(folder) -> dict | None:
    """The folder's manifest, or None when it has none (or it is unreadable)."""
    try:
        raw = json.loads((Path(folder) / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return raw if isinstance(raw, dict) and isinstance(raw.get("files"), dict) else None


def _write_manifest(folder: Path, manifest: dict) -> None:
    atomic.write_json(folder / MANIFEST, manifest, indent=1, sort_keys=True)


def _scan_is_own(path: Path, entry: dict) -> bool:
    """A listed scan file: planned ones need the simulator's attributes (written, not yet recorded),
    recorded ones also the recorded seed and size."""
    try:
        attrs = hdf5.read_attrs(path)
    except hdf5.DataFormatError:
        return False
    if any(k not in attrs for k in SIMULATOR_ATTRS):
        return False
    if entry.get("status") != "written":
        return True
    return attrs["seed"] == entry.get("seed") and path.stat().st_size == entry.get("bytes")


def inspect(folder) -> FolderContents:
    """Sort the entries of ``folder`` into the simulator's own, foreign and leftovers."""
    folder = Path(folder)
    if not folder.is_dir():
        return FolderContents(folder)
    manifest = read_manifest(folder)
    listed = manifest["files"] if manifest else {}
    own, foreign, leftovers = [], [], []
    for entry in sorted(folder.iterdir()):
        name = entry.name
        if name.startswith("."):
            continue
        info = listed.get(name)
        tmp = re.fullmatch(r"(.+)\.tmp\d*", name)
        if name == MANIFEST and manifest is not None:
            own.append(name)
        elif tmp and entry.is_file() and (tmp.group(1) in listed or tmp.group(1) == MANIFEST):
            leftovers.append(name)
        elif info is None or not entry.is_file():
            foreign.append(name)
        elif name == SPLITS:
            (own if info.get("sha256") == sha256_file(entry) else foreign).append(name)
        elif _scan_is_own(entry, info):
            own.append(name)
        else:
            foreign.append(name)
    return FolderContents(folder, tuple(own), tuple(foreign), tuple(leftovers), manifest)


def claim(folder, planned: list) -> "Manifest":
    """Make ``folder`` the simulator's to write ``planned`` (file names) into, or raise.

    Raises :class:`ForeignFilesError` naming every foreign entry. Otherwise lists the planned
    files in the manifest (before anything is written), removes the leftovers of interrupted
    writes and returns the :class:`Manifest` to record each file in once written.
    """
    contents = inspect(folder)
    if contents.foreign:
        if contents.unlisted_simulations and not contents.manifest:
            note = (" Scans that carry the simulator's attributes but are listed in no manifest were simulated "
                    "before manifests existed or copied here: delete the folder to simulate it afresh.")
        elif contents.given:
            note = (" To analyse these files, run the notebooks or `python -m emulsion_core prepare` on the "
                    "profile; to simulate, give the profile another `dataset`.")
        else:
            note = (" Move them out of the folder, or give the profile another `dataset`; if the folder is "
                    f"now meant for your own scans, remove the simulator's files and {MANIFEST}.")
        raise ForeignFilesError(folder, list(contents.foreign), note)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name in contents.leftovers:
        (folder / name).unlink(missing_ok=True)
    manifest = contents.manifest or {"writer": "emulsion_core.simulator.simulate", "files": {}}
    for name in list(planned) + [SPLITS]:
        manifest["files"].setdefault(name, {"status": "planned"})
    _write_manifest(folder, manifest)
    return Manifest(folder, manifest)


def _has_simulator_attrs(path: Path) -> bool:
    try:
        attrs = hdf5.read_attrs(path)
    except hdf5.DataFormatError:
        return False
    return all(k in attrs for k in SIMULATOR_ATTRS)


class Manifest:
    """The simulator's record of a folder it owns (returned by :func:`claim`)."""

    def __init__(self, folder: Path, data: dict):
        self.folder, self.data = Path(folder), data

    def key_of(self, name: str) -> dict | None:
        """The provenance key recorded for the scan ``name`` (None when not written yet)."""
        entry = self.data["files"].get(name, {})
        return entry.get("provenance") if entry.get("status") == "written" else None

    def record_scan(self, name: str, seed: int, key: dict) -> None:
        """Record the scan file ``name`` as written with ``seed`` and provenance ``key``."""
        path = self.folder / name
        self.data["files"][name] = {"status": "written", "bytes": path.stat().st_size, "seed": int(seed),
                                    "provenance": key}
        _write_manifest(self.folder, self.data)

    def forget(self, name: str) -> None:
        """Mark ``name`` as about to be rewritten (its record no longer holds)."""
        self.data["files"][name] = {"status": "planned"}
        _write_manifest(self.folder, self.data)

    def record_splits(self) -> None:
        """Record the current ``splits.csv`` (its SHA-256)."""
        self.data["files"][SPLITS] = {"status": "written", "sha256": sha256_file(self.folder / SPLITS)}
        _write_manifest(self.folder, self.data)
