"""The whole chain as a user runs it: run_all.sh on the smoke profile, once, into a temporary
folder (papermill executes every notebook); then each executed notebook is compared with the
committed one by nbval's output comparison (``nbcompare``), without a second execution. A
notebook whose kernel dies fails the run within a minute."""

import json
import re
import os
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest

import nbcompare
from emulsion_core.app import references
from emulsion_core.storage import paths, results
from emulsion_core.config import profiles

RUN_ALL = paths.REPO / "run_all.sh"
NOTEBOOKS = sorted(p.stem for p in paths.NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
# a finished ``run_all.sh --profile smoke --output DIR`` to check instead of running it (development)
REUSE_ENV = "EMULSION_SMOKE_OUTPUT"


def _run(args, root, env_extra=None, timeout=1200):
    env = {**os.environ, "EMULSION_VENV": str(Path(sys.prefix)), **(env_extra or {})}
    env.pop("TQDM_DISABLE", None)  # as a user runs it: run_all.sh itself keeps bars out of the reports
    return subprocess.run([str(RUN_ALL), *args, "--output", str(root)], capture_output=True, text=True, env=env,
                          timeout=timeout)


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """(output root, completed run_all.sh process or None when reused), run once per session."""
    if os.environ.get(REUSE_ENV):
        return Path(os.environ[REUSE_ENV]), None
    root = tmp_path_factory.mktemp("smoke")
    return root, _run(["--profile", "smoke"], root)


@pytest.mark.slow
def test_run_all_smoke_writes_every_output(smoke_run, monkeypatch):
    tmp_path, proc = smoke_run
    monkeypatch.setenv("EMULSION_DL_ROOT", str(tmp_path))  # results.path and the references read this run
    if proc is not None:
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    reports = tmp_path / "reports" / "smoke"
    assert NOTEBOOKS, "no notebooks found"
    for nb in NOTEBOOKS:
        assert (reports / f"{nb}.ipynb").exists()
        html = (reports / f"{nb}.html").read_text()
        assert "<html" in html and "Traceback" not in html
        # what reaches the collaboration reads cleanly: no progress-bar fragments, no library warnings
        assert not re.search(r"\d+%\|", html), f"{nb}: a progress bar in the report"
        assert not re.search(r"\w*Warning\b|WARNING", html), f"{nb}: a warning in the report: " + \
            re.search(r".{0,200}(\w*Warning\b|WARNING).{0,200}", html, re.S).group(0)
    index = (reports / "index.html").read_text()
    for needle in ("smoke", "20210622", "git commit", "numpy", "oneDNN"):
        assert needle in index
    # every registered figure (search_partial_dependence needs more calls than smoke makes)
    for name in sorted(set(results.FIGURES) - {"search_partial_dependence"}):
        assert results.figure("smoke", name).stat().st_size > 5000, name
        assert results.figure("smoke", name, "pdf").read_bytes()[:4] == b"%PDF", name
    clean = pd.read_csv(results.path("smoke", "clean_events"))
    assert set(clean["split"]) == {"train", "validation", "test", "test_bulk"}  # test_bulk: carbon at fog's depths
    flow = pd.read_csv(results.path("smoke", "cutflow"), index_col=0)
    assert (flow["left"] == clean.groupby("sample").size().reindex(flow.index)).all()
    assert (tmp_path / "data" / "smoke" / "splits.csv").exists()
    table1 = pd.read_csv(results.path("smoke", "table1"))
    assert set(table1["method"]) >= {"barshift", "shape", "newsnet", "border_control", "cluster_size"}
    assert list(table1.columns[:6]) == ["method", "sample", "split", "value", "err_low", "err_high"]
    c100 = table1[(table1["sample"] == "C100keV") & (table1["split"] == "validation")]
    # every method is compared at 30 % C100keV (a barely trained smoke network has tied scores: looser)
    assert ((c100["value"] - 0.30).abs() < c100["method"].map({"newsnet": 0.05}).fillna(0.012)).all()
    history = json.loads(results.path("smoke", "search_history").read_text())
    assert all(0.0 <= h["score"] <= 1.0 for h in history)
    calls = [h for h in history if not h["repeat"]]
    assert len(calls) == profiles.load("smoke").search["n_calls"]
    repeats = profiles.load("smoke").search["repeats"]
    assert [h["call"] for h in history if h["repeat"]] == [max(calls, key=lambda h: h["score"])["call"]] * repeats
    assert all(h["filters_1"] == 64 and h["decay_rate"] == 0.1 for h in history)  # not searched at smoke
    assert len(list(results.path("smoke", "final_fit").glob("epoch_*.keras"))) == profiles.load("smoke").training["epochs"]
    logs = results.path("smoke", "logs")  # TensorBoard: the final fit (with val_auc) and every search fold
    assert list((logs / "final" / "train").glob("events.out.tfevents.*")) and list(logs.glob("search/*/fold0/train/*"))
    assert "val_auc" in pd.read_csv(results.path("smoke", "final_fit") / "history.csv").columns
    export = results.path("smoke", "onnx_export")  # notebook 04 exports the final ensemble
    assert (export / "newsnet.onnx").stat().st_size > 10000
    assert json.loads((export / "newsnet.json").read_text())["cut"]["log_odds"] == \
        json.loads(results.path("smoke", "newsnet_threshold").read_text())["value"]
    scores = pd.read_csv(results.path("smoke", "scores"))
    assert np.isfinite(scores["score"]).all() and scores["p_signal"].between(0, 1).all()  # score: log-odds
    assert set(scores["split"]) == {"validation", "test", "test_bulk"}
    assert ((table1["value"] >= 0) & (table1["value"] <= 1)).all()
    # the numbers the notebooks produced, by name, against tests/references/smoke.json (tolerances:
    # emulsion_core.app.references.TOLERANCES; after an intended change: python -m emulsion_core references --profile smoke --refresh)
    mismatches = references.compare(references.named_numbers("smoke"),
                                    references.read_reference(references.reference_path("smoke")))
    assert not mismatches, "\n".join(mismatches)


@pytest.mark.slow
@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_executed_notebook_matches_the_committed_outputs(smoke_run, notebook):
    """What ``pytest --nbval`` checked, on the notebooks run_all.sh executed: every cell not
    tagged ``nbval-ignore-output`` prints what the committed notebook holds (after
    tests/nbval_sanitize.cfg). After a change of printed numbers: scripts/refresh_notebooks.py."""
    executed = smoke_run[0] / "reports" / "smoke" / f"{notebook}.ipynb"
    assert executed.exists(), f"{notebook} was not executed: run_all.sh stopped before it"
    problems = nbcompare.compare(paths.NOTEBOOKS / f"{notebook}.ipynb", executed)
    assert not problems, "\n\n".join(problems)


def test_a_dead_kernel_fails_the_run_within_a_minute(tmp_path):
    """A notebook whose kernel is killed (as a crash in native code kills it) stops run_all.sh
    with an error that names it, in seconds: papermill raises DeadKernelError, nothing waits for
    a cell timeout."""
    folder = tmp_path / "notebooks"
    folder.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell('profile = "smoke"', metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)"),
                nbformat.v4.new_code_cell("print('never')")]
    nbformat.write(nb, folder / "01_dies.ipynb")
    # the oneDNN self-test (once per machine, ~1 min the first time) is not what is timed here
    subprocess.run([sys.executable, "-m", "emulsion_core", "onednn"], capture_output=True, check=True)
    t0 = time.perf_counter()
    proc = _run(["--profile", "smoke", "--notebook-dir", str(folder)], tmp_path / "out", timeout=300)
    elapsed = time.perf_counter() - t0
    assert proc.returncode != 0
    assert "kernel of notebook 01_dies died" in proc.stderr, proc.stderr[-3000:]
    # the whole run_all.sh (simulating the smoke dataset included) in under a minute
    assert elapsed < 60, elapsed


def test_run_all_rejects_a_bad_profile(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text((paths.PACKAGE / "profiles" / "smoke.yaml").read_text() + "\nepochs: 3\n")
    proc = _run(["--profile", str(bad)], tmp_path / "out")
    assert proc.returncode != 0
    assert "'epochs'" in proc.stderr
