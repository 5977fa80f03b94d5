"""Where work runs: one machine, a Dask cluster on it, a running scheduler or a batch system.

``where`` (the profile's ``cluster.where`` or the ``--cluster`` option, which wins):

- ``none``: this machine, as before (the simulator spreads scan blocks over its local cores);
- ``local:N``: a Dask ``LocalCluster`` of N single-threaded worker processes (Keras ``predict``
  is not thread-safe: one thread per worker);
- ``tcp://host:port``: the scheduler of a cluster started elsewhere;
- ``slurm`` or ``htcondor``: dask-jobqueue starts ``jobqueue.jobs`` batch jobs described by the
  profile's ``cluster.jobqueue`` (queue, account, cores, processes, memory, gpus, walltime, the
  Python of the environment); one worker per GPU, pinned (``--resources GPU=1``).

:func:`connect` yields a ``distributed.Client`` (None for ``none``) and a line naming the cluster
and its dashboard, which the caller prints and writes to the report index. When a cluster is
named, Dask distributes the work; results do not depend on where they ran (the simulator's blocks
carry their own seeds, so the scan files are identical whatever the workers).
"""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager

from emulsion_core.config.profiles import CLUSTER_WHERE, Profile


class ClusterError(ValueError):
    """A cluster description that cannot be used (the message says which field)."""


ENVIRONMENT = "EMULSION_DL_CLUSTER"  # what run_all.sh --cluster sets for the notebooks


def where(profile: Profile | None, option: str | None = None) -> str:
    """The cluster the run uses: ``option`` (the command line), else ``$EMULSION_DL_CLUSTER``
    (``run_all.sh --cluster``), else the profile's ``cluster.where``, else none."""
    chosen = (option or os.environ.get(ENVIRONMENT)
              or ((profile.cluster or {}).get("where") if profile is not None else None) or "none")
    if not (chosen in ("none", "slurm", "htcondor") or chosen.startswith(("local:", "tcp://", "tls://"))):
        raise ClusterError(f"--cluster {chosen!r}: expected {CLUSTER_WHERE}")
    if chosen.startswith("local:"):
        n = chosen.split(":", 1)[1]
        if not n.isdigit() or int(n) < 1:
            raise ClusterError(f"--cluster {chosen!r}: local:N needs a number of workers N >= 1")
    return chosen


def jobqueue_cluster(kind: str, jobqueue: dict):
    """The dask-jobqueue cluster (not yet scaled) that ``jobqueue`` describes: SLURM or HTCondor.
    GPUs: ``--gres=gpu:<gpus>`` (SLURM) or ``request_gpus`` (HTCondor), one worker process per
    GPU with the abstract resource ``GPU=1`` (Dask does not know what a GPU is)."""
    jq = dict(jobqueue)
    gpus = int(jq.get("gpus", 0))
    if gpus > 1:
        raise ClusterError(f"cluster.jobqueue.gpus {gpus}: one GPU per job (the batch system then pins it); "
                           f"set jobqueue.jobs to the number of GPUs instead")
    cores = int(jq.get("cores", max(gpus, 1) * 4))
    # CPU jobs: single-threaded workers (Keras predict is not thread-safe); GPU jobs: one worker
    # per GPU, its tasks one at a time through the GPU=1 resource
    processes = int(jq.get("processes", gpus or cores))
    kw = dict(cores=cores, processes=processes, memory=jq.get("memory", "16GB"),
              walltime=jq.get("walltime", "04:00:00"), python=jq.get("python"),
              log_directory=jq.get("log_directory"), scheduler_options={"dashboard_address": ":0"})
    kw = {k: v for k, v in kw.items() if v is not None}
    extra_worker = ["--resources", "GPU=1"] if gpus else []
    if kind == "slurm":
        from dask_jobqueue import SLURMCluster
        directives = [f"--gres=gpu:{gpus}"] if gpus else []
        return SLURMCluster(queue=jq.get("queue"), account=jq.get("account"), job_extra_directives=directives,
                            worker_extra_args=extra_worker, **kw)
    if kind == "htcondor":
        from dask_jobqueue import HTCondorCluster
        return HTCondorCluster(disk=jq.get("disk", "10GB"), job_extra_directives={"request_gpus": str(gpus)} if gpus else {},
                               worker_extra_args=extra_worker, **kw)
    raise ClusterError(f"no batch system {kind!r} (known: slurm, htcondor)")


def job_script(profile: Profile, kind: str | None = None) -> str:
    """The batch script one worker job of the profile's cluster would run (rendered, never submitted)."""
    cfg = profile.cluster or {}
    kind = kind or cfg.get("where")
    with jobqueue_cluster(kind, cfg.get("jobqueue") or {}) as batch:  # its scheduler closed again
        return batch.job_script()


@contextmanager
def connect(profile: Profile | None, option: str | None = None):
    """Yield (client or None, a line naming the cluster and its dashboard) for the run's cluster;
    a cluster started here is closed on exit."""
    chosen = where(profile, option)
    if chosen == "none":
        yield None, "cluster: none (this machine; the simulator over its local cores)"
        return
    from distributed import Client, LocalCluster
    cluster = None
    if chosen.startswith("local:"):
        cluster = LocalCluster(n_workers=int(chosen.split(":", 1)[1]), threads_per_worker=1, processes=True,
                               dashboard_address=":0")
    elif chosen in ("slurm", "htcondor"):
        jq = (profile.cluster or {}).get("jobqueue") or {}
        cluster = jobqueue_cluster(chosen, jq)
        cluster.scale(jobs=int(jq.get("jobs", 1)))
    client = Client(cluster if cluster is not None else chosen)
    try:
        n = len(client.scheduler_info().get("workers", {}))
        yield client, f"cluster: {chosen} ({n} workers now), dashboard {client.dashboard_link}"
    finally:
        # a worker still tearing TensorFlow down when the cluster closes is killed after a few seconds;
        # distributed's nanny says so at WARNING level, which would reach the notebooks' reports
        nanny = logging.getLogger("distributed.nanny")
        level = nanny.level
        nanny.setLevel(logging.ERROR)
        try:
            client.close()
            if cluster is not None:
                cluster.close()
        finally:
            nanny.setLevel(level)


def executor(client):
    """The ``concurrent.futures`` executor of ``client`` (None: None, work runs here)."""
    return None if client is None else client.get_executor()
