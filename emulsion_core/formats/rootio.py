"""libDMRoot run files (research/physics.md c.1-c.2) read with uproot, leaf by leaf.

libDMRoot (VGentile87/DMDS) writes one ROOT file per scan run:

- TTree ``Vdmr``, one entry per view: the view header ``hd`` (DMRViewHeader, split) and the
  TClonesArrays ``cl`` (2D clusters), ``gr`` (3D grains), ``mt``, ``im`` and ``fr`` (frame
  metadata); cluster positions are in um in the view frame (relative to ``hd.x``, ``hd.y``);
- TTree ``Frames``, one entry per raw camera frame (DMRFrameRaw): ``ventr`` (its view entry in
  ``Vdmr``), ``iz`` (z-level), ``ipol`` (polariser index), ``flags`` (0 a polarisation frame,
  1 merged, 2 the 180-degree repeat of polarisation 0), ``cols``, ``rows`` and the 8-bit
  image buffer ``eImg`` (TArrayC, row-major, ``rows`` x ``cols``);
- the object ``RunHeader`` (DMRRunHeader): ``npixX``, ``npixY`` (frame columns and rows) and
  ``pixX``, ``pixY`` (um per pixel; ``pixY < 0``: camera rows run towards -y).

uproot 5.7 cannot deserialise a whole view header (``KeyError 'TObject'``), so every member is
read as its own leaf, found by member name wherever ROOT nested it: ``hd/x``, ``cl/cl.x``,
``fr/DMRFrame/iz``, ``fr/DMRFrame/DMRImage/eImg`` (inherited members sit under their base
class). A missing tree or member raises :class:`~emulsion_core.formats.hdf5.DataFormatError` naming the
file and the leaf. The 2017 library wrote a ``RunHeader`` without type description, which
uproot cannot read: :func:`camera_geometry` then takes the frame size and pixel size from the
caller, and says which options to pass when they are missing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from emulsion_core.formats.hdf5 import DataFormatError

VDMR, FRAMES, RUN_HEADER = "Vdmr", "Frames", "RunHeader"
GEOMETRY_OPTIONS = "--pixel-size-nm, --frame-width and --frame-height"


@dataclass(frozen=True)
class CameraGeometry:
    """Camera frame size and pixel pitch of a run (DMRRunHeader ``npixX/Y``, ``pixX/Y``).

    npix_x, npix_y : int, frame columns and rows; pix_x_um, pix_y_um : float, um per pixel,
    signed: a negative value means the camera axis runs against the stage axis (libDMRoot:
    ``pixY < 0``). ``source`` says where the values came from.
    """

    npix_x: int
    npix_y: int
    pix_x_um: float
    pix_y_um: float
    source: str

    @property
    def pixel_size_nm(self) -> float:
        """Pixel pitch along x, nm (the format's ``pixel_size_nm``), rounded to 1e-4 nm (the
        RunHeader stores um in float32)."""
        return round(abs(self.pix_x_um) * 1000.0, 4)


def open_run(path):
    """Open a libDMRoot file for reading; DataFormatError if it is not a readable ROOT file."""
    import uproot

    path = Path(path)
    if not path.exists():
        raise DataFormatError(path, "file", "no such file")
    try:
        return uproot.open(path)
    except Exception as err:  # uproot raises ValueError/OSError/... for non-ROOT input
        raise DataFormatError(path, "file", f"not a readable ROOT file: {err}") from None


def get_tree(run, name: str, path):
    """The TTree ``name`` of an open run, or DataFormatError naming the trees present."""
    try:
        obj = run[name]
    except KeyError:
        have = sorted({k.split(";")[0] for k in run.keys(recursive=False)})
        raise DataFormatError(path, name, f"no tree '{name}' in the file (it holds {have}); "
                              "is this a libDMRoot run file with images (dm_tracks_cl.dm.root)?") from None
    if not hasattr(obj, "num_entries"):
        raise DataFormatError(path, name, f"'{name}' is a {type(obj).__name__}, not a TTree")
    return obj


def leaf_key(tree, branch: str, member: str, path) -> str:
    """Full key of ``member`` of the object branch ``branch`` in ``tree``, at any nesting.

    Matches ``branch/member``, ``branch/branch.member`` (split TClonesArray) and members of base
    classes (``branch/Base/.../member``). DataFormatError when absent or ambiguous.
    """
    prefix = branch + "/"
    hits = [k for k in tree.keys(recursive=True) if k.startswith(prefix) and _last(k, branch) == member]
    if len(hits) != 1:
        problem = "missing member" if not hits else f"ambiguous member (leaves {hits})"
        raise DataFormatError(path, f"{tree.name}/{branch}.{member}", problem)
    return hits[0]


def _last(key: str, branch: str) -> str:
    name = key.rsplit("/", 1)[-1]
    return name[len(branch) + 1:] if name.startswith(branch + ".") else name


def read_leaves(tree, branch: str, members, path, entry_start: int | None = None,
                entry_stop: int | None = None) -> dict:
    """Members of ``branch`` for entries [entry_start, entry_stop) as NumPy arrays.

    Plain members give (n,) arrays; members of a TClonesArray give (n,) object arrays of
    per-entry arrays (jagged). DataFormatError naming the leaf when one is missing or unreadable.
    """
    out = {}
    for member in members:
        key = leaf_key(tree, branch, member, path)
        try:
            out[member] = tree[key].array(library="np", entry_start=entry_start, entry_stop=entry_stop)
        except Exception as err:  # corrupt baskets, unknown interpretation
            raise DataFormatError(path, f"{tree.name}/{key}", f"cannot read entries {entry_start}-{entry_stop}: "
                                  f"{type(err).__name__}: {err}") from None
    return out


def frame_images(tree, entries, cols, rows, path, max_frames: int = 16,
                 max_gap: int = 4) -> Iterator[tuple[int, np.ndarray]]:
    """Raw camera frames of the ``Frames`` tree, (rows, cols) uint8, for the sorted ``entries``.

    Neighbouring entries are read together (at most ``max_frames`` per read, gaps of at most
    ``max_gap`` unused entries), so memory holds a few frames at a time. ``cols``, ``rows``:
    per-entry frame size from the tree, indexed like ``entries``. The TArrayC buffer arrives as
    signed bytes and is viewed as uint8 camera counts.
    """
    key = leaf_key(tree, "fr", "eImg", path)
    entries = np.asarray(entries, dtype=np.int64)
    size = dict(zip(entries.tolist(), zip(np.asarray(cols).tolist(), np.asarray(rows).tolist())))
    for run in _runs(entries, max_frames, max_gap):
        start, stop = int(run[0]), int(run[-1]) + 1
        try:
            buffers = tree[key].array(library="np", entry_start=start, entry_stop=stop)
        except Exception as err:
            raise DataFormatError(path, f"{FRAMES}/{key}", f"cannot read entries {start}-{stop}: "
                                  f"{type(err).__name__}: {err}") from None
        for entry in run.tolist():
            c, r = size[entry]
            buf = buffers[entry - start]
            data = np.asarray(buf if buf is not None else [], dtype=np.int8).view(np.uint8)
            if data.size != c * r or c <= 0 or r <= 0:
                raise DataFormatError(path, f"{FRAMES}/{key}", f"entry {entry}: image buffer of {data.size} bytes "
                                      f"for a {c} x {r} frame (cols x rows)")
            yield entry, data.reshape(r, c)


def _runs(entries: np.ndarray, max_frames: int, max_gap: int) -> list[np.ndarray]:
    """Split sorted entries into groups read together."""
    groups, current = [], []
    for e in entries.tolist():
        if current and (e - current[-1] > max_gap + 1 or e - current[0] >= max_frames):
            groups.append(np.asarray(current))
            current = []
        current.append(e)
    if current:
        groups.append(np.asarray(current))
    return groups


def camera_geometry(run, path, pixel_size_nm: float | None = None, frame_width: int | None = None,
                    frame_height: int | None = None) -> CameraGeometry:
    """Frame size and pixel pitch from ``RunHeader``, or from the caller where it is unreadable.

    Values given by the caller must agree with a readable RunHeader (a disagreement raises:
    one of them is wrong and the crops would be mislabelled). Without a readable RunHeader the
    three values are required; the axes are then taken as libDMRoot's (``pixX > 0``,
    ``pixY < 0``, physics.md a.1, both library versions).
    """
    header, why = _run_header(run)
    given = (pixel_size_nm, frame_width, frame_height)
    if header is None:
        if any(v is None for v in given):
            raise DataFormatError(path, RUN_HEADER, f"{why}; files of the 2017 libDMRoot carry a RunHeader "
                                  f"without type description. Pass {GEOMETRY_OPTIONS} (pixel pitch in nm, "
                                  "e.g. 27.52 for the current library or 27.349 for the 2017 one, and the "
                                  "camera frame's columns and rows)")
        if pixel_size_nm <= 0 or frame_width <= 0 or frame_height <= 0:
            raise DataFormatError(path, RUN_HEADER, f"{GEOMETRY_OPTIONS} must be positive, got {given}")
        return CameraGeometry(int(frame_width), int(frame_height), pixel_size_nm / 1000.0,
                              -pixel_size_nm / 1000.0, f"command line ({why})")
    geo = CameraGeometry(int(header["npixX"]), int(header["npixY"]), float(header["pixX"]),
                         float(header["pixY"]), RUN_HEADER)
    if geo.npix_x <= 0 or geo.npix_y <= 0 or geo.pix_x_um == 0 or geo.pix_y_um == 0:
        raise DataFormatError(path, RUN_HEADER, f"unusable camera geometry npixX={geo.npix_x} npixY={geo.npix_y} "
                              f"pixX={geo.pix_x_um} pixY={geo.pix_y_um}")
    checks = [("--pixel-size-nm", pixel_size_nm, geo.pixel_size_nm, 0.01),
              ("--frame-width", frame_width, geo.npix_x, 0), ("--frame-height", frame_height, geo.npix_y, 0)]
    for option, value, stored, tol in checks:
        if value is not None and abs(value - stored) > tol:
            raise DataFormatError(path, RUN_HEADER, f"{option} {value} disagrees with the file's RunHeader "
                                  f"({stored:g}); leave the option out to use the file's value")
    return geo


def _run_header(run) -> tuple[dict | None, str]:
    """The RunHeader's camera members, or None and the reason it cannot be read."""
    try:
        obj = run[RUN_HEADER]
    except KeyError:
        return None, "the file has no RunHeader"
    except Exception as err:  # no streamer for the class (2017 library), corrupt record
        return None, f"uproot cannot read the RunHeader ({type(err).__name__}: {err})"
    try:
        return {k: obj.member(k) for k in ("npixX", "npixY", "pixX", "pixY")}, ""
    except Exception as err:  # an unknown class without members
        return None, f"uproot cannot read the RunHeader ({type(err).__name__}: {err})"
