"""run_all.sh as a user runs it on their own files: an edited profile YAML outside the repository
reaches every notebook, and notebooks 01-02 run on scans another program wrote, leaving them intact."""

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pandas as pd
import pytest
import yaml
from given_scans import checksums, foreign_scan, write_profile

from emulsion_core.storage import paths

RUN_ALL = paths.REPO / "run_all.sh"


def _run_all(args, root):
    env = {**os.environ, "EMULSION_VENV": str(Path(sys.prefix)), "TQDM_DISABLE": "1"}
    return subprocess.run([str(RUN_ALL), *args, "--output", str(root)], capture_output=True, text=True, env=env,
                          timeout=1200)


def _outputs(notebook: Path) -> str:
    nb = nbformat.read(notebook, as_version=4)
    return "\n".join(str(o.get("text", "")) + str(o.get("data", {}).get("text/plain", ""))
                     for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))


@pytest.mark.slow
def test_an_edited_profile_outside_the_repository_reaches_the_notebooks(tmp_path):
    """The user's copy of smoke.yaml, edited: the notebook must run with it, not with the shipped
    smoke.yaml of the same name (which papermill's -f once made it reload)."""
    raw = yaml.safe_load((paths.PACKAGE / "profiles" / "smoke.yaml").read_text())
    raw.update(description="edited outside the repository", seed=7, samples=["C30keV", "C100keV", "fog"],
               events={"rotated": {"C30keV": 40, "C100keV": 40, "fog": 80},
                       "test": {"C30keV": 40, "C100keV": 40, "fog": 80}})
    edited = tmp_path / "mine" / "smoke.yaml"
    edited.parent.mkdir()
    edited.write_text(yaml.safe_dump(raw))
    out = tmp_path / "out"
    proc = _run_all(["--profile", str(edited), "--notebooks", "01"], out)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    text = _outputs(out / "reports" / "smoke" / "01_data_cleaning.ipynb")
    assert "edited outside the repository (seed 7)" in text
    assert len(pd.read_csv(out / "data" / "smoke" / "splits.csv")) == 4 * 160 + 160
    assert sorted(p.name for p in (out / "data").iterdir()) == ["smoke"]  # no smoke-seed<N> run beside it
    assert not (out / "reports" / "smoke" / "02_baseline_barshift.ipynb").exists()  # --notebooks 01


@pytest.mark.slow
def test_run_all_notebooks_01_02_on_scans_another_program_wrote(tmp_path):
    out, scratch = tmp_path / "out", tmp_path / "scratch"
    folder = out / "data" / "foreign"
    for k, sample in enumerate(("C30keV", "C100keV", "fog")):
        for j, scan in enumerate(("rot0", "rot90", "test")):
            foreign_scan(folder / f"{sample}_{scan}.h5", sample, scan, 200, 40 + 3 * k + j, scratch)
    profile = write_profile(tmp_path / "foreign.yaml", "foreign", "foreign", ("C30keV", "C100keV", "fog"), 50, 50)
    before = checksums(folder)
    env = {**os.environ, "EMULSION_DL_ROOT": str(out)}
    sim = subprocess.run([sys.executable, "-m", "emulsion_core", "simulate", "--profile", str(profile)],
                         capture_output=True, text=True, env=env, timeout=300)
    assert sim.returncode == 2 and "C30keV_rot0.h5" in sim.stderr and "did not write" in sim.stderr
    assert checksums(folder) == before
    proc = _run_all(["--profile", str(profile), "--notebooks", "01,02"], out)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "9 scan file(s) the simulator did not write" in proc.stdout
    after = checksums(folder)
    assert {k: after[k] for k in before} == before and set(after) == set(before) | {"splits.csv"}
    results = out / "results" / "foreign"
    flow = pd.read_csv(results / "cutflow.csv", index_col=0)
    assert flow["in"].sum() == 9 * 200
    table1 = pd.read_csv(results / "table1.csv")
    assert set(table1["method"]) == {"barshift", "border_control", "cluster_size"} and len(table1) == 18
    assert (out / "figures" / "foreign" / "fig3_barshift.png").stat().st_size > 5000
