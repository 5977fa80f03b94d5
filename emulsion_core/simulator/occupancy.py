"""Chance overlaps of independent grains, from the event density: one rule for every sample.

Developed grains (tracks, fog, instrumental objects alike) are scattered through the emulsion
layer at random, so the number of other grains in a volume V around an event is Poisson with
mean ``rho V``, rho = events per view / (view area x layer thickness), um^-3. Within the depth of
field (+-``depth_of_field_um`` around the event's focal plane) another grain is

- a **chance coincidence** when it lies closer than the optical resolution in x-y
  (``coincidence_max_nm``): the two are seen as one event;
- a **resolved neighbour** when it lies 8-15 px away in x-y (inside the 40 x 40 px crop but
  optically separate): the event is not isolated and cleaning removes it.

Each probability is ``1 - exp(-rho V)`` with V the disc or annulus times the depth window. With
the densities of the paper's samples (1e-3 to 2e-3 um^-3) both are of order 1e-4 to 1e-3.
"""

from __future__ import annotations

import numpy as np

from emulsion_core.config.simulator import SimulatorConfig


def density_per_um3(events_per_view, cfg: SimulatorConfig) -> np.ndarray:
    """Grain density of a view holding ``events_per_view`` events, um^-3."""
    vx, vy = cfg.view_size_um
    return np.asarray(events_per_view, dtype=float) / (vx * vy * cfg.layer_thickness_um)


def _probability(density, area_um2: float, cfg: SimulatorConfig) -> np.ndarray:
    volume = area_um2 * 2.0 * cfg.occupancy.depth_of_field_um
    return -np.expm1(-np.asarray(density, dtype=float) * volume)


def coincidence_probability(events_per_view, cfg: SimulatorConfig) -> np.ndarray:
    """Probability that another grain sits unresolved on top of an event (same shape as input)."""
    r = cfg.occupancy.coincidence_max_nm / 1000.0
    return _probability(density_per_um3(events_per_view, cfg), np.pi * r**2, cfg)


def neighbour_probability(events_per_view, cfg: SimulatorConfig) -> np.ndarray:
    """Probability of an optically resolved neighbour 8-15 px from an event (same shape as input)."""
    lo, hi = (d * cfg.optics.pixel_size_nm / 1000.0 for d in cfg.instrument.neighbour_distance_px)
    return _probability(density_per_um3(events_per_view, cfg), np.pi * (hi**2 - lo**2), cfg)
