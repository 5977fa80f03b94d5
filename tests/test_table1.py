"""Table 1 in one module: the working point, the row schema, the atomic merge of methods, the
formatted table and the paper's values beside ours."""

import numpy as np
import pandas as pd
import pytest

from emulsion_core.analyses import table1


def test_table1_rows_and_merge(tmp_path, monkeypatch):
    from emulsion_core.config import profiles
    monkeypatch.setenv("EMULSION_DL_ROOT", str(tmp_path))
    n = 1000
    table = pd.DataFrame({"sample": ["C30keV"] * n + ["C100keV"] * n + ["fog"] * n,
                          "split": (["validation"] * (n // 2) + ["test"] * (n // 2)) * 3,
                          "score": np.tile(np.arange(n) % 500 / 500.0, 3)})
    table.loc[table["sample"] == "fog", "score"] = -1.0  # no fog passes
    t, lo, hi = table1.reference_cut(table, "score")
    assert t == pytest.approx(0.7, abs=0.003)
    rows = table1.rows(table, "barshift", "score", t)
    fog = rows[rows["sample"] == "fog"]
    assert (fog["passed"] == 0).all() and np.allclose(fog["upper_limit"], 1 - 0.1 ** (1 / 500))
    p = profiles.load("smoke")
    table1.record(rows, p)
    table1.record(rows.assign(method="shape"), p)
    table1.record(rows.assign(method="shape", value=0.5), p)  # replaces, not appends
    merged = table1.read(p)
    assert len(merged) == 12 and set(merged["method"]) == {"barshift", "shape"}
    shown = table1.formatted(merged)
    assert shown.loc["fog", ("barshift", "test")].startswith("< 0.0046")
    assert shown.loc["C30keV", ("newsnet", "test")] == "not run"


def test_record_refuses_rows_outside_the_schema_and_leaves_no_temporary_file(tmp_path, monkeypatch):
    from emulsion_core.config import profiles
    monkeypatch.setenv("EMULSION_DL_ROOT", str(tmp_path))
    p = profiles.load("smoke")
    with pytest.raises(ValueError, match="err_high"):
        table1.record(pd.DataFrame({"method": ["x"], "sample": ["fog"], "split": ["test"], "value": [0.1],
                                    "err_low": [0.01]}), p)
    rows = pd.DataFrame([{"method": "barshift", "sample": "fog", "split": "test", "value": 0.25, "err_low": 0.01,
                          "err_high": 0.01, "passed": 25, "total": 100, "upper_limit": 0.3}])
    path = table1.record(rows, p)
    assert path == tmp_path / "results" / "smoke" / "table1.csv"
    assert [f.name for f in path.parent.iterdir()] == ["table1.csv"]


def test_ours_beside_the_papers_with_the_pull():
    """The paper's barshift fog fraction is 0.25 +- 0.01: 0.27 is a pull of +2."""
    rows = pd.DataFrame([{"method": "barshift", "sample": "fog", "split": "validation", "value": 0.27,
                          "err_low": 0.02, "err_high": 0.02}])
    out = table1.beside_paper(rows)
    assert out.loc[("barshift", "fog", "validation"), "pull"] == pytest.approx(2.0)
    assert out.loc[("barshift", "fog", "validation"), "paper"].startswith("0.25")
    assert len(out) == 1  # only what both hold
    assert table1.paper_table().loc["fog", ("newsnet", "test")].startswith("0.00027")


def test_samples_for_a_class_list_put_the_papers_three_first():
    assert table1.samples_for(["C30keV", "C60keV", "C100keV", "fog", "gamma"]) == (
        "C30keV", "C100keV", "fog", "C60keV", "gamma")
