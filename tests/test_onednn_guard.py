"""The oneDNN guard (issue 10 item 1): a self-test that dies switches oneDNN off before
TensorFlow is imported, says so, is cached per machine, and shows in the report index.

The guard's failure path is tested by forcing the self-test's children to abort
(``EMULSION_ONEDNN_SELFTEST_FAIL=1``), so it is tested on machines without the fault too.
"""

import json
import os
import subprocess
import sys

import pytest

from emulsion_core.networks import onednn_guard
from emulsion_core.storage import paths

PROBE = """
import os
import emulsion_core.networks.tf_quiet  # the guard runs here, before TensorFlow is imported
from tensorflow.python.util import _pywrap_util_port
from emulsion_core.app import report
from emulsion_core.config import profiles
from emulsion_core.networks import onednn_guard
print("env", os.environ.get("TF_ENABLE_ONEDNN_OPTS"), "mkl", _pywrap_util_port.IsMklEnabled())
print("describe", onednn_guard.describe())
index = report.write_index(profiles.load("smoke"), [])
print("index", [line for line in index.read_text().splitlines() if "oneDNN" in line])
"""


def _probe(tmp_path, **env_extra):
    env = {k: v for k, v in os.environ.items()
           if k not in (onednn_guard.ONEDNN_ENV, onednn_guard.CHILD_ENV, onednn_guard.SET_BY_GUARD_ENV)}
    env.update(EMULSION_DL_CACHE=str(tmp_path / "cache"), EMULSION_DL_ROOT=str(tmp_path / "out"),
               PYTHONPATH=str(paths.REPO) + os.pathsep + env.get("PYTHONPATH", ""), **env_extra)
    return subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, timeout=600)


def test_a_self_test_that_dies_switches_onednn_off_once_per_machine(tmp_path):
    first = _probe(tmp_path, EMULSION_ONEDNN_SELFTEST_FAIL="1")
    assert first.returncode == 0, first.stderr[-3000:]
    assert "env 0 mkl False" in first.stdout  # TensorFlow was imported with oneDNN off
    assert "testing TensorFlow's oneDNN" in first.stderr
    assert "died with SIGABRT" in first.stderr and "TF_ENABLE_ONEDNN_OPTS=0" in first.stderr  # said in the log
    assert "oneDNN OFF" in first.stdout.split("describe", 1)[1]
    index_line = first.stdout.split("index", 1)[1]
    assert "oneDNN OFF" in index_line and "SIGABRT" in index_line  # and in the report index
    cached = json.loads(next((tmp_path / "cache").glob("onednn-selftest-*.json")).read_text())
    assert cached["passed"] is False and cached["signal"] == "SIGABRT" and cached["cpu"]
    # the second process reads the cache: no self-test, oneDNN off again
    second = _probe(tmp_path, EMULSION_ONEDNN_SELFTEST_FAIL="1")
    assert second.returncode == 0, second.stderr[-3000:]
    assert "env 0 mkl False" in second.stdout
    assert "testing TensorFlow's oneDNN" not in second.stderr


def test_the_self_test_runs_to_its_end_here():
    """The workload self-test is a working program: it finishes (or dies by a signal on a CPU
    where our avoidance is not enough), never with a Python error."""
    result = onednn_guard.run_selftest("workload")
    assert result["passed"] is not None, result["detail"]


def test_the_cache_is_keyed_by_cpu_and_versions(tmp_path, monkeypatch):
    here = onednn_guard.cache_file(tmp_path)
    key = onednn_guard.machine_key()
    assert key["tensorflow"] != "none" and key["python"]
    monkeypatch.setattr(onednn_guard, "machine_key", lambda: {**key, "cpu_flags": key["cpu_flags"] + " amx_tile"})
    assert onednn_guard.cache_file(tmp_path) != here


def test_a_setting_made_by_the_user_is_kept(tmp_path, monkeypatch):
    monkeypatch.setenv(onednn_guard.ONEDNN_ENV, "1")
    status = onednn_guard.ensure(tmp_path)
    assert status.onednn and "set by the environment" in status.reason
    assert not list(tmp_path.iterdir())  # no self-test ran


def test_training_stops_where_tensorflow_came_first_on_a_faulty_machine(tmp_path):
    """TensorFlow imported with oneDNN on (as in this process) on a machine whose cached
    self-test died: training refuses to start instead of crashing later."""
    from tensorflow.python.util import _pywrap_util_port
    if not _pywrap_util_port.IsMklEnabled():
        pytest.skip("oneDNN is off in this process")
    path = onednn_guard.cache_file(tmp_path)
    path.write_text(json.dumps({"passed": False, "signal": "SIGABRT", "returncode": -6}))
    with pytest.raises(RuntimeError, match="restart"):
        onednn_guard.require_safe(tmp_path)
    path.write_text(json.dumps({"passed": True}))
    onednn_guard.require_safe(tmp_path)
