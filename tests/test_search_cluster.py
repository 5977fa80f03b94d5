"""The search on a 2-worker Dask LocalCluster (issue 18): trials overlap; batch mode gives the serial
history whatever order trials finish in and resumes to it after the driver and its workers are
killed; async mode refills slots, resumes repeating no finished trial, and its history replays."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import cloudpickle
import numpy as np
import pandas as pd
import pytest

from emulsion_core.networks import search

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO), "TQDM_DISABLE": "1"}
DIMS = ["learning_rate", "dropout_1", "n_identity"]
COLUMNS = DIMS + ["score", "call", "batch"]
cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers do not import tests/


def slow_toy(params, replica=0):
    """A smooth score of the searched parameters after an uneven wait (0.2-0.8 s)."""
    u = np.array([np.log10(params["learning_rate"]) + 4.5, params["dropout_1"], params["n_identity"] / 4.0])
    time.sleep(0.2 + 0.6 * (params["dropout_1"] % 1.0))
    return float(1.0 - np.sum((u - 0.4) ** 2) + 1e-3 * replica)


@pytest.fixture(scope="module")
def client():
    from distributed import Client, LocalCluster
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster, \
            Client(cluster) as c:
        yield c


def _overlap(history: pd.DataFrame) -> bool:
    h = history.sort_values("start")
    return bool((h["start"].to_numpy()[1:] < h["end"].to_numpy()[:-1]).any())


@pytest.mark.slow
def test_batch_search_on_a_cluster_overlaps_and_gives_the_serial_history(client):
    kw = dict(n_calls=6, n_initial_points=4, seed=11, progress=False, dimensions=DIMS, batch_size=2)
    serial = search.run(slow_toy, **kw)
    parallel = search.run(slow_toy, **kw, executor=client.get_executor())
    assert _overlap(parallel) and parallel["worker"].nunique() == 2 and not _overlap(serial)
    np.testing.assert_array_equal(parallel[COLUMNS].to_numpy(float), serial[COLUMNS].to_numpy(float))


DRIVER = textwrap.dedent("""
    import sys, time
    import numpy as np
    from distributed import Client, LocalCluster
    from emulsion_core.networks import search
    def slow_toy(params, replica=0):
        u = np.array([np.log10(params["learning_rate"]) + 4.5, params["dropout_1"], params["n_identity"] / 4.0])
        time.sleep(0.2 + 0.6 * (params["dropout_1"] % 1.0))
        with open(sys.argv[3], "a") as log:
            log.write(f"{params['learning_rate']!r}\\n")
        return float(1.0 - np.sum((u - 0.4) ** 2))
    if __name__ == "__main__":
        with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=":0") as cluster, Client(cluster) as c:
            search.run(slow_toy, n_calls=8, n_initial_points=4, seed=11, checkpoint=sys.argv[1], progress=False,
                       dimensions=["learning_rate", "dropout_1", "n_identity"], batch_size=2, mode=sys.argv[2],
                       executor=c.get_executor())
""")


def _kill_after(tmp_path, mode: str, finished: int) -> tuple[Path, Path]:
    """Run the search in a driver process with its own 2-worker cluster and SIGKILL it (driver and
    workers) once ``finished`` calls are saved."""
    script, history, log = tmp_path / "driver.py", tmp_path / f"{mode}.json", tmp_path / f"{mode}.log"
    script.write_text(DRIVER)
    driver = subprocess.Popen([sys.executable, str(script), str(history), mode, str(log)], env=ENV,
                              start_new_session=True)
    while driver.poll() is None:
        rows = json.loads(history.read_text()) if history.exists() else []
        if sum(r.get("score") is not None for r in rows) >= finished:
            break
        time.sleep(0.05)
    os.killpg(driver.pid, signal.SIGKILL)  # the driver and its cluster's workers
    driver.wait()
    return history, log


@pytest.mark.slow
def test_batch_search_killed_with_its_workers_resumes_to_the_unbroken_history(tmp_path, client):
    history, _ = _kill_after(tmp_path, "batch", 3)
    saved = json.loads(history.read_text())
    assert 3 <= len(saved) < 8
    kw = dict(n_calls=8, n_initial_points=4, seed=11, progress=False, dimensions=DIMS, batch_size=2)
    resumed = search.run(slow_toy, checkpoint=history, executor=client.get_executor(), **kw)
    unbroken = search.run(slow_toy, **kw)
    np.testing.assert_array_equal(resumed[COLUMNS].to_numpy(float), unbroken[COLUMNS].to_numpy(float))


def refuse(params, replica=0):
    raise AssertionError("a finished async history must replay without evaluating anything")


@pytest.mark.slow
def test_async_search_resumes_repeating_no_finished_trial_and_replays(tmp_path, client):
    import warnings
    history, log = _kill_after(tmp_path, "async", 3)
    before = {r["call"]: r for r in json.loads(history.read_text()) if r.get("score") is not None}
    assert len(before) >= 3
    evaluated_before = log.read_text().splitlines()
    kw = dict(n_calls=8, n_initial_points=4, seed=11, progress=False, dimensions=DIMS, batch_size=2, mode="async")
    resumed = search.run(slow_toy, checkpoint=history, executor=client.get_executor(), **kw)
    calls = search.calls_of(resumed)
    assert len(calls) == 8 and sorted(calls["told"].astype(int)) == list(range(8))
    for call, row in before.items():  # finished trials kept as they were
        kept = calls[calls["call"] == call].iloc[0]
        assert kept["score"] == row["score"] and kept["told"] == row["told"] and kept["worker"] == row["worker"]
    # each finished trial ran once: the driver's log (finished trials) holds no trial the resumed search ran
    assert len(evaluated_before) == len(before)
    # slots were refilled: some call was asked before every earlier call had been told
    assert (calls["asked_after"].astype(int) < calls["call"].astype(int)).any()
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="the replay")
        replayed = search.run(refuse, checkpoint=history, **kw)
    pd.testing.assert_frame_equal(replayed, resumed)
