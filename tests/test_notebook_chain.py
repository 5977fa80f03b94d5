"""The notebook driver of run_all.sh (emulsion_core/app/notebooks.py): order, selection, and a
failing notebook stopping the chain with its error, what ran rendered and indexed."""

import io

import nbformat

from emulsion_core.app import notebooks
from emulsion_core.config import profiles


def _notebook(path, *sources):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell('profile = "smoke"', metadata={"tags": ["parameters"]})]
    nb.cells += [nbformat.v4.new_code_cell(s) for s in sources]
    nbformat.write(nb, path)


def test_the_chain_is_ordered_and_selected_by_prefix(tmp_path):
    for name in ("02_b", "01_a", "10_c", "notes", "3_bad"):
        (tmp_path / f"{name}.ipynb").write_text("{}")
    assert [p.stem for p in notebooks.chain(tmp_path)] == ["01_a", "02_b", "10_c"]
    assert [p.stem for p in notebooks.chain(tmp_path, "10,01")] == ["01_a", "10_c"]
    assert notebooks.chain(tmp_path, "05") == []


def test_a_failing_notebook_stops_the_chain_with_its_error_and_cell(tmp_path, monkeypatch):
    monkeypatch.setenv("EMULSION_DL_ROOT", str(tmp_path / "out"))
    folder = tmp_path / "nbs"
    folder.mkdir()
    _notebook(folder / "01_fine.ipynb", "print('one')")
    _notebook(folder / "02_fails.ipynb", "x = 1", "raise ValueError('the scan file lacks its splits')")
    _notebook(folder / "03_never.ipynb", "print('three')")
    profile = profiles.load("smoke")
    out, err = io.StringIO(), io.StringIO()
    status = notebooks.run(profile, profile.path, folder, out=out, err=err)
    assert status == 1
    assert out.getvalue().split() == ["==", "01_fine", "==", "02_fails"]
    assert "notebook 02_fails failed" in err.getvalue()
    assert "ValueError: the scan file lacks its splits" in err.getvalue()
    assert "raise ValueError" in err.getvalue()  # the cell it came from
    reports = tmp_path / "out" / "reports" / "smoke"
    assert (reports / "01_fine.html").exists() and (reports / "02_fails.html").exists()
    assert not (reports / "03_never.ipynb").exists()
    index = (reports / "index.html").read_text()
    assert "01_fine.html" in index and "02_fails.html" in index and "03_never" not in index
