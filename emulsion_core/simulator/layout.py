"""Where a scan's events come from before any image is drawn: the views of the scan, the subset
of each view's events the dataset records (``recorded_per_view``), what each event is (the
sample's own kind, contamination, neighbours, coincident grains: occupancy rates), its depth in
the layer and its view's acquisition draw; and the seeding that makes every stream independent
of processing order."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from emulsion_core.config.samples import PRIMARY_KIND, ROTATED_SCANS, SIGNAL_SAMPLES
from emulsion_core.config.simulator import SimulatorConfig
from emulsion_core.simulator import acquisition as acq_mod
from emulsion_core.simulator import occupancy
from emulsion_core.simulator.acquisition import Acquisition


def rotation_of(scan: str) -> float:
    """Emulsion rotation of a scan, degrees (the test areas are scanned unrotated)."""
    return ROTATED_SCANS.get(scan, 0.0)


def stream_seed(seed: int, *keys) -> np.random.SeedSequence:
    """Independent stream for (seed, sample, scan, block...) regardless of processing order."""
    words = [int(seed)] + [int.from_bytes(hashlib.sha256(str(k).encode()).digest()[:4], "little") for k in keys]
    return np.random.SeedSequence(words)


@dataclass
class ScanLayout:
    """Per-event bookkeeping of a scan before rendering (all arrays (N,))."""

    kind: np.ndarray  # str
    view: np.ndarray
    view_density: np.ndarray
    x_um: np.ndarray
    y_um: np.ndarray
    z_um: np.ndarray
    coincident: np.ndarray  # bool: another grain sits unresolved on the event (occupancy)
    acquisition: Acquisition
    depth_um: np.ndarray  # imaging depth: um of emulsion between the face looked through and the event


def scan_layout(sample: str, scan: str, n_events: int, seed: int, cfg: SimulatorConfig) -> ScanLayout:
    """Views, densities, positions, depths and kinds of the events of one scan."""
    rng = np.random.default_rng(stream_seed(seed, sample, scan, "layout"))
    area = cfg.area(sample, scan)
    # views one after the other until the scan has n_events; a view on a scratch holds
    # dense_view_factor times more events, the excess being scratch debris
    # the file records a random subset of each view (recorded_per_view on average): counts is the
    # view's whole population, which sets its density, rates and cleaning
    mean_weight = 1.0 - area.dense_view_fraction + area.dense_view_fraction * area.dense_view_factor
    if not cfg.recorded_per_view > 0:
        raise ValueError(f"simulator: recorded_per_view must be > 0 events per view, not {cfg.recorded_per_view}")
    kept = min(1.0, cfg.recorded_per_view / area.events_per_view)
    n_views = int(n_events / (area.events_per_view * mean_weight * kept) * 1.5) + 10

    def views(m: int):
        """m more views: on a scratch or not, their whole population, the events recorded."""
        on_scratch = rng.random(m) < area.dense_view_fraction
        factor = np.where(on_scratch, area.dense_view_factor, 1.0)
        population = np.maximum(rng.poisson(area.events_per_view * factor), 1)
        return on_scratch, population, rng.binomial(population, kept)

    dense, counts, recorded = views(n_views)
    while recorded.sum() < n_events:  # rare (a few recorded events per view): scan more views
        dense, counts, recorded = (np.r_[old, new] for old, new in zip((dense, counts, recorded), views(n_views)))
    n_views = int(np.searchsorted(np.cumsum(recorded), n_events)) + 1
    view = np.repeat(np.arange(n_views), recorded[:n_views])[:n_events]
    scratch = dense[view] & (rng.random(n_events) < 1.0 - 1.0 / area.dense_view_factor)
    probs = {"dust": area.dust, "noise": area.noise, "nanoparticle": area.nanoparticle,
             "fog": area.contamination if sample in SIGNAL_SAMPLES else 0.0}
    names = list(probs) + [PRIMARY_KIND[sample]]
    p = np.array(list(probs.values()) + [max(0.0, 1.0 - sum(probs.values()))])
    kind = np.asarray(names, dtype=object)[rng.choice(len(names), n_events, p=p / p.sum())]
    # chance neighbours and coincidences follow the view's density, the same rule for every sample
    density = counts[view]
    physics = np.isin(kind, ("fog", PRIMARY_KIND[sample]))
    neighbour = physics & (rng.random(n_events) < occupancy.neighbour_probability(density, cfg))
    kind[neighbour & (kind == PRIMARY_KIND[sample])] = "non_isolated"
    coincident = physics & (rng.random(n_events) < occupancy.coincidence_probability(density, cfg))
    kind[scratch] = "scratch"
    coincident &= ~scratch
    half = cfg.layer_thickness_um / 2.0
    z = rng.uniform(-half, half, n_events)
    geometry = cfg.geometry
    if geometry.implanted(sample, scan):  # the ion's band, with its contamination and neighbours
        lo, hi = geometry.implant_band_um
        z = lo + (z + half) / cfg.layer_thickness_um * (hi - lo)
    surf = kind == "nanoparticle"
    depth = np.abs(cfg.instrument.nanoparticle_depth_um * rng.standard_normal(int(surf.sum())))
    z[surf] = np.where(rng.random(int(surf.sum())) < 0.5, half - depth, -half + depth)
    vx, vy = cfg.view_size_um
    cols = int(np.ceil(np.sqrt(n_views)))
    x = (view % cols) * vx + rng.uniform(-vx / 2, vx / 2, n_events)
    y = (view // cols) * vy + rng.uniform(-vy / 2, vy / 2, n_events)
    return ScanLayout(kind.astype(str), view.astype(np.int32), counts[view].astype(np.int32),
                      x.astype(np.float32), y.astype(np.float32), z.astype(np.float32), coincident,
                      acq_mod.draw(view, sample, scan, rng, cfg),
                      geometry.imaging_depth(sample, scan, z, cfg.layer_thickness_um).astype(np.float32))
