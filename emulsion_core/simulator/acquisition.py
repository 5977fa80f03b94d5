"""Acquisition conditions of microscope views: background, gain, read noise, focus, vibration.

They belong to the view (and, for the background, slightly to the event), never to the class:
every sample draws them from the same distributions (:class:`simconfig.AcquisitionConfig`), and
the independent test area is shifted by the same offsets for every sample. Only the audit switch
``per_sample`` gives each sample its own background level, as the paper's emulsions had.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from emulsion_core.config.samples import TEST_SCANS
from emulsion_core.config.simulator import SimulatorConfig


@dataclass
class Acquisition:
    """Per-event acquisition conditions, all (N,).

    background_adu : optical background level, ADU; gain : relative signal gain;
    read_noise_scale : relative read noise; focus_um : focus error added to the event's focal
    plane, um; vibration_scale : relative amplitude of the per-polarisation image shifts.
    """

    background_adu: np.ndarray
    gain: np.ndarray
    read_noise_scale: np.ndarray
    focus_um: np.ndarray
    vibration_scale: np.ndarray

    def __getitem__(self, index) -> "Acquisition":
        return Acquisition(*(getattr(self, f.name)[index] for f in fields(self)))

    @staticmethod
    def nominal(n: int, sample: str, scan: str, cfg: SimulatorConfig) -> "Acquisition":
        """Every event under the area's mean conditions (no view-to-view spread)."""
        bkg, vib = area_levels(sample, scan, cfg)
        return Acquisition(np.full(n, bkg), np.ones(n), np.ones(n), np.zeros(n), np.full(n, vib))


def area_levels(sample: str, scan: str, cfg: SimulatorConfig) -> tuple[float, float]:
    """Mean background (ADU) and vibration factor of the area a scan images."""
    acq = cfg.acquisition
    test = scan in TEST_SCANS
    if acq.per_sample:
        train_bkg, test_bkg = acq.per_sample_background_adu[sample]
        bkg = test_bkg if test else train_bkg
    else:
        bkg = acq.background_adu + (acq.test_background_offset_adu if test else 0.0)
    return float(bkg), float(acq.test_vibration_factor if test else 1.0)


def draw(view: np.ndarray, sample: str, scan: str, rng: np.random.Generator, cfg: SimulatorConfig) -> Acquisition:
    """Conditions of each event of a scan: drawn once per view, the background also per event.

    view : (N,) view index of each event (0 .. n_views - 1).
    """
    acq = cfg.acquisition
    n_views = int(view.max()) + 1 if len(view) else 0
    bkg, vib = area_levels(sample, scan, cfg)
    z = rng.standard_normal((5, n_views))
    per_view = Acquisition(
        background_adu=bkg + acq.background_view_sd_adu * z[0],
        gain=np.exp(acq.gain_view_sd * z[1]),
        read_noise_scale=np.exp(acq.read_noise_view_sd * z[2]),
        focus_um=acq.focus_view_sd_um * z[3],
        vibration_scale=vib * np.exp(acq.vibration_view_sd * z[4]),
    )
    out = per_view[view]
    out.background_adu = out.background_adu + acq.background_event_sd_adu * rng.standard_normal(len(view))
    return out
