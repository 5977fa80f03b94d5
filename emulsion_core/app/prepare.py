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


def simulate(profile: Profile, cfg: SimulatorConfig | None = None, progress: bool = True, workers: int | None = None,
             cluster: str | None = None, log=print) -> Path:
    """Simulate the profile's dataset (missing or stale scans only) on this machine or, when a
    cluster is named (``cluster``, else the profile's ``cluster.where``; :mod:`emulsion_core.app.cluster`),
    with its scan blocks rendered on the cluster's workers: the same files either way. Returns
    the path of ``splits.csv``."""
    from emulsion_core.app import cluster as clusters
    cfg = cfg if cfg is not None else profile.simulator_config()
    args = (dataset_dir(profile), profile.events, profile.seed, profile.samples, cfg, profile.validation_fraction,
            profile.block_size)
    with clusters.connect(profile, cluster) as (client, line):
        if client is None:
            return simulate_dataset(*args, progress=progress, workers=workers)
        log(line)
        return simulate_dataset(*args, progress=progress, executor=client.get_executor())


def ensure_dataset(profile: Profile, cfg: SimulatorConfig | None = None, progress: bool = True,
                   cluster: str | None = None) -> Path:
    """The profile's dataset folder, ready to analyse; returns it.

    - missing, empty or the simulator's own: simulated where scans are missing or stale (scans
      already complete are kept, so this is cheap when the data are there and resumes an
      interrupted simulation scan by scan);
    - given scans only (files the simulator did not write): nothing is simulated or rewritten;
      every scan file is checked as ``info`` checks it (cached) and a missing ``splits.csv`` is
      made by the rule of :mod:`emulsion_core.formats.splits`;
    - both: :class:`ownership.ForeignFilesError` naming the files the simulator did not write.
    cluster : where the simulation runs (:func:`simulate`).
    """
    folder = dataset_dir(profile)
    if ownership.inspect(folder).given:
        return dataset.require(profile)
    simulate(profile, cfg, progress, cluster=cluster)
    return folder
