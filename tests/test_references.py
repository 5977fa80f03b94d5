"""Named numbers of a run against a reference: equal numbers pass, a changed one fails with its
name and both values, network counts move within their binomial tolerance, missing ones fail."""

import json
import subprocess
import sys

import pandas as pd
import pytest

from emulsion_core.app import references
from emulsion_core.app.cli import main
from emulsion_core.storage import paths, results

PROFILE = "tiny"


def _table1_rows():
    rows = []
    for method, passed in (("barshift", {"C100keV": 30, "fog": 20}), ("newsnet", {"C100keV": 30, "fog": 49})):
        for sample, k in passed.items():
            rows.append({"method": method, "sample": sample, "split": "validation", "value": k / 100,
                         "err_low": 0.04, "err_high": 0.05, "passed": k, "total": 100, "upper_limit": 0.4})
    return pd.DataFrame(rows)


@pytest.fixture
def run(tmp_path, monkeypatch):
    """A small finished run of profile ``tiny`` under tmp_path: Table 1, two cuts, a cut flow, an
    audit and a search history."""
    monkeypatch.setenv("EMULSION_DL_ROOT", str(tmp_path))
    _table1_rows().to_csv(results.path(PROFILE, "table1"), index=False)
    for key, value in (("barshift_threshold", 33.5), ("newsnet_threshold", 3.0)):
        results.path(PROFILE, key).write_text(json.dumps({"value": value, "low": value - 1, "high": value + 1}))
    pd.DataFrame({"sample": ["C100keV", "fog"], "in": [950, 3200], "too_bright": [58, 216], "left": [763, 1046],
                  "yield": [763 / 950, 1046 / 3200], "yield (68% CL)": ["0.80 ± 0.01", "0.33 ± 0.01"]}
                 ).to_csv(results.path(PROFILE, "cutflow"), index=False)
    pd.DataFrame({"comparison": ["C100keV vs fog", "fog: rot45 vs rot90 (null)"], "n_a": [479, 236],
                  "n_b": [610, 159], "background_adu": [0.53, 0.54], "max_any": [0.66, 0.59]}
                 ).to_csv(results.path(PROFILE, "artefact_audit"), index=False)
    history = [{"call": 0, "score": 0.66, "repeat": False}, {"call": 1, "score": 0.55, "repeat": False},
               {"call": 0, "score": 0.68, "repeat": True, "replica": 1}]
    results.path(PROFILE, "search_history").write_text(json.dumps(history))
    return tmp_path


def test_named_numbers_read_every_result_by_name(run):
    found = references.named_numbers(PROFILE)
    assert found["table1.barshift.fog.validation.value"] == 0.2
    assert found["table1.newsnet.fog.validation.passed"] == 49
    assert found["cut.barshift_nm"] == 33.5 and found["cut.newsnet_log_odds.low"] == 2.0
    assert found["cutflow.fog.left"] == 1046 and not any("68" in name for name in found)
    assert found["audit.fog_rot45_vs_rot90_null.n_b"] == 159 and found["audit.max_auc"] == 0.66
    assert found["search.calls"] == 2 and found["search.repeats"] == 1
    assert found["search.best_score"] == 0.66 and found["search.repeat_1.score"] == 0.68
    assert not any(name.startswith(("cut.shape", "architectures.")) for name in found)  # not run: absent


def test_equal_numbers_pass(run, tmp_path):
    file = references.write_reference(PROFILE, tmp_path / "ref" / f"{PROFILE}.json")
    assert json.loads(file.read_text())["profile"] == PROFILE
    assert references.compare(references.named_numbers(PROFILE), references.read_reference(file)) == []


def test_a_changed_table1_value_fails_with_its_name_and_both_values(run, tmp_path):
    reference = references.named_numbers(PROFILE)
    table = pd.read_csv(results.path(PROFILE, "table1"))
    table.loc[(table["method"] == "barshift") & (table["sample"] == "fog"), "value"] = 0.21
    table.to_csv(results.path(PROFILE, "table1"), index=False)
    problems = references.compare(references.named_numbers(PROFILE), reference)
    assert len(problems) == 1
    assert "table1.barshift.fog.validation.value" in problems[0]
    assert "0.2" in problems[0] and "0.21" in problems[0] and "round-off" in problems[0]


def test_a_network_count_moves_within_its_binomial_tolerance():
    reference = {"table1.newsnet.fog.test.passed": 49, "table1.newsnet.fog.test.total": 400,
                 "table1.newsnet.fog.test.value": 49 / 400, "table1.newsnet.C30keV.test.passed": 0}
    inside = {**reference, "table1.newsnet.fog.test.passed": 70, "table1.newsnet.fog.test.value": 70 / 400,
              "table1.newsnet.C30keV.test.passed": 2}  # 3 sqrt(49) = 21 events; at least 2
    assert references.compare(inside, reference) == []
    outside = {**reference, "table1.newsnet.fog.test.passed": 71, "table1.newsnet.fog.test.value": 71 / 400,
               "table1.newsnet.C30keV.test.passed": 3}
    problems = references.compare(outside, reference)
    assert [p.split(":")[0] for p in problems] == ["table1.newsnet.C30keV.test.passed",
                                                   "table1.newsnet.fog.test.passed", "table1.newsnet.fog.test.value"]
    assert "49" in problems[1] and "71" in problems[1] and "sqrt(passed)" in problems[1]


def test_a_conventional_count_must_match_exactly():
    reference = {"table1.barshift.fog.test.passed": 100, "cutflow.fog.left": 1046, "search.calls": 2}
    found = {"table1.barshift.fog.test.passed": 101, "cutflow.fog.left": 1045, "search.calls": 3}
    assert len(references.compare(found, reference)) == 3


def test_a_missing_quantity_fails(run):
    reference = references.named_numbers(PROFILE)
    results.path(PROFILE, "barshift_threshold").unlink()
    problems = references.compare(references.named_numbers(PROFILE), reference)
    assert len(problems) == 3 and all("missing from this run" in p for p in problems)
    assert problems[0].startswith("cut.barshift_nm: missing from this run (reference 33.5)")
    extra = references.compare({**reference, "cut.new": 1.0}, reference)
    assert len(extra) == 1 and extra[0].startswith("cut.new: not in the reference")


def test_the_command_compares_and_refreshes(run, tmp_path, capsys):
    file = tmp_path / "ref.json"
    assert main(["references", "--profile", PROFILE, "--reference", str(file)]) == 2  # no reference yet
    assert main(["references", "--profile", PROFILE, "--reference", str(file), "--refresh"]) == 0
    assert main(["references", "--profile", PROFILE, "--reference", str(file)]) == 0
    results.path(PROFILE, "newsnet_threshold").write_text(json.dumps({"value": 4.0, "low": 2.0, "high": 4.0}))
    assert main(["references", "--profile", PROFILE, "--reference", str(file)]) == 1
    assert "cut.newsnet_log_odds: reference 3.0, this run 4.0" in capsys.readouterr().out


def test_the_committed_references_state_a_tolerance_for_every_number():
    """Independent of any run: each tests/references/<profile>.json names its profile, is sorted, and
    every number in it has a tolerance with a reason (not the unstated default)."""
    files = sorted(references.REFERENCES.glob("*.json"))
    assert paths.REPO / "tests" / "references" / "smoke.json" in files
    for file in files:
        raw = json.loads(file.read_text())
        assert raw["profile"] == file.stem
        numbers = references.read_reference(file)
        assert list(numbers) == sorted(numbers) and numbers
        unstated = [n for n in numbers if references.tolerance(n) is references._UNSTATED]
        assert not unstated, f"{file.name}: no tolerance stated for {unstated[:5]}"
        assert references.compare(numbers, numbers) == []
    assert all(t.reason for t in references.TOLERANCES.values())


def test_reading_references_needs_no_tensorflow():
    code = "import sys, emulsion_core.app.references; assert 'tensorflow' not in sys.modules, 'tensorflow'"
    subprocess.run([sys.executable, "-c", code], check=True)
