"""Results that know what made them: every cache and finished artefact is keyed by its inputs and
the version of the code that computes it; a change in either recomputes, with one line saying why."""

import json

import pytest

from emulsion_core.config import profiles
from emulsion_core.storage import provenance


def _patched(monkeypatch, module):
    """Pretend ``module``'s code was edited: its source hash changes, every other stays."""
    real = provenance.source_hash

    def fake(name, *args):
        return "edited" + real(name, *args)[6:] if name == module else real(name, *args)

    monkeypatch.setattr(provenance, "source_hash", fake)


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    monkeypatch.setenv("EMULSION_DL_ROOT", str(tmp_path))
    from emulsion_core.app import prepare
    profile = profiles.from_dict({"profile": "tiny", "seed": 3, "dataset": "tiny", "samples": ["C100keV", "fog"],
                                  "events": {"rotated": {"C100keV": 60, "fog": 60}, "test": {"C100keV": 60, "fog": 60}},
                                  "block_size": 64})
    prepare.ensure_dataset(profile, progress=False)
    return profile


def test_editing_barshift_recomputes_the_conventional_cache(tiny, tmp_path, monkeypatch, capsys):
    from emulsion_core.analyses import conventional
    calls = []
    real = conventional.conventional_variables
    monkeypatch.setattr(conventional, "conventional_variables", lambda *a, **k: calls.append(1) or real(*a, **k))
    first = conventional.variables(tiny, progress=False)
    n_first = len(calls)
    assert n_first > 0
    capsys.readouterr()
    again = conventional.variables(tiny, progress=False)
    assert len(calls) == n_first  # from the cache
    assert again["barshift_nm"].equals(first["barshift_nm"])
    clean_record = provenance.read(tmp_path / "results" / "tiny" / "clean_events.csv")
    _patched(monkeypatch, "measure.barshift")
    conventional.variables(tiny, progress=False)
    assert len(calls) > n_first  # recomputed
    err = capsys.readouterr().err
    assert "recomputing results/tiny/conventional.csv: the code of measure/barshift.py changed" in err
    # the clean selection depends on barshift.py too: its all-8-polarisations cut links clusters with it
    assert "recomputing results/tiny/clean_events.csv: the code of measure/barshift.py changed" in err
    assert provenance.read(tmp_path / "results" / "tiny" / "clean_events.csv") != clean_record
    n_second = len(calls)
    conventional.variables(tiny, progress=False)
    assert len(calls) == n_second  # the new record holds


def test_editing_cleaning_recomputes_the_clean_selection_and_what_is_made_from_it(tiny, tmp_path, monkeypatch, capsys):
    from emulsion_core.analyses import conventional, network_analysis
    conventional.variables(tiny, progress=False)
    search_key = network_analysis.search_stamp(tiny)
    capsys.readouterr()
    _patched(monkeypatch, "measure.cleaning")
    conventional.variables(tiny, progress=False)
    err = capsys.readouterr().err
    assert "recomputing results/tiny/clean_events.csv: the code of measure/cleaning.py changed" in err
    assert "recomputing results/tiny/conventional.csv: clean_events changed" in err
    assert network_analysis.search_stamp(tiny) != search_key  # a search made before is not resumed


def test_search_and_fit_are_set_aside_when_their_code_changes(tiny, tmp_path, monkeypatch):
    from emulsion_core.analyses import network_analysis
    history = tmp_path / "search_history.json"
    network_analysis.resume_or_restart(history, network_analysis.search_stamp(tiny), "the search history")
    history.write_text("[]")
    network_analysis.resume_or_restart(history, network_analysis.search_stamp(tiny), "the search history")
    assert history.exists()  # same inputs and code: resumed
    fit_key = network_analysis.fit_stamp(tiny, {"learning_rate": 1e-3})
    _patched(monkeypatch, "networks.training")
    assert network_analysis.fit_stamp(tiny, {"learning_rate": 1e-3}) != fit_key
    with pytest.warns(UserWarning, match="the code of networks/training.py changed"):
        network_analysis.resume_or_restart(history, network_analysis.search_stamp(tiny), "the search history")
    assert not history.exists() and (tmp_path / "search_history.json.superseded").read_text() == "[]"


def test_editing_the_simulator_resimulates_its_scans(tmp_path, monkeypatch, capsys):
    from emulsion_core.simulator.simulate import simulate_dataset
    events = {"fog": {"rot0": 80, "test": 80}}
    simulate_dataset(tmp_path, events, seed=1, samples=("fog",), progress=False, workers=1)
    stamp = {p.name: p.stat().st_mtime_ns for p in tmp_path.glob("*.h5")}
    simulate_dataset(tmp_path, events, seed=1, samples=("fog",), progress=False, workers=1)
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.glob("*.h5")} == stamp  # kept
    capsys.readouterr()
    _patched(monkeypatch, "simulator.render")
    simulate_dataset(tmp_path, events, seed=1, samples=("fog",), progress=False, workers=1)
    assert all(p.stat().st_mtime_ns != stamp[p.name] for p in tmp_path.glob("*.h5"))
    assert "re-simulating fog_rot0.h5: the code of simulator/render.py changed" in capsys.readouterr().err
    manifest = json.loads((tmp_path / "simulation_manifest.json").read_text())
    assert manifest["files"]["fog_rot0.h5"]["provenance"]["code"]["simulator/render.py"].startswith("edited")


def test_code_version_ignores_comments_and_docstrings(tmp_path, monkeypatch):
    monkeypatch.setattr(provenance, "PACKAGE", tmp_path)
    versions = []
    for text in ('"""Doc."""\ndef f(x):\n    """What f does."""\n    return x + 1\n',
                 '"""Other doc."""\n# a comment\ndef f(x):\n    return x + 1  # why\n',
                 'def f(x):\n    return x + 2\n'):
        (tmp_path / "mod.py").write_text(text)
        versions.append(provenance.source_hash.__wrapped__("mod", tmp_path))
    assert versions[0] == versions[1] != versions[2]


def test_difference_names_what_changed():
    old = provenance.key("conventional", clean_events="abc")
    assert provenance.difference(old, old) is None
    assert provenance.difference(None, old) == "it has no provenance record"
    new = provenance.key("clean_events", dataset="d", cuts={"min_npx": 12})
    older = {**new, "inputs": {"dataset": "d", "cuts": {"min_npx": 11}}}
    assert provenance.difference(older, new) == "cuts.min_npx changed (11 -> 12)"
    assert provenance.difference({"dataset": "d"}, new) == "it was made before code versions were recorded"
