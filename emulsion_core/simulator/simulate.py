"""Simulated scans of polarised plasmon-microscope images: samples, areas, views and events.

A scan images one area of a sample. Its events are laid out on microscope views (some views
lie on scratches, with many more events), get a depth in the emulsion layer, and a kind:
the sample's physics (carbon ``track``, ``fog`` grain, gamma ``electron``), fog-like
contamination, or an instrumental event for cleaning to remove (``dust``, ``noise``,
``nanoparticle`` on the surfaces, ``non_isolated`` with a resolved neighbour, ``scratch``
debris in dense views). Each block of events is rendered from its own seed, so a scan is
reproducible and can be simulated block by block.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import sys
from concurrent.futures import Executor, ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm  # text bar: works in terminals and notebooks, no ipywidgets needed

from emulsion_core.simulator import grains as gr
from emulsion_core.formats import ownership
from emulsion_core.storage import locks, provenance
from emulsion_core.simulator.acquisition import Acquisition
from emulsion_core.simulator.layout import ScanLayout, rotation_of, scan_layout, stream_seed
from emulsion_core.measure.features import cluster_features
from emulsion_core.formats.hdf5 import (
    CHUNK_EVENTS, SPLITS_FILE, DataFormatError, ScanWriter, compress_chunk, read_attrs, read_events, scan_path)
from emulsion_core.simulator.render import at_depth, digitise, optical_images, vibration_shifts
from emulsion_core.config.samples import (
    ENERGY_KEV, PRIMARY_KIND, SAMPLES, SIGNAL_SAMPLES, TEST_SCANS, SCANS as SCAN_ORDER)
from emulsion_core.config.simulator import SimulatorConfig
from emulsion_core.storage import atomic

SIMULATOR_VERSION = "2.0"  # 2.0: acquisition per view, one grain model, occupancy rates
KINDS = ("track", "fog", "electron", "dust", "noise", "nanoparticle", "non_isolated", "scratch")


def _primary(sample: str, events: np.ndarray, rng, cfg: SimulatorConfig):
    if sample in SIGNAL_SAMPLES:
        return gr.track_grains(events, ENERGY_KEV[sample], cfg.beam_phi_deg, rng, cfg.track, cfg.grain)
    if sample == "gamma":
        return gr.electron_grains(events, rng, cfg.electron, cfg.grain)
    return gr.fog_grains(events, rng, cfg.grain)


def render_events(sample: str, scan: str, kind: np.ndarray, depth_um: np.ndarray,
                  rng: np.random.Generator, cfg: SimulatorConfig, acquisition: Acquisition | None = None,
                  coincident: np.ndarray | None = None):
    """Render the events of one block.

    Long: one event block's image formation in the order its random draws are made (grains,
    optics, vibration, acquisition, digitisation); split into parts, the order of the draws, and
    with it every simulated scan, would have to be preserved across them by hand.

    kind : (N,) event kinds (see KINDS); depth_um : (N,) imaging depth, um of emulsion between the
    face the microscope looks through and the event (:func:`render.at_depth`); acquisition : per-event
    conditions (default: the area's nominal ones); coincident : (N,) bool, events with a chance
    unresolved second grain (default: none).
    Returns (images (N, P, H, W) uint8, truth DataFrame with the ``true_*`` columns).
    """
    n = len(kind)
    acquisition = acquisition if acquisition is not None else Acquisition.nominal(n, sample, scan, cfg)
    idx = np.arange(n)
    truth = {"true_kind": np.asarray(kind), "true_n_grains": np.zeros(n, np.int32),
             "true_length_nm": np.zeros(n, np.float32),
             "true_phi_deg": np.full(n, np.nan, np.float32),
             "true_theta_deg": np.full(n, np.nan, np.float32)}
    grain_parts, seg_parts = [], []

    def put(events, g, t):
        grain_parts.append(g)
        for key in ("n_grains", "length_nm", "phi_deg", "theta_deg"):
            truth["true_" + key][events] = t[key]

    makers = {"fog": lambda e: gr.fog_grains(e, rng, cfg.grain),
              PRIMARY_KIND[sample]: lambda e: _primary(sample, e, rng, cfg),
              "non_isolated": lambda e: _primary(sample, e, rng, cfg)}
    for k, maker in makers.items():
        ev = idx[kind == k]
        if len(ev):
            put(ev, *maker(ev))
    # scratch debris: a few fog-like grains within 300 nm
    ev = idx[kind == "scratch"]
    if len(ev):
        lo, hi = cfg.instrument.scratch_grains
        ng = rng.integers(lo, hi + 1, len(ev))
        owner = np.repeat(ev, ng)
        pos = 150.0 * rng.standard_normal((owner.size, 3))
        grain_parts.append(gr.Grains(owner, pos[:, 0], pos[:, 1], pos[:, 2],
                                     gr.grain_brightness(owner.size, rng, cfg.grain)))
        truth["true_n_grains"][ev] = ng
    if coincident is not None and coincident.any():
        ev = idx[coincident]
        grain_parts.append(gr.coincident_grains(ev, rng, cfg.occupancy, cfg.grain))
        truth["true_n_grains"][ev] += 1
    if grain_parts:
        seg_parts.append(gr.filaments(gr.Grains.concat(grain_parts), rng, cfg.grain))

    inst, pix = cfg.instrument, cfg.optics.pixel_size_nm
    ev = idx[kind == "dust"]
    if len(ev):
        seg_parts.append(gr.blobs(ev, 0.0, 0.0, 0.0, rng.uniform(*inst.dust_brightness_adu, len(ev)),
                                  rng.uniform(*inst.dust_sigma_px, len(ev)) * pix))
    ev = idx[kind == "nanoparticle"]
    if len(ev):
        seg_parts.append(gr.blobs(ev, 0.0, 0.0, 0.0, rng.uniform(*inst.nanoparticle_brightness_adu, len(ev)),
                                  30.0, rng.uniform(0.7, 1.0, len(ev))))
        truth["true_n_grains"][ev] = 1
    seg = gr.Segments.concat(seg_parts) if seg_parts else gr.blobs(idx[:0], 0, 0, 0, 0, 0)

    # centre each crop on the brightness barycentre of the event, focus on its brightest source
    w = seg.amplitude_adu
    wsum = np.bincount(seg.event, weights=w, minlength=n)
    cx = np.bincount(seg.event, weights=w * seg.x_nm, minlength=n) / np.maximum(wsum, 1e-9)
    cy = np.bincount(seg.event, weights=w * seg.y_nm, minlength=n) / np.maximum(wsum, 1e-9)
    seg.x_nm = seg.x_nm - cx[seg.event]
    seg.y_nm = seg.y_nm - cy[seg.event]
    focus = np.zeros(n)
    order = np.lexsort((-w, seg.event))
    first = np.unique(seg.event[order], return_index=True)
    focus[first[0]] = seg.z_nm[order][first[1]]
    focus += 1000.0 * (rng.uniform(-cfg.optics.focus_offset_um, cfg.optics.focus_offset_um, n)
                       + acquisition.focus_um)

    # a resolved neighbour: a second fog grain 8-15 px away
    ev = idx[kind == "non_isolated"]
    if len(ev):
        d = rng.uniform(*inst.neighbour_distance_px, len(ev)) * pix
        a = rng.uniform(0, 2 * np.pi, len(ev))
        dz = 1000.0 * rng.uniform(-cfg.occupancy.depth_of_field_um, cfg.occupancy.depth_of_field_um, len(ev))
        g = gr.Grains(ev, d * np.cos(a), d * np.sin(a), focus[ev] + dz, gr.grain_brightness(len(ev), rng, cfg.grain))
        seg = gr.Segments.concat([seg, gr.filaments(g, rng, cfg.grain)])

    em = at_depth(gr.to_emitters(seg, n, focus, cfg.max_segments), depth_um, cfg.optics).rotated(rotation_of(scan))
    shifts = vibration_shifts(n, rng, cfg.vibration) * acquisition.vibration_scale[:, None, None]
    offset = rng.uniform(-0.5, 0.5, (n, 2))
    signal = optical_images(em, shifts, offset, cfg.optics, cfg.camera)
    signal *= acquisition.gain.astype(np.float32)[:, None, None, None]
    ev = idx[kind == "noise"]
    if len(ev):
        signal[ev] += _noise_clusters(len(ev), rng, cfg)
    images = digitise(signal, acquisition.background_adu, rng, cfg.camera, acquisition.read_noise_scale)
    # truth angles in the microscope frame (the beam turns with the emulsion)
    rot = rotation_of(scan)
    truth["true_phi_deg"] = gr._axial(truth["true_phi_deg"] + rot).astype(np.float32)
    return images, pd.DataFrame(truth)


def _noise_clusters(m: int, rng, cfg: SimulatorConfig) -> np.ndarray:
    """Dim, few-pixel camera-noise clusters that the online software took for an event."""
    size = cfg.optics.image_size_px
    grid = np.arange(size) - (size - 1) / 2
    pos = rng.uniform(-1.0, 1.0, (m, 2))
    s = cfg.instrument.noise_sigma_px
    gx = np.exp(-0.5 * ((grid[None, :] - pos[:, :1]) / s) ** 2)
    gy = np.exp(-0.5 * ((grid[None, :] - pos[:, 1:]) / s) ** 2)
    amp = rng.uniform(*cfg.instrument.noise_brightness_adu, (m, len(cfg.optics.polarisation_deg)))
    return (amp[:, :, None, None] * gy[:, None, :, None] * gx[:, None, None, :]).astype(np.float32)


def scan_attrs(sample: str, scan: str, seed: int, cfg: SimulatorConfig) -> dict:
    """File attributes of a simulated scan (DESIGN.md section 2)."""
    rot = rotation_of(scan)
    return {
        "format_version": 1, "sample": sample, "is_signal": sample in SIGNAL_SAMPLES,
        "energy_keV": float(ENERGY_KEV[sample]), "scan": scan, "rotation_deg": rot,
        "area": "test" if scan in TEST_SCANS else "train",
        "beam_phi_deg": float(gr._axial(cfg.beam_phi_deg + rot)),
        "pixel_size_nm": cfg.optics.pixel_size_nm, "camera_max": cfg.camera.camera_max,
        "polarisation_deg": list(cfg.optics.polarisation_deg),
        "simulator_version": SIMULATOR_VERSION, "simulator_config": cfg.to_json(), "seed": int(seed),
    }


def simulate_block(sample: str, scan: str, layout: ScanLayout, start: int, stop: int, block: int,
                   seed: int, cfg: SimulatorConfig) -> tuple[np.ndarray, pd.DataFrame]:
    """Images and events table of events [start, stop) of a scan, from the block's own seed."""
    sl = slice(start, stop)
    rng = np.random.default_rng(stream_seed(seed, sample, scan, "block", block))
    images, truth = render_events(sample, scan, layout.kind[sl], layout.depth_um[sl], rng, cfg,
                                  layout.acquisition[sl], layout.coincident[sl])
    feats = cluster_features(images)
    table = pd.DataFrame({
        "event_id": np.arange(start, stop, dtype=np.int64), "view": layout.view[sl],
        "x_um": layout.x_um[sl], "y_um": layout.y_um[sl], "z_um": layout.z_um[sl], "depth_um": layout.depth_um[sl],
        **{c: feats[c].to_numpy() for c in feats.columns},
        "view_density": layout.view_density[sl], **{c: truth[c].to_numpy() for c in truth.columns},
    })
    return images, table


def _block_job(args):
    """Worker: simulate one block and compress its image chunks (runs in a child process)."""
    sample, scan, layout, start, stop, block, seed, cfg, chunk = args
    images, table = simulate_block(sample, scan, layout, start, stop, block, seed, cfg)
    blobs = [compress_chunk(images[i:i + chunk], chunk) for i in range(0, len(images), chunk)]
    return blobs, len(images), table


def simulate_scan(path, sample: str, scan: str, n_events: int, seed: int,
                  cfg: SimulatorConfig | None = None, block_size: int = 1024, progress=None,
                  executor: Executor | None = None) -> Path:
    """Simulate one scan into ``path`` (written atomically), block by block.

    Blocks are independent (each has its own seed), so they may run in ``executor``'s worker
    processes; the result does not depend on how many workers there are.
    """
    cfg = cfg or SimulatorConfig()
    layout = scan_layout(sample, scan, n_events, seed, cfg)
    size = cfg.optics.image_size_px
    shape = (len(cfg.optics.polarisation_deg), size, size)
    dtype = np.uint8 if cfg.camera.camera_max <= 255 else np.uint16
    chunk = min(CHUNK_EVENTS, n_events)
    block_size = max(chunk, (block_size // chunk) * chunk)  # blocks hold whole chunks
    jobs = [(sample, scan, layout, a, min(a + block_size, n_events), b, seed, cfg, chunk)
            for b, a in enumerate(range(0, n_events, block_size))]
    results = executor.map(_block_job, jobs) if executor is not None else map(_block_job, jobs)
    with ScanWriter(path, n_events, shape, dtype, scan_attrs(sample, scan, seed, cfg)) as w:
        for blobs, n, table in results:
            w.append_compressed(blobs, n, table)
            if progress is not None:
                progress.update(n)
    return Path(path)


def default_workers() -> int:
    """Worker processes for simulation: the CPU cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _is_complete(path: Path, sample: str, scan: str, n_events: int, seed: int, cfg: SimulatorConfig) -> bool:
    if not path.exists():
        return False
    try:
        attrs = read_attrs(path)
        n = len(read_events(path))
    except DataFormatError:
        return False
    return (attrs.get("seed") == seed and attrs.get("simulator_config") == cfg.to_json()
            and attrs.get("sample") == sample and attrs.get("scan") == scan and n == n_events)


def simulate_dataset(dataset_dir, events: dict, seed: int, samples=SAMPLES, cfg: SimulatorConfig | None = None,
                     validation_fraction: float = 0.4, block_size: int = 1024, progress: bool = True,
                     workers: int | None = None, executor: Executor | None = None) -> Path:
    """Simulate every scan of every sample into ``dataset_dir`` and write ``splits.csv``.

    events : {sample: {scan: n_raw_events}} for the scans in SCAN_ORDER. A scan file already
    there, recorded in the folder's manifest with the same provenance key (seed, configuration,
    size and simulator code, :func:`scan_key`), is kept (resume after an interruption).
    The folder must be empty or hold only the simulator's own files (:mod:`ownership`);
    otherwise :class:`ownership.ForeignFilesError` names the others and nothing is written.
    workers : processes rendering blocks in parallel (default: the usable CPU cores; 1 = none);
    executor : a ``concurrent.futures`` executor to render the blocks in instead (a Dask cluster's,
    ``client.get_executor()``): the files are the same whatever renders them.
    Returns the path of ``splits.csv``.
    """
    dataset_dir = Path(dataset_dir)
    # one process at a time: a second (another notebook, a Dask worker) waits, then finds the
    # scans recorded and keeps them, instead of taking the first one's temporaries for leftovers
    with locks.exclusive(dataset_dir, f"the dataset {dataset_dir}"):
        return _simulate_dataset(dataset_dir, events, seed, samples, cfg or SimulatorConfig(), validation_fraction,
                                 block_size, progress, workers, executor)


def _simulate_dataset(dataset_dir: Path, events, seed, samples, cfg, validation_fraction, block_size, progress,
                      workers, given=None) -> Path:
    todo = [(s, sc, int(events[s][sc])) for s in samples for sc in SCAN_ORDER if events[s].get(sc, 0) > 0]
    manifest = ownership.claim(dataset_dir, [scan_path(dataset_dir, s, sc).name for s, sc, _ in todo])
    keys = {t: scan_key(*t, seed, cfg) for t in todo}
    missing = [t for t in todo if not _is_current(manifest, dataset_dir, t, keys[t], seed, cfg)]
    workers = default_workers() if workers is None else workers
    total = sum(n for *_, n in todo)
    executor = given
    if given is None and workers > 1 and sum(n for *_, n in missing) > 2 * block_size:
        # fork: no re-import of the caller's __main__ (scripts without a main guard work);
        # the workers never touch an open HDF5 file
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
        executor = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(method))
    try:
        # progress=False forces the bar off; otherwise tqdm decides (TQDM_DISABLE=1 silences it)
        quiet = not progress or not missing  # nothing to simulate: no bar
        # initial: scans already there count as done without entering the rate (a cached scan is
        # not simulated at 1e9 events/s)
        with tqdm(total=total, initial=total - sum(n for *_, n in missing), unit="ev", desc="simulate",
                  **({"disable": True} if quiet else {})) as bar:
            for sample, scan, n in missing:
                path = scan_path(dataset_dir, sample, scan)
                bar.set_postfix_str(path.name)
                manifest.forget(path.name)
                simulate_scan(path, sample, scan, n, seed, cfg, block_size, progress=bar, executor=executor)
                manifest.record_scan(path.name, seed, keys[(sample, scan, n)])
    finally:
        if executor is not None and given is None:
            executor.shutdown()
    splits = write_splits(dataset_dir, todo, seed, validation_fraction)
    manifest.record_splits()
    return splits


def scan_key(sample: str, scan: str, n_events: int, seed: int, cfg: SimulatorConfig) -> dict:
    """Provenance key of a simulated scan: what it simulates and the simulator's code version."""
    config = hashlib.sha256(cfg.to_json().encode()).hexdigest()[:16]
    return provenance.key("scan", sample=sample, scan=scan, n_events=int(n_events), seed=int(seed),
                          config_sha256=config, simulator_version=SIMULATOR_VERSION)


def _is_current(manifest, folder: Path, todo: tuple, key: dict, seed: int, cfg: SimulatorConfig) -> bool:
    """A scan is kept when the manifest records it with ``key`` and the file agrees; a file that
    is there but stale is announced with the reason on stderr."""
    path = scan_path(folder, todo[0], todo[1])
    if not path.exists():
        return False
    why = provenance.difference(manifest.key_of(path.name), key)
    if why is None and _is_complete(path, *todo, seed, cfg):
        return True
    print(f"re-simulating {path.name}: {why or 'the file does not match its record'}", file=sys.stderr)
    return False


def write_splits(dataset_dir, scans, seed: int, validation_fraction: float) -> Path:
    """``splits.csv``: a seeded random train/validation split of each rotated scan (so both
    splits hold equal parts per rotation) and ``test`` (``test_bulk``) for the independent test scans."""
    rows = []
    for sample, scan, n in scans:
        name = scan_path(dataset_dir, sample, scan).name
        ids = np.arange(n)
        if scan in TEST_SCANS:
            split = np.full(n, scan, dtype=object)  # test, test_bulk
        else:
            rng = np.random.default_rng(stream_seed(seed, sample, scan, "split"))
            split = np.full(n, "train", dtype=object)
            split[rng.permutation(n)[: int(round(validation_fraction * n))]] = "validation"
        rows.append(pd.DataFrame({"file": name, "event_id": ids, "split": split}))
    out = Path(dataset_dir) / SPLITS_FILE
    atomic.write_csv(pd.concat(rows, ignore_index=True), out, index=False)
    return out
