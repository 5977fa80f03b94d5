"""Make a profile's dataset ready to analyse: the one place that decides to simulate.

``python -m emulsion_core prepare`` (``run_all.sh``) and each notebook's first cell call
:func:`ensure_dataset`; everything below reads the folder as it is
(:func:`emulsion_core.data.dataset.require`).
"""

from __future__ import annotations

from pathlib import Path

from emulsion_core.config.profiles import Profile
from emulsion_core.config.simulator import SimulatorConfig
from emulsion_core.data import dataset
from emulsion_core.data.dataset import dataset_dir
from emulsion_core.formats import ownership
from emulsion_core.simulator.simulate import simulate_dataset


def ensure_dataset(profile: Profile, cfg: SimulatorConfig | None = None, progress: bool = True) -> Path:
    """The profile's dataset folder, ready to analyse; returns it.

    - missing, empty or the simulator's own: simulated where scans are missing or stale (scans
      already complete are kept, so this is cheap when the data are there and resumes an
      interrupted simulation scan by scan);
    - given scans only (files the simulator did not write): nothing is simulated or rewritten;
      every scan file is checked as ``info`` checks it (cached) and a missing ``splits.csv`` is
      made by the rule of :mod:`emulsion_core.formats.splits`;
    - both: :class:`ownership.ForeignFilesError` naming the files the simulator did not write.
    """
    folder = dataset_dir(profile)
    if ownership.inspect(folder).given:
        return dataset.require(profile)
    cfg = cfg if cfg is not None else profile.simulator_config()
    simulate_dataset(folder, profile.events, profile.seed, profile.samples, cfg,
                     profile.validation_fraction, profile.block_size, progress=progress)
    return folder
