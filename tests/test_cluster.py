"""Where work runs (issue 18): the profile's cluster section, the --cluster option, a rendered (never
submitted) SLURM GPU job, and the simulation on a 2-worker Dask LocalCluster writing the same files
as without one."""


import pytest
import yaml

from emulsion_core.app import cluster, prepare
from emulsion_core.config import profiles
from emulsion_core.config.profiles import ProfileError
from given_scans import scan_contents

SMOKE = yaml.safe_load(profiles.PROFILE_DIR.joinpath("smoke.yaml").read_text())


def _profile(section, **changes):
    return profiles.from_dict({**SMOKE, **changes, "cluster": section})


def test_the_cluster_section_is_validated():
    assert _profile({}).cluster == {"where": "none", "jobqueue": {}}
    assert _profile({"where": "local:2"}).cluster["where"] == "local:2"
    with pytest.raises(ProfileError, match="cluster.where"):
        _profile({"where": "kubernetes"})
    with pytest.raises(ProfileError, match="cluster.jobqueue.gpu"):
        _profile({"where": "slurm", "jobqueue": {"gpu": 1}})
    with pytest.raises(ProfileError, match="cluster.jobqueue.cores"):
        _profile({"where": "slurm", "jobqueue": {"cores": 0}})


def test_the_option_wins_over_the_profile_and_bad_names_are_refused():
    p = _profile({"where": "local:2"})
    assert cluster.where(p) == "local:2" and cluster.where(p, "none") == "none"
    assert cluster.where(None) == "none"
    for bad in ("local:0", "local:x", "yarn"):
        with pytest.raises(cluster.ClusterError, match=bad):
            cluster.where(p, bad)


def test_a_slurm_gpu_job_is_rendered_with_its_gpu_memory_and_walltime_lines():
    p = _profile({"where": "slurm", "jobqueue": {"queue": "gpu", "cores": 8, "memory": "32GB", "gpus": 1,
                                                 "walltime": "02:00:00", "python": "/opt/env/bin/python"}})
    script = cluster.job_script(p).splitlines()
    assert "#SBATCH --gres=gpu:1" in script and "#SBATCH -t 02:00:00" in script and "#SBATCH -p gpu" in script
    assert "#SBATCH --mem=30G" in script  # 32 GB = 29.8 GiB, as dask-jobqueue writes it
    worker = next(line for line in script if "dask_worker" in line)
    assert worker.startswith("/opt/env/bin/python ") and "--resources GPU=1" in worker and "--nthreads 8" in worker


def test_a_slurm_cpu_job_has_single_threaded_workers():
    p = _profile({"where": "slurm", "jobqueue": {"cores": 4, "memory": "8GB", "walltime": "01:00:00"}})
    script = cluster.job_script(p)
    assert "--gres" not in script and "--nthreads 1" in script and "--nworkers 4" in script and "GPU" not in script



@pytest.mark.slow
def test_simulation_on_a_local_cluster_writes_the_same_files(tmp_path, monkeypatch):
    events = {"rotated": {s: 600 for s in SMOKE["samples"]}, "test": {s: 700 for s in SMOKE["samples"]}}
    p = _profile({}, events=events, block_size=256)
    folders = {}
    for where in ("none", "local:2"):
        monkeypatch.setenv("EMULSION_DL_ROOT", str(tmp_path / where.replace(":", "_")))
        lines = []
        prepare.simulate(p, progress=False, workers=1, cluster=where, log=lines.append)
        folders[where] = tmp_path / where.replace(":", "_") / "data" / p.dataset
        assert (where == "none") == (not lines)
        if lines:
            assert lines[0].startswith("cluster: local:2 (2 workers now), dashboard http")
    assert scan_contents(folders["local:2"]) == scan_contents(folders["none"])


@pytest.mark.slow
def test_parallel_predict_equals_serial_predict_bit_for_bit(tmp_path):
    from distributed import Client, LocalCluster

    from emulsion_core.networks import models
    from emulsion_core.networks.predict import predict_files
    from emulsion_core.simulator.simulate import simulate_scan
    model = tmp_path / "tiny.keras"
    net = models.compact_3d(filters=(4, 8))
    net.compile(optimizer="adam", loss=models.CombinedLoss(0.5))
    net.save(model)
    files = [simulate_scan(tmp_path / f"{s}_test.h5", s, "test", n, seed=2) for s, n in
             (("C30keV", 300), ("fog", 200), ("C100keV", 250))]
    bad = tmp_path / "broken.h5"
    bad.write_text("not hdf5")
    inputs = [files[0], bad, files[1], files[2]]
    predict_files([model], inputs, tmp_path / "serial.csv", on_error="skip", progress=False)
    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=":0") as lc, Client(lc) as client:
        result = predict_files([model], inputs, tmp_path / "parallel.csv", on_error="skip",
                               executor=client.get_executor())
        workers = client.run(lambda: __import__("os").getpid())
    assert result == {"scored": 750, "failed": [str(bad)]} and len(workers) == 2
    assert (tmp_path / "parallel.csv").read_bytes() == (tmp_path / "serial.csv").read_bytes()
    assert not (tmp_path / "parallel.csv.shards").exists()


def test_more_than_one_gpu_per_job_is_refused():
    p = _profile({"where": "slurm", "jobqueue": {"gpus": 2}})
    with pytest.raises(cluster.ClusterError, match="one GPU per job"):
        cluster.job_script(p)
