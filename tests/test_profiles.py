"""Profiles: the shipped ones load; unknown keys and bad values are named in the error."""

import pytest
import yaml

from emulsion_core.config import profiles
from emulsion_core.config.profiles import ProfileError


@pytest.mark.parametrize("name", ["smoke", "default", "paper"])
def test_shipped_profiles_load(name):
    p = profiles.load(name)
    assert p.name == name
    assert p.events["fog"]["test"] > 0 and set(p.events["fog"]) == {"rot0", "rot45", "rot90", "rot0_repeat", "test"}
    # carbon also has the bulk test area (tracks at fog's depths, issue 17)
    assert set(p.events["C30keV"]) == {"rot0", "rot45", "rot90", "rot0_repeat", "test", "test_bulk"}


def test_the_bulk_test_area_takes_only_carbon(tmp_path):
    path = _write(tmp_path, lambda r: r["events"].update(test_bulk={"fog": 10}))
    with pytest.raises(profiles.ProfileError, match="events.test_bulk.fog"):
        profiles.load(path)


def test_sizes_grow_from_smoke_to_paper():
    sizes = [sum(sum(v.values()) for v in profiles.load(n).events.values()) for n in ("smoke", "default", "paper")]
    assert sizes[0] < sizes[1] < sizes[2]


def _write(tmp_path, change):
    raw = yaml.safe_load((profiles.PROFILE_DIR / "smoke.yaml").read_text())
    change(raw)
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize("change,key", [
    (lambda r: r.update(epochs=3), "epochs"),
    (lambda r: r.update(seed="abc"), "seed"),
    (lambda r: r.update(seed=-1), "seed"),
    (lambda r: r.update(samples=["C30keV", "Au200keV"]), "samples"),
    (lambda r: r["events"]["rotated"].update(fog=0), "events.rotated.fog"),
    (lambda r: r["events"]["test"].pop("C30keV"), "events.test.C30keV"),
    (lambda r: r["events"].update(extra={}), "events.extra"),
    (lambda r: r.update(validation_fraction=1.5), "validation_fraction"),
    (lambda r: r.pop("dataset"), "dataset"),
])
def test_bad_profile_names_the_key(tmp_path, change, key):
    path = _write(tmp_path, change)
    with pytest.raises(ProfileError) as err:
        profiles.load(path)
    assert f"'{key}'" in str(err.value)
    assert str(path) in str(err.value)


def test_unknown_profile_lists_the_known_ones():
    with pytest.raises(ProfileError, match="smoke"):
        profiles.load("nonexistent")


def test_seed_override_makes_a_separate_run():
    p = profiles.resolve("smoke", 7)
    assert p.seed == 7 and p.name == "smoke-seed7" and p.dataset == "smoke-seed7"
    assert profiles.resolve("smoke", profiles.load("smoke").seed).name == "smoke"


def test_clean_selection_cache_is_rebuilt_when_the_data_change(tmp_path, monkeypatch):
    from emulsion_core.storage import provenance
    from emulsion_core.data import selection
    monkeypatch.setenv("EMULSION_DL_ROOT", str(tmp_path))
    p = profiles.from_dict({"profile": "tiny", "seed": 3, "dataset": "tiny", "samples": ["fog"],
                            "events": {"rotated": {"fog": 100}, "test": {"fog": 100}}})
    from emulsion_core.app import prepare
    prepare.ensure_dataset(p, progress=False)
    first = selection.clean_events(p, progress=False)
    again = selection.clean_events(p, progress=False)  # from the cache
    assert first[["file", "event_id"]].equals(again[["file", "event_id"]])
    # the profile grows its test scan: the scan is re-simulated and the cache must follow
    bigger = profiles.from_dict({"profile": "tiny", "seed": 3, "dataset": "tiny", "samples": ["fog"],
                                 "events": {"rotated": {"fog": 100}, "test": {"fog": 400}}})
    stamp = provenance.read(tmp_path / "results" / "tiny" / "clean_events.csv")
    prepare.ensure_dataset(bigger, progress=False)
    grown = selection.clean_events(bigger, progress=False)
    assert provenance.read(tmp_path / "results" / "tiny" / "clean_events.csv") != stamp
    assert grown.loc[grown["scan"] == "test", "event_id"].max() > 100
