"""Convert a libDMRoot run and its best-focus grain list into a format_version 1 scan.

Inputs (research/physics.md c.1-c.5): the run file with raw frames (``dm_tracks_cl.dm.root``,
read by :mod:`emulsion_core.formats.rootio`) and the experiment's grain list (``yandex_bfcl.txt``): one
line per grain, ``HeaderID`` (view entry in ``Vdmr``), ``ViewID``, ``GrainID`` (index in the
view's ``gr``), the 8 best-focus cluster indices (index in the view's ``cl``, polarisations 0-7,
-1 where missing), optionally ``tr_flag`` and ``n_pol``. Fields are separated by commas and/or
spaces; 11 or 13 fields per line.

Crop window (this converter's convention; the library's versions differ, physics.md c.4). For
a grain of view entry h with best-focus clusters c_0 .. c_7, P the present polarisations
(c_p >= 0) and a the first of them (a = 0 unless c_0 is -1):

1. the camera pixel of c_a in its own frame f = ``Vdmr`` ``fr[c_a.ifr]`` (physics.md c.3, c.4):
   ``u = (cl.x + hd.x - f.x) / pixX + npixX / 2``, ``v = (cl.y + hd.y - f.y) / pixY + npixY / 2``
   (um, um per pixel), and ``u0 = floor(u)``, ``v0 = floor(v)`` (the library's integer cast);
2. for every p in P, the raw frame of ``Frames`` with ``ventr = h``, ``iz`` = the z-level of
   c_p's own frame, ``ipol = p`` and ``flags = 0`` (never the merged image, flags 1, nor the
   180-degree repeat of polarisation 0, flags 2);
3. from each of these frames the same camera window: columns ``u0 - 20 .. u0 + 19`` and rows
   ``v0 - 20 .. v0 + 19`` (40 x 40 pixels), so image-to-image shifts are preserved;
4. orientation: crop columns run along stage +x and crop rows along stage +y. libDMRoot has
   ``pixY < 0`` (camera rows run towards -y), so the window's camera rows are reversed: crop row
   0 is camera row ``v0 + 19`` (the authors' ``get_ims.C`` row order, highest row first);
   columns are reversed only if ``pixX < 0``. An angle measured in the crop from the column axis
   towards the row axis (:mod:`emulsion_core.measure.barshift`'s phi) is then the angle in the stage
   frame, the frame of the ``beam_phi_deg`` attribute.

This is the window libDMRoot's ``DMRImage::ExtractFragment(u0, v0, 20, 20)`` is meant to fill
(the library leaves its first row and column empty and ``get_ims.C`` drops them).

Missing polarisations (c_p = -1) are kept, as the experiment's notebooks did: the grain is
written with an all-zero image for each missing polarisation and its other images cut as
above, and its ``n_pol`` column counts at most the present polarisations, so the cleaning's
``missing_polarisation`` cut removes it ([P21] sec. 2; :mod:`emulsion_core.measure.cleaning`).
The zero image enters the unpolarised mean, so such a grain's brightness features are low.

A grain line that cannot give its crops is skipped, counted by reason and reported, never
written with blank images: view entry not in ``Vdmr``, view flag not 0, grain index not in the
view, every polarisation missing, a present cluster index not in the view, a cluster of another
polarisation or flag, a cluster frame not in the view, a present polarisation's raw frame
missing from ``Frames``, a window crossing the frame edge. A missing tree or leaf, an unreadable
RunHeader without the fallback options, or a frame buffer of the wrong size raise
:class:`~emulsion_core.formats.hdf5.DataFormatError` naming the file, entry and field.

Events table: ``event_id`` (0..N-1 in grain-list order), ``view`` (HeaderID), ``view_id``,
``area_id`` (``hd.aid``), ``grain_id``, ``grain_line`` (1-based line of the grain list),
``tr_flag`` (-999 when the list has none), ``x_um``, ``y_um`` (stage: ``hd.x + gr.x``,
``hd.y + gr.y``), ``z_um`` (``gr.z``: depth in the view frame), ``depth_um`` (imaging depth below
the face, located per view from the surface nanoparticles: :mod:`emulsion_core.measure.depth`), ``view_density`` (grains of the
view with flags 0, i.e. ``gr`` entries not from merged or extra images), ``crop_col0``,
``crop_row0`` (camera pixel of the window's first column and row) and the cluster features of
:func:`emulsion_core.measure.features.cluster_features` measured on the crops (the trees' cluster
values are per polarisation and on another scale), ``n_pol`` capped at the present count.
Views are streamed: the run is read a few views and frames at a time, so a multi-GB run never
sits in memory.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from emulsion_core.formats import rootio
from emulsion_core.measure import depth
from emulsion_core.measure.features import cluster_features
from emulsion_core.config.samples import ENERGY_KEV, POLARISATIONS_DEG, ROTATED_SCANS, SAMPLES, SCANS, SIGNAL_SAMPLES
from emulsion_core.formats.hdf5 import FORMAT_VERSION, DataFormatError, ScanWriter

CONVERTER_VERSION = "2"  # 2: writes depth_um (issue 17)
CROP_PX = 40
N_POL = 8
NO_TR_FLAG = -999
CAMERA_MAX = 255
VIEWS_PER_READ = 256
EVENTS_PER_BLOCK = 256
FRAMES_PER_READ = 16  # about 50 MB of 3-megapixel frames

SKIP_REASONS = (
    "view entry not in Vdmr",
    "view flag not 0",
    "grain index not in the view",
    "every polarisation missing (-1)",
    "cluster index not in the view",
    "cluster of another polarisation or flag",
    "cluster frame not in the view",
    "raw frame missing from Frames",
    "crop crosses the frame edge",
)


@dataclass
class ConvertResult:
    """What a conversion wrote and what it skipped.

    output : the scan file; n_events : events written; n_lines : grain lines read;
    skipped : {reason: count}; skipped_lines : DataFrame (line, header_id, grain_id, reason);
    geometry : the camera geometry used.
    """

    output: Path
    n_events: int
    n_lines: int
    skipped: dict
    skipped_lines: pd.DataFrame
    geometry: rootio.CameraGeometry
    attrs: dict = field(default_factory=dict)

    def summary(self) -> str:
        """Lines of text: events written, then skips by reason."""
        out = [f"{self.output}: {self.n_events} events written from {self.n_lines} grain lines"]
        if self.skipped:
            out.append(f"skipped {sum(self.skipped.values())} grain lines:")
            out += [f"  {n:6d}  {reason}" for reason, n in self.skipped.items()]
        return "\n".join(out)


# ----------------------------------------------------------------------------------- grain list
def read_grain_list(path) -> pd.DataFrame:
    """The best-focus grain list, one row per grain line.

    Accepts 11 fields (HeaderID, ViewID, GrainID, 8 cluster indices) or 13 (and tr_flag, n_pol),
    separated by commas and/or whitespace; blank lines and lines starting with ``#`` are
    ignored. Returns columns ``line`` (1-based), ``header_id``, ``view_id``, ``grain_id``,
    ``cl0`` .. ``cl7``, ``tr_flag`` (-999 when absent), ``n_pol`` (-1 when absent), all int64.
    DataFormatError naming the file and line for any other line.
    """
    path = Path(path)
    if not path.exists():
        raise DataFormatError(path, "file", "no such grain list")
    rows = []
    with open(path) as f:
        for n, text in enumerate(f, 1):
            s = text.strip()
            if not s or s.startswith("#"):
                continue
            tokens = [t for t in re.split(r"[,\s]+", s) if t]
            if len(tokens) not in (11, 13):
                raise DataFormatError(path, f"line {n}", f"{len(tokens)} fields in {s!r}; expected 11 (HeaderID, "
                                      "ViewID, GrainID, 8 cluster indices) or 13 (then tr_flag, n_pol)")
            try:
                values = [int(t) for t in tokens]
            except ValueError:
                raise DataFormatError(path, f"line {n}", f"non-integer field in {s!r}") from None
            if len(values) == 11:
                values += [NO_TR_FLAG, -1]
            rows.append([n] + values)
    if not rows:
        raise DataFormatError(path, "file", "no grain lines")
    cols = ["line", "header_id", "view_id", "grain_id"] + [f"cl{p}" for p in range(N_POL)] + ["tr_flag", "n_pol"]
    return pd.DataFrame(np.asarray(rows, dtype=np.int64), columns=cols)


# ----------------------------------------------------------------------------------- geometry
def camera_pixel(x_um, y_um, frame_x_um, frame_y_um, geometry: rootio.CameraGeometry):
    """Camera pixel (u = column, v = row), continuous, of a stage position in a frame.

    x_um, y_um : stage position (``cl.x + hd.x``, ``cl.y + hd.y``); frame_x_um, frame_y_um :
    the frame's stage position (``fr.x``, ``fr.y``). physics.md c.3.
    """
    u = (np.asarray(x_um, np.float64) - frame_x_um) / geometry.pix_x_um + geometry.npix_x / 2
    v = (np.asarray(y_um, np.float64) - frame_y_um) / geometry.pix_y_um + geometry.npix_y / 2
    return u, v


def window_origin(u, v) -> tuple[int, int]:
    """First camera column and row of the 40 x 40 window around pixel (u, v)."""
    return int(np.floor(u)) - CROP_PX // 2, int(np.floor(v)) - CROP_PX // 2


def cut(frame: np.ndarray, col0: int, row0: int, geometry: rootio.CameraGeometry) -> np.ndarray:
    """The (40, 40) crop of camera window [col0, col0+40) x [row0, row0+40), columns along
    stage +x and rows along stage +y (see the module docstring)."""
    crop = frame[row0:row0 + CROP_PX, col0:col0 + CROP_PX]
    if geometry.pix_y_um < 0:
        crop = crop[::-1]
    if geometry.pix_x_um < 0:
        crop = crop[:, ::-1]
    return crop


# ----------------------------------------------------------------------------------- planning
def _frame_index(frames, path, geometry) -> dict:
    """(ventr, iz, ipol) -> Frames entry of the flags-0 frame; frame sizes are checked."""
    meta = rootio.read_leaves(frames, "fr", ("ventr", "iz", "ipol", "flags", "cols", "rows"), path)
    bad = np.flatnonzero((meta["cols"] != geometry.npix_x) | (meta["rows"] != geometry.npix_y))
    if len(bad):
        e = int(bad[0])
        raise DataFormatError(path, f"{rootio.FRAMES}/fr.cols", f"entry {e}: frame of {meta['cols'][e]} x "
                              f"{meta['rows'][e]} pixels, the camera geometry ({geometry.source}) says "
                              f"{geometry.npix_x} x {geometry.npix_y}")
    index = {}
    for e in np.flatnonzero(meta["flags"] == 0).tolist():
        key = (int(meta["ventr"][e]), int(meta["iz"][e]), int(meta["ipol"][e]))
        if key in index:
            raise DataFormatError(path, f"{rootio.FRAMES}/fr", f"entries {index[key]} and {e} are both the flags-0 "
                                  f"frame of view entry {key[0]}, z-level {key[1]}, polarisation {key[2]}")
        index[key] = e
    return index


def _plan(grains: pd.DataFrame, vdmr, frame_index: dict, geometry, path):
    """Check every grain line against the trees; the crops to cut and the skips.

    Returns (events DataFrame without features, (N, 8) Frames entries, skips DataFrame).
    """
    n_views = vdmr.num_entries
    kept, entries, skips = [], [], []
    g = grains.to_numpy()
    cols = {c: i for i, c in enumerate(grains.columns)}
    in_tree = (grains["header_id"] >= 0) & (grains["header_id"] < n_views)
    for row in g[~in_tree.to_numpy()]:
        skips.append((row[cols["line"]], row[cols["header_id"]], row[cols["grain_id"]], SKIP_REASONS[0]))
    heads = np.unique(grains.loc[in_tree, "header_id"].to_numpy())
    for bucket in np.unique(heads // VIEWS_PER_READ):
        sel = heads[heads // VIEWS_PER_READ == bucket]
        start, stop = int(sel[0]), int(sel[-1]) + 1
        hd = rootio.read_leaves(vdmr, "hd", ("x", "y", "flag", "aid"), path, start, stop)
        cl = rootio.read_leaves(vdmr, "cl", ("x", "y", "ifr", "ipol", "flags"), path, start, stop)
        fr = rootio.read_leaves(vdmr, "fr", ("iz", "x", "y"), path, start, stop)
        gr = rootio.read_leaves(vdmr, "gr", ("x", "y", "z", "flags"), path, start, stop)
        lines = g[np.isin(g[:, cols["header_id"]], sel)]
        for row in lines:
            h = int(row[cols["header_id"]])
            k = h - start
            view = {"hd": {m: a[k] for m, a in hd.items()}, "cl": {m: a[k] for m, a in cl.items()},
                    "fr": {m: a[k] for m, a in fr.items()}, "gr": {m: a[k] for m, a in gr.items()}}
            result = _check_line(row, cols, h, view, frame_index, geometry)
            if isinstance(result, str):
                skips.append((row[cols["line"]], h, row[cols["grain_id"]], result))
            else:
                kept.append(result[0])
                entries.append(result[1])
    skips = pd.DataFrame(skips, columns=["line", "header_id", "grain_id", "reason"])
    events = pd.DataFrame(kept)
    if len(events):
        order = np.argsort(events["grain_line"].to_numpy(), kind="stable")
        events = events.iloc[order].reset_index(drop=True)
        entries = np.asarray(entries, dtype=np.int64)[order]
    return events, np.asarray(entries, dtype=np.int64).reshape(-1, N_POL), skips.sort_values("line", kind="stable")


def _check_line(row, cols, h, view, frame_index, geometry):
    """One grain line: (event record, 8 Frames entries, -1 where missing) or the reason to skip it."""
    hd, cl, fr, gr = view["hd"], view["cl"], view["fr"], view["gr"]
    if int(hd["flag"]) != 0:
        return SKIP_REASONS[1]
    igr = int(row[cols["grain_id"]])
    if not 0 <= igr < len(gr["x"]):
        return SKIP_REASONS[2]
    clusters = [int(row[cols[f"cl{p}"]]) for p in range(N_POL)]
    present = [p for p, c in enumerate(clusters) if c >= 0]
    if not present:
        return SKIP_REASONS[3]
    entries = _frame_entries(clusters, present, h, cl, fr, frame_index)
    if isinstance(entries, str):
        return entries
    c0, f0 = clusters[present[0]], int(cl["ifr"][clusters[present[0]]])  # anchor: first present (c.4)
    u, v = camera_pixel(float(cl["x"][c0]) + float(hd["x"]), float(cl["y"][c0]) + float(hd["y"]),
                        float(fr["x"][f0]), float(fr["y"][f0]), geometry)
    col0, row0 = window_origin(u, v)
    if col0 < 0 or row0 < 0 or col0 + CROP_PX > geometry.npix_x or row0 + CROP_PX > geometry.npix_y:
        return SKIP_REASONS[8]
    record = {
        "view": h, "view_id": int(row[cols["view_id"]]), "area_id": int(hd["aid"]), "grain_id": igr,
        "grain_line": int(row[cols["line"]]), "tr_flag": int(row[cols["tr_flag"]]),
        "x_um": float(hd["x"]) + float(gr["x"][igr]), "y_um": float(hd["y"]) + float(gr["y"][igr]),
        "z_um": float(gr["z"][igr]), "view_density": int(np.count_nonzero(np.asarray(gr["flags"]) == 0)),
        "crop_col0": col0, "crop_row0": row0,
    }
    return record, entries


def _frame_entries(clusters, present, h, cl, fr, frame_index):
    """Frames entry of each polarisation's raw frame (-1 where missing), or the reason to skip."""
    if max(clusters) >= len(cl["x"]):
        return SKIP_REASONS[4]
    if any(int(cl["ipol"][clusters[p]]) != p or int(cl["flags"][clusters[p]]) != 0 for p in present):
        return SKIP_REASONS[5]
    ifr = {p: int(cl["ifr"][clusters[p]]) for p in present}
    if any(not 0 <= i < len(fr["iz"]) for i in ifr.values()):
        return SKIP_REASONS[6]
    entries = [frame_index.get((h, int(fr["iz"][ifr[p]]), p)) if p in ifr else -1 for p in range(N_POL)]
    if any(e is None for e in entries):
        return SKIP_REASONS[7]
    return entries


# ----------------------------------------------------------------------------------- attributes
def scan_attributes(sample: str, scan: str, geometry: rootio.CameraGeometry, source: Path, grains: Path,
                    rotation_deg: float | None = None, area: str | None = None,
                    beam_phi_deg: float | None = None, energy_kev: float | None = None) -> dict:
    """format_version 1 attributes of a converted scan, with provenance.

    Defaults: ``rotation_deg`` from the scan name (rot45 -> 45, test -> 0), ``area`` "test" for
    the test scan and "train" otherwise (as the simulator), ``beam_phi_deg`` the rotation
    folded into (-90, 90] (beam along 0 in the unrotated emulsion, [P21] 2.1), ``energy_keV``
    from the sample (0 for fog and gamma).
    """
    if sample not in SAMPLES:
        raise ValueError(f"unknown sample {sample!r}, expected one of {SAMPLES}")
    if scan not in SCANS:
        raise ValueError(f"unknown scan {scan!r}, expected one of {SCANS}")
    rot = float(ROTATED_SCANS.get(scan, 0.0) if rotation_deg is None else rotation_deg)
    beam = rot if beam_phi_deg is None else float(beam_phi_deg)
    return {
        "format_version": FORMAT_VERSION, "sample": sample, "is_signal": sample in SIGNAL_SAMPLES,
        "energy_keV": float(ENERGY_KEV[sample] if energy_kev is None else energy_kev), "scan": scan,
        "rotation_deg": rot, "area": area if area is not None else ("test" if scan == "test" else "train"),
        "beam_phi_deg": float(90.0 - np.mod(90.0 - beam, 180.0)), "pixel_size_nm": geometry.pixel_size_nm,
        "camera_max": CAMERA_MAX, "polarisation_deg": list(POLARISATIONS_DEG),
        "source_file": Path(source).name, "source_grains": Path(grains).name,
        "converter_version": CONVERTER_VERSION, "camera_geometry": geometry.source,
    }


# ----------------------------------------------------------------------------------- conversion
def convert_run(root_path, grains_path, output, sample: str, scan: str, *, rotation_deg: float | None = None,
                area: str | None = None, beam_phi_deg: float | None = None, energy_kev: float | None = None,
                pixel_size_nm: float | None = None, frame_width: int | None = None,
                frame_height: int | None = None, progress: bool = True, log=print) -> ConvertResult:
    """Convert one libDMRoot run into the scan file ``output`` (never overwritten).

    root_path : run file with raw frames; grains_path : best-focus grain list; sample, scan and
    the keyword values: file attributes (see :func:`scan_attributes`); pixel_size_nm (nm),
    frame_width, frame_height (pixels): camera geometry when the RunHeader cannot be read.
    Skips are counted and passed to ``log`` at the end; returns a :class:`ConvertResult`.
    """
    root_path, grains_path, output = Path(root_path), Path(grains_path), Path(output)
    if output.exists():
        raise FileExistsError(f"{output} exists; convert never overwrites a file: remove it or choose another output")
    grains = read_grain_list(grains_path)
    run = rootio.open_run(root_path)
    vdmr = rootio.get_tree(run, rootio.VDMR, root_path)
    frames = rootio.get_tree(run, rootio.FRAMES, root_path)
    geometry = rootio.camera_geometry(run, root_path, pixel_size_nm, frame_width, frame_height)
    attrs = scan_attributes(sample, scan, geometry, root_path, grains_path, rotation_deg, area, beam_phi_deg,
                            energy_kev)
    if geometry.source != rootio.RUN_HEADER:
        log(f"{root_path.name}: camera geometry from the command line: {geometry.source}")
    index = _frame_index(frames, root_path, geometry)
    events, entries, skips = _plan(grains, vdmr, index, geometry, root_path)
    counts = {r: int(n) for r, n in skips["reason"].value_counts().reindex(SKIP_REASONS).dropna().items()}
    attrs["skipped"] = counts
    if not len(events):
        raise DataFormatError(grains_path, "grains", f"no grain line could be converted (skipped: {counts})")
    events.insert(0, "event_id", np.arange(len(events), dtype=np.int64))
    events["depth_um"] = depth.imaging_depth_from_z(events)  # below the face located per view
    _write(output, events, entries, frames, root_path, geometry, attrs, progress)
    result = ConvertResult(output, len(events), len(grains), counts, skips.reset_index(drop=True), geometry, attrs)
    log(result.summary())
    return result


def _write(output, events, entries, frames, path, geometry, attrs, progress) -> None:
    """Cut the crops block by block and stream them into the scan file."""
    n = len(events)
    meta = rootio.read_leaves(frames, "fr", ("cols", "rows"), path)
    types = {"view": np.int32, "view_id": np.int32, "area_id": np.int32, "grain_id": np.int32,
             "grain_line": np.int32, "tr_flag": np.int32, "x_um": np.float32, "y_um": np.float32,
             "z_um": np.float32, "depth_um": np.float32, "view_density": np.int32, "crop_col0": np.int32, "crop_row0": np.int32}
    events = events.astype(types)
    with ScanWriter(output, n, (N_POL, CROP_PX, CROP_PX), np.uint8, attrs) as writer, \
            tqdm(total=n, unit="event", desc=f"convert {path.name}", **({} if progress else {"disable": True})) as bar:
        for a in range(0, n, EVENTS_PER_BLOCK):
            b = min(a + EVENTS_PER_BLOCK, n)
            need = entries[a:b]  # -1: missing polarisation, left all zeros
            uniq = np.unique(need[need >= 0])
            inv = np.where(need >= 0, np.searchsorted(uniq, need), -1)
            images = np.zeros((b - a, N_POL, CROP_PX, CROP_PX), dtype=np.uint8)
            col0 = events["crop_col0"].to_numpy()[a:b]
            row0 = events["crop_row0"].to_numpy()[a:b]
            frame_iter = rootio.frame_images(frames, uniq, meta["cols"][uniq], meta["rows"][uniq], path,
                                             max_frames=FRAMES_PER_READ)
            for k, (_, frame) in enumerate(frame_iter):
                for i, p in zip(*np.nonzero(inv == k)):
                    images[i, p] = cut(frame, int(col0[i]), int(row0[i]), geometry)
            feats = cluster_features(images)
            feats["n_pol"] = np.minimum(feats["n_pol"], (need >= 0).sum(axis=1)).astype(np.int32)
            table = pd.concat([events.iloc[a:b].reset_index(drop=True), feats], axis=1)
            writer.append(images, table)
            bar.update(b - a)
