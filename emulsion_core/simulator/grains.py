"""What emits light in an event: silver grains of carbon tracks, fog, electrons and instrumental objects.

Grains are built per block of events as flat arrays (one row per grain or per silver segment,
with the index of its event) and padded into :class:`render.Emitters`. Positions are in the
emulsion frame, nm, relative to the event origin; depth ``z_nm`` is along the optical axis.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from emulsion_core.simulator.render import Emitters
from emulsion_core.config.simulator import ElectronConfig, GrainConfig, OccupancyConfig, TrackConfig


@dataclass
class Grains:
    """Flat table of grains: event index, centre (nm), brightness (ADU). Every grain develops by
    the same filament model, whatever made it (track, fog, electron, debris)."""

    event: np.ndarray
    x_nm: np.ndarray
    y_nm: np.ndarray
    z_nm: np.ndarray
    brightness_adu: np.ndarray

    @staticmethod
    def concat(parts: list["Grains"]) -> "Grains":
        return Grains(*(np.concatenate([getattr(p, f) for p in parts]) for f in
                        ("event", "x_nm", "y_nm", "z_nm", "brightness_adu")))


@dataclass
class Segments:
    """Flat table of light sources (silver segments or instrumental blobs)."""

    event: np.ndarray
    x_nm: np.ndarray
    y_nm: np.ndarray
    z_nm: np.ndarray
    theta_deg: np.ndarray
    amplitude_adu: np.ndarray
    ratio: np.ndarray
    size_nm: np.ndarray

    @staticmethod
    def concat(parts: list["Segments"]) -> "Segments":
        return Segments(*(np.concatenate([getattr(p, f) for p in parts]) for f in
                          ("event", "x_nm", "y_nm", "z_nm", "theta_deg", "amplitude_adu",
                           "ratio", "size_nm")))


def grain_brightness(n: int, rng: np.random.Generator, cfg: GrainConfig):
    """Peak brightness over background of in-focus grains, log-normal, ADU."""
    return cfg.brightness_median_adu * np.exp(cfg.brightness_log_sigma * rng.standard_normal(n))


def track_grains(events: np.ndarray, energy_kev: int, beam_phi_deg: float,
                 rng: np.random.Generator, cfg: TrackConfig, grain: GrainConfig):
    """Sensitised crystals along carbon-ion tracks.

    events : (n,) event indices. Returns (Grains, truth) with truth a dict of (n,) arrays:
    ``length_nm`` (projected length), ``phi_deg`` (emulsion frame), ``theta_deg`` (dip),
    ``n_grains``.
    """
    n = len(events)
    rng_range = cfg.range_mean_nm[energy_kev] * np.maximum(
        0.05, 1.0 + cfg.range_straggling * rng.standard_normal(n))
    dip = np.abs(cfg.dip_sigma_deg * rng.standard_normal(n))
    dip = np.minimum(dip, 89.0)
    phi = beam_phi_deg + cfg.phi_scatter_deg[energy_kev] * rng.standard_normal(n)
    # crystals along the 3D path at a fixed pitch with a random first position
    first = rng.uniform(0.0, cfg.crystal_pitch_nm, n)
    n_cand = np.maximum(np.floor((rng_range - first) / cfg.crystal_pitch_nm).astype(int) + 1, 1)
    owner = np.repeat(np.arange(n), n_cand)
    k = np.arange(owner.size) - np.repeat(np.cumsum(n_cand) - n_cand, n_cand)
    s = np.minimum(first[owner] + k * cfg.crystal_pitch_nm, rng_range[owner])
    hit = rng.random(owner.size) < cfg.sensitisation_prob
    # a track is only an event if at least one crystal developed: keep its first candidate then
    n_hit = np.bincount(owner, weights=hit, minlength=n)
    hit |= (n_hit[owner] == 0) & (k == 0)
    owner, s = owner[hit], s[hit]
    cd, sd = np.cos(np.radians(dip[owner])), np.sin(np.radians(dip[owner]))
    ph = np.radians(phi[owner])
    off = cfg.grain_offset_nm * rng.standard_normal((owner.size, 2))
    g = Grains(events[owner], s * cd * np.cos(ph) + off[:, 0], s * cd * np.sin(ph) + off[:, 1],
               s * sd, grain_brightness(owner.size, rng, grain))
    truth = {"length_nm": rng_range * np.cos(np.radians(dip)), "phi_deg": _axial(phi),
             "theta_deg": dip, "n_grains": np.bincount(owner, minlength=n)}
    return g, truth


def fog_grains(events: np.ndarray, rng: np.random.Generator, grain: GrainConfig):
    """Thermally developed single grains at the event origin (chance coincidences with another
    grain are added for every kind of event alike, see :func:`coincident_grains`)."""
    n = len(events)
    g = Grains(events, np.zeros(n), np.zeros(n), np.zeros(n), grain_brightness(n, rng, grain))
    truth = {"length_nm": np.zeros(n), "phi_deg": np.full(n, np.nan), "theta_deg": np.full(n, np.nan),
             "n_grains": np.ones(n, int)}
    return g, truth


def coincident_grains(events: np.ndarray, rng: np.random.Generator, occupancy: OccupancyConfig,
                      grain: GrainConfig) -> Grains:
    """One unrelated grain per event, closer than the optical resolution in x-y (uniform over the
    disc of radius ``coincidence_max_nm``) and within the depth of field: a chance coincidence."""
    m = len(events)
    r = occupancy.coincidence_max_nm * np.sqrt(rng.random(m))
    a = rng.uniform(0, 2 * np.pi, m)
    z = 1000.0 * rng.uniform(-occupancy.depth_of_field_um, occupancy.depth_of_field_um, m)
    return Grains(events, r * np.cos(a), r * np.sin(a), z, grain_brightness(m, rng, grain))


def electron_grains(events: np.ndarray, rng: np.random.Generator, cfg: ElectronConfig,
                    grain: GrainConfig):
    """Compton electrons: a few grains along an isotropic random walk."""
    n = len(events)
    ng = 2 + rng.poisson(max(cfg.grains_mean - 2.0, 0.0), n)
    owner = np.repeat(np.arange(n), ng)
    step = rng.standard_normal((owner.size, 3))
    step *= cfg.step_nm / np.linalg.norm(step, axis=1, keepdims=True)
    first = np.repeat(np.cumsum(ng) - ng, ng)
    step[np.arange(owner.size) == first] = 0.0
    pos = np.cumsum(step, axis=0)
    pos -= pos[first]
    g = Grains(events[owner], pos[:, 0], pos[:, 1], pos[:, 2], grain_brightness(owner.size, rng, grain))
    last = np.cumsum(ng) - 1
    d = pos[last]
    truth = {"length_nm": np.hypot(d[:, 0], d[:, 1]), "phi_deg": _axial(np.degrees(np.arctan2(d[:, 1], d[:, 0]))),
             "theta_deg": np.degrees(np.arctan2(np.abs(d[:, 2]), np.hypot(d[:, 0], d[:, 1]))),
             "n_grains": ng}
    return g, truth


def filaments(grains: Grains, rng: np.random.Generator, cfg: GrainConfig) -> Segments:
    """Develop each grain into 1-5 straight silver segments (a kinked filament).

    The filament starts at the grain centre in a random direction; each further segment turns
    by a Gaussian kink. A segment's amplitude is the grain brightness times its length over
    ``cfg.reference_length_nm`` (light scales with the amount of silver).
    """
    g = len(grains.event)
    w = np.asarray(cfg.segment_weights, float)
    nseg = rng.choice(len(w), g, p=w / w.sum()) + 1
    owner = np.repeat(np.arange(g), nseg)
    first = np.repeat(np.cumsum(nseg) - nseg, nseg)
    is_first = np.arange(owner.size) == first
    mean, sd = cfg.segment_length_nm
    length = np.maximum(mean + sd * rng.standard_normal(owner.size), cfg.segment_length_min_nm)
    turn = np.where(is_first, rng.uniform(0, 360, owner.size), cfg.kink_sigma_deg * rng.standard_normal(owner.size))
    # cumulative angle and position within each filament
    angle = _segment_cumsum(turn, first)
    a = np.radians(angle)
    dx, dy = length * np.cos(a), length * np.sin(a)
    end_x, end_y = _segment_cumsum(dx, first), _segment_cumsum(dy, first)
    mid_x, mid_y = end_x - dx / 2, end_y - dy / 2
    lo, hi = cfg.response_ratio_min, cfg.response_ratio_max
    return Segments(grains.event[owner], grains.x_nm[owner] + mid_x, grains.y_nm[owner] + mid_y,
                    grains.z_nm[owner], np.mod(angle, 180.0),
                    grains.brightness_adu[owner] * length / cfg.reference_length_nm, rng.uniform(lo, hi, owner.size),
                    np.zeros(owner.size))


def blobs(events: np.ndarray, x_nm, y_nm, z_nm, amplitude_adu, size_nm, ratio=1.0) -> Segments:
    """Unpolarised round light sources (dust, nanoparticles): one segment each."""
    n = len(events)
    return Segments(events, np.broadcast_to(x_nm, n).astype(float), np.broadcast_to(y_nm, n).astype(float),
                    np.broadcast_to(z_nm, n).astype(float), np.zeros(n),
                    np.broadcast_to(amplitude_adu, n).astype(float), np.broadcast_to(ratio, n).astype(float),
                    np.broadcast_to(size_nm, n).astype(float))


def to_emitters(seg: Segments, n_events: int, focus_nm: np.ndarray, max_segments: int) -> Emitters:
    """Pad the flat segment table into (N, S) arrays; drop the faintest beyond ``max_segments``."""
    order = np.lexsort((-seg.amplitude_adu, seg.event))
    ev = seg.event[order]
    counts = np.bincount(ev, minlength=n_events)
    rank = np.arange(ev.size) - np.repeat(np.cumsum(counts) - counts, counts)
    keep = rank < max_segments
    order, ev, rank = order[keep], ev[keep], rank[keep]
    s = max(int(rank.max()) + 1 if rank.size else 1, 1)

    def pad(values, fill=0.0):
        out = np.full((n_events, s), fill, dtype=np.float64)
        out[ev, rank] = values[order]
        return out

    dz = pad(seg.z_nm) - focus_nm[:, None]
    return Emitters(pad(seg.x_nm), pad(seg.y_nm), dz / 1000.0, pad(seg.theta_deg),
                    pad(seg.amplitude_adu), pad(seg.ratio, 1.0), pad(seg.size_nm))


def _segment_cumsum(values: np.ndarray, first: np.ndarray) -> np.ndarray:
    """Cumulative sum restarting at each group's first row (groups are contiguous)."""
    c = np.cumsum(values)
    base = c[first] - values[first]
    return c - base


def _axial(phi_deg):
    """Fold an angle into the axial range (-90, 90] degrees."""
    return 90.0 - np.mod(90.0 - np.asarray(phi_deg, dtype=float), 180.0)
