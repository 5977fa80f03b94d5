"""A data path that never destroys data: the simulator writes only into folders it owns, given
scans are analysed as they are (splits.csv made by the documented rule), every cut works from
the format's required fields, and ``info`` and the analysis agree on what a valid file is."""

import numpy as np
import pandas as pd
import pytest
from given_scans import checksums, foreign_scan, write_profile

from emulsion_core.app import prepare
from emulsion_core.data import dataset
from emulsion_core.formats import hdf5, ownership, splits
from emulsion_core.config import profiles
from emulsion_core.app.cli import main
from emulsion_core.simulator.simulate import simulate_dataset

SAMPLES = ("C30keV", "C100keV", "fog")
SCANS = ("rot0", "rot90", "test")


@pytest.fixture(scope="module")
def foreign_root(tmp_path_factory):
    """An output root whose ``data/foreign/`` holds valid scans written by another program (only
    the required fields, no simulator attributes, no splits.csv), named as the simulator would
    name its own, and a profile outside the repository that points at them."""
    root = tmp_path_factory.mktemp("root")
    scratch = tmp_path_factory.mktemp("scratch")
    folder = root / "data" / "foreign"
    for k, sample in enumerate(SAMPLES):
        for j, scan in enumerate(SCANS):
            foreign_scan(folder / f"{sample}_{scan}.h5", sample, scan, 200 if scan != "test" else 150, 100 + 3 * k + j,
                         scratch)
    profile = write_profile(tmp_path_factory.mktemp("elsewhere") / "foreign.yaml", "foreign", "foreign", SAMPLES, 50, 50)
    return root, folder, profile, scratch


def test_simulate_refuses_a_folder_of_foreign_scans_and_leaves_them_untouched(foreign_root, monkeypatch, capsys):
    root, folder, profile, _ = foreign_root
    monkeypatch.setenv("EMULSION_DL_ROOT", str(root))
    before = checksums(folder)
    assert main(["simulate", "--profile", str(profile), "--workers", "1"]) == 2
    err = capsys.readouterr().err
    assert "did not write" in err and str(folder) in err
    for name in before:
        assert name in err
    assert checksums(folder) == before  # nothing rewritten, nothing added (no manifest, no splits.csv)


def test_notebook_01_02_core_functions_compute_from_foreign_scans(foreign_root, monkeypatch, tmp_path):
    """What notebooks 01-02 compute (cleaning, cut flow, clean selection, barshift, Table 1), from
    files holding only the required fields; the scan files are never modified."""
    from emulsion_core.measure import cleaning
    from emulsion_core.analyses import conventional, table1
    from emulsion_core.data import selection
    root, folder, profile_path, scratch = foreign_root
    monkeypatch.setenv("EMULSION_DL_ROOT", str(root))
    scans_before = {k: v for k, v in checksums(folder).items() if k.endswith(".h5")}
    for name in scans_before:  # `info` accepts every file
        assert main(["info", str(folder / name)]) == 0
    p = profiles.resolve(str(profile_path))
    events = selection.all_events(p, progress=False)
    assert {k: v for k, v in checksums(folder).items() if k.endswith(".h5")} == scans_before
    assert (folder / "splits.csv").exists() and not (folder / ownership.MANIFEST).exists()
    assert len(events) == sum(len(hdf5.read_events(folder / n)) for n in scans_before)
    # the features the cuts need were measured from the images, as the simulator measures them
    src = hdf5.read_events(next(scratch.glob("src_C30keV_rot0_*.h5")))
    mine = events[events["file"] == "C30keV_rot0.h5"].sort_values("event_id")
    np.testing.assert_array_equal(mine["peak_adu"].to_numpy(), src["peak_adu"].to_numpy())
    np.testing.assert_array_equal(mine["brightness_mean"].to_numpy(), src["brightness_mean"].to_numpy())
    flow = cleaning.cutflow(events)
    assert (flow["in"] == events.groupby("sample", observed=True).size().reindex(flow.index)).all()
    assert (flow["left"] > 0).all()
    assert selection.removed_kinds(events).empty and selection.truth_purity(events).empty  # no truth
    clean = selection.clean_events(p, rebuild=True, progress=False)
    assert set(clean["split"]) == {"train", "validation", "test"}
    table = conventional.variables(p, progress=False)
    assert table["barshift_nm"].notna().mean() > 0.9
    cut = table1.reference_cut(table, "barshift_nm")
    rows = table1.rows(table, "barshift", "barshift_nm", cut[0])
    assert len(rows) == 6 and rows["value"].between(0, 1).all()
    c100 = rows[(rows["sample"] == "C100keV") & (rows["split"] == "validation")]["value"].iloc[0]
    assert abs(c100 - 0.30) < 0.05
    assert {k: v for k, v in checksums(folder).items() if k.endswith(".h5")} == scans_before


def _tiny(folder, seed=1):
    return simulate_dataset(folder, {"fog": {"rot0": 100, "test": 100}}, seed=seed, samples=("fog",),
                            progress=False, workers=1)


def test_a_foreign_file_in_a_simulated_folder_stops_the_simulator_and_is_named(tmp_path):
    folder = tmp_path / "sim"
    _tiny(folder)
    foreign_scan(folder / "C30keV_rot0.h5", "C30keV", "rot0", 20, 3, tmp_path)
    (folder / "notes.txt").write_text("my notes")
    before = checksums(folder)
    with pytest.raises(ownership.ForeignFilesError) as err:
        _tiny(folder)
    message = str(err.value)
    assert "C30keV_rot0.h5" in message and "notes.txt" in message
    assert "fog_rot0.h5" not in message and "splits.csv" not in message
    assert checksums(folder) == before


def test_an_edited_splits_csv_is_the_users(tmp_path):
    folder = tmp_path / "sim"
    _tiny(folder)
    table = pd.read_csv(folder / "splits.csv")
    table.loc[0, "split"] = "test"
    table.to_csv(folder / "splits.csv", index=False)
    edited = (folder / "splits.csv").read_bytes()
    with pytest.raises(ownership.ForeignFilesError, match="splits.csv"):
        _tiny(folder)
    assert (folder / "splits.csv").read_bytes() == edited


def test_simulated_scans_without_a_manifest_are_not_taken_for_the_simulators(tmp_path):
    folder = tmp_path / "sim"
    _tiny(folder)
    (folder / ownership.MANIFEST).unlink()
    before = checksums(folder)
    with pytest.raises(ownership.ForeignFilesError, match="before manifests"):
        _tiny(folder, seed=2)  # another seed would rewrite every scan
    assert checksums(folder) == before


def test_the_simulator_resumes_its_own_folder_and_clears_its_leftovers(tmp_path):
    folder = tmp_path / "sim"
    _tiny(folder)
    kept = (folder / "fog_rot0.h5").stat().st_mtime_ns
    (folder / "fog_test.h5.tmp4242").write_bytes(b"half a file")  # an interrupted write
    (folder / ".DS_Store").write_bytes(b"")  # hidden entries are nobody's data
    _tiny(folder)
    assert (folder / "fog_rot0.h5").stat().st_mtime_ns == kept
    assert not (folder / "fog_test.h5.tmp4242").exists()
    contents = ownership.inspect(folder)
    assert not contents.foreign and set(contents.own) == {"fog_rot0.h5", "fog_test.h5", "splits.csv", ownership.MANIFEST}


def test_splits_rule_for_given_scans(tmp_path):
    folder = tmp_path / "given"
    foreign_scan(folder / "a_rot0.h5", "fog", "rot0", 100, 1, tmp_path)
    foreign_scan(folder / "b_rot45.h5", "fog", "rot45", 51, 2, tmp_path)
    foreign_scan(folder / "c_test.h5", "fog", "test", 30, 3, tmp_path)
    path = splits.ensure(folder, seed=5, validation_fraction=0.4, announce=False)
    table = hdf5.read_splits(folder)
    counts = table.groupby(["file", "split"]).size()
    assert counts[("a_rot0.h5", "validation")] == 40 and counts[("a_rot0.h5", "train")] == 60
    assert counts[("b_rot45.h5", "validation")] == 20 and counts[("b_rot45.h5", "train")] == 31
    assert counts[("c_test.h5", "test")] == 30 and len(table) == 181
    # reproducible from the seed, other with another seed
    again = splits.by_rule(folder, 5, 0.4)
    assert again["split"].tolist() == table["split"].tolist()
    assert splits.by_rule(folder, 6, 0.4)["split"].tolist() != table["split"].tolist()
    # an existing splits.csv is never rewritten
    path.write_text("file,event_id,split\nc_test.h5,0,test\n")
    splits.ensure(folder, seed=9, validation_fraction=0.5)
    assert path.read_text() == "file,event_id,split\nc_test.h5,0,test\n"


def test_a_scan_without_a_split_rule_is_named(tmp_path):
    folder = tmp_path / "given"
    foreign_scan(folder / "odd.h5", "fog", "rot0", 10, 1, tmp_path)
    import h5py
    with h5py.File(folder / "odd.h5", "a") as f:
        f.attrs["scan"] = "rot30"
    with pytest.raises(hdf5.DataFormatError, match="odd.h5.*'scan'.*rot30"):
        splits.by_rule(folder, 1, 0.4)


def test_info_and_the_analysis_agree_on_what_a_valid_file_is(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("EMULSION_DL_ROOT", str(tmp_path / "root"))
    folder = tmp_path / "root" / "data" / "given"
    good = foreign_scan(folder / "fog_rot0.h5", "fog", "rot0", 40, 1, tmp_path)
    scan = hdf5.read_scan(foreign_scan(tmp_path / "src.h5", "fog", "test", 40, 2, tmp_path))
    images = np.minimum(scan.images, 200)
    images[7, 0, 0, 0] = 250  # event 7 holds a pixel above the camera's range
    bad = hdf5.write_scan(folder / "fog_test.h5", hdf5.Scan(images, scan.events, {**scan.attrs, "camera_max": 200}))
    assert main(["info", str(good)]) == 0
    assert main(["info", str(bad)]) == 1
    info_error = capsys.readouterr().err
    assert "fog_test.h5" in info_error and "event 7" in info_error
    p = profiles.from_dict({"profile": "given", "seed": 1, "dataset": "given", "samples": ["fog"],
                            "events": {"rotated": {"fog": 1}, "test": {"fog": 1}}})
    with pytest.raises(hdf5.DataFormatError) as err:
        prepare.ensure_dataset(p)
    assert str(err.value) in info_error
    bad.unlink()
    (folder / "splits.csv").unlink()
    prepare.ensure_dataset(p)
    table = dataset.events_table(folder)  # only the required fields in the file: the cuts still work
    assert {"peak_adu", "brightness_mean"} <= set(table.columns)


def test_simulate_with_another_seed_writes_where_the_notebooks_read(tmp_path, monkeypatch):
    monkeypatch.setenv("EMULSION_DL_ROOT", str(tmp_path))
    path = write_profile(tmp_path / "tiny.yaml", "tiny", "tiny", ["fog"], 60, 60, seed=3)
    assert main(["simulate", "--profile", str(path), "--seed", "5", "--workers", "1"]) == 0
    p = profiles.resolve(str(path), 5)
    assert dataset.dataset_dir(p) == tmp_path / "data" / "tiny-seed5"
    assert (tmp_path / "data" / "tiny-seed5" / "splits.csv").exists()
    assert not (tmp_path / "data" / "tiny").exists()
    assert hdf5.read_attrs(tmp_path / "data" / "tiny-seed5" / "fog_rot0.h5")["seed"] == 5


def test_calibrate_checkpoint_defaults_under_the_output_root(tmp_path, monkeypatch):
    import pandas as pd

    from emulsion_core.simulator import calibrate
    from emulsion_core.config.simulator import SimulatorConfig
    monkeypatch.setenv("EMULSION_DL_ROOT", str(tmp_path))
    monkeypatch.chdir(tmp_path / "..")
    seen = {}

    def fake(calls, events, seed, checkpoint):
        seen["checkpoint"] = checkpoint
        summary = calibrate.BarshiftSummary(42.0, {"C30keV": 0.19, "fog": 0.25}, (10.0, 23.0), 3.8)
        return SimulatorConfig(), summary, pd.DataFrame()

    monkeypatch.setattr(calibrate, "calibrate", fake)
    assert main(["calibrate", "--calls", "1"]) == 0
    assert str(seen["checkpoint"]) == str(tmp_path / "results" / "calibration" / "simulator.json")


def test_prepare_reads_manifest_less_simulations_as_given_data_and_says_so(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("EMULSION_DL_ROOT", str(tmp_path))
    folder = tmp_path / "data" / "old"
    _tiny(folder)
    (folder / ownership.MANIFEST).unlink()  # simulated before manifests existed
    before = checksums(folder)
    path = write_profile(tmp_path / "old.yaml", "old", "old", ["fog"], 100, 100, seed=1)
    assert main(["prepare", "--profile", str(path)]) == 0
    out = capsys.readouterr().out
    assert "2 scan file(s) the simulator did not write" in out and "carry the simulator's attributes" in out
    assert checksums(folder) == before
