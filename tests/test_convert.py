"""libDMRoot conversion on the committed fixture (scripts/make_root_fixture.py), uproot only.

The fixture holds known events: in each polarisation a spot whose centre moves by
(p - 3.5) x 0.6 px along the beam direction, 30 degrees in the stage frame (tracks), or stays
put (fog); defocused copies in the other z-level, merged frames (flags 1) and the 180-degree
repeat of polarisation 0 (flags 2) at the same place; one grain listed with polarisation 5
missing (-1), kept with a zero image there; and one bad grain line per skip reason.
"""

import hashlib
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from emulsion_core.measure import barshift, cleaning
from emulsion_core.formats import convert, hdf5, rootio
from emulsion_core.app.cli import main
from emulsion_core.formats.hdf5 import DataFormatError

FIXTURES = Path(__file__).resolve().parents[1] / "data" / "fixtures"
RUN = FIXTURES / "libdmroot_run.dm.root"
GRAINS_TRFLAG = FIXTURES / "libdmroot_grains_trflag.txt"
GRAINS_COMMA = FIXTURES / "libdmroot_grains_comma.txt"
EXPECTED = np.load(FIXTURES / "libdmroot_expected.npz")  # the 8 events with all polarisations listed
FIXTURE_SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "make_root_fixture.py"
MISSING_POL_LINE, MISSING_POL_EVENT, MISSING_POL = 9, 8, 5  # grain-list line, fixture EVENTS index, pol


def run_convert(tmp_path, grains=GRAINS_TRFLAG, name="C100keV_rot0.h5", **kw):
    kw.setdefault("beam_phi_deg", 30.0)
    return convert.convert_run(RUN, grains, tmp_path / name, "C100keV", "rot0", progress=False,
                               log=lambda *a: None, **kw)


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    result = run_convert(tmp_path_factory.mktemp("conv"))
    return result, hdf5.read_scan(result.output)


def sha(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def complete(scan):
    """Mask of the converted events whose 8 polarisations are all listed (those of EXPECTED)."""
    return scan.events["grain_line"].to_numpy() != MISSING_POL_LINE


def fixture_crops():
    """(14, 8, 40, 40) focus crops of every fixture event, rebuilt by the fixture script (seeded,
    no ROOT needed): the truth for events that EXPECTED does not hold."""
    spec = importlib.util.spec_from_file_location("make_root_fixture", FIXTURE_SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod.build(np.random.default_rng(mod.SEED))[5]


# ----------------------------------------------------------------------------------- the fixture
def test_converted_scan_is_format_version_1(converted):
    result, scan = converted
    n = len(EXPECTED["crops"]) + 1  # and the grain with a missing polarisation
    assert result.n_events == n == 9 and result.n_lines == 17
    assert scan.images.shape == (n, 8, 40, 40) and scan.images.dtype == np.uint8
    a = scan.attrs
    for key in hdf5.REQUIRED_ATTRS:
        assert key in a
    assert (a["format_version"], a["sample"], a["is_signal"], a["energy_keV"], a["scan"]) == \
        (1, "C100keV", True, 100.0, "rot0")
    assert (a["rotation_deg"], a["beam_phi_deg"], a["camera_max"], a["area"]) == (0.0, 30.0, 255, "train")
    assert a["pixel_size_nm"] == pytest.approx(27.52, abs=1e-6)
    assert a["polarisation_deg"] == [22.5 * p for p in range(8)]
    assert a["source_file"] == RUN.name and a["source_grains"] == GRAINS_TRFLAG.name
    assert a["converter_version"] == convert.CONVERTER_VERSION and a["camera_geometry"] == "RunHeader"
    ev = scan.events
    np.testing.assert_array_equal(ev["event_id"], np.arange(n))
    ev = ev[complete(scan)]
    np.testing.assert_array_equal(ev["view"], EXPECTED["header_id"])
    np.testing.assert_array_equal(ev["grain_id"], EXPECTED["grain_id"])
    np.testing.assert_array_equal(ev["view_density"], EXPECTED["view_density"])
    assert (ev["tr_flag"] == -1).all()
    cleaning.cut_masks(ev)  # every column the cuts need is there


def test_crops_are_pixel_identical_to_the_events_put_into_the_frames(converted):
    _, scan = converted
    np.testing.assert_array_equal(scan.images[complete(scan)], EXPECTED["crops"])


def test_orientation_gives_the_known_beam_direction(converted):
    """phi (from crop columns towards crop rows) equals the stage-frame beam direction, 30 deg;
    a crop with its rows in camera order would give -30 deg."""
    _, scan = converted
    tracks = EXPECTED["kind"] == "track"
    images = scan.images[complete(scan)][tracks]
    phi = barshift.direction(images)
    np.testing.assert_allclose(phi, float(EXPECTED["beam_phi_deg"]), atol=3.0)
    flipped = barshift.direction(images[:, :, ::-1, :])
    np.testing.assert_allclose(flipped, -float(EXPECTED["beam_phi_deg"]), atol=3.0)
    shift = barshift.barshift(images, scan.attrs["pixel_size_nm"])
    np.testing.assert_allclose(shift, 7 * 0.6 * 27.52, rtol=0.05)  # pols 0 and 7, 7 steps of 0.6 px


def test_polarisation_order_follows_the_polariser(converted):
    """Barycenters of a track advance along the beam with the polarisation index; the flags-2
    frame (spot one step further than polarisation 7) is never taken for polarisation 0."""
    _, scan = converted
    tracks = EXPECTED["kind"] == "track"
    bc = barshift.barycenters(scan.images[complete(scan)][tracks])  # (N, 8, 2) px, (column, row)
    beam = np.radians(float(EXPECTED["beam_phi_deg"]))
    along = bc[..., 0] * np.cos(beam) + bc[..., 1] * np.sin(beam)
    steps = np.diff(along, axis=1)
    assert (steps > 0.3).all() and (steps < 0.9).all(), steps  # 0.6 px per polarisation


def test_bad_grain_lines_are_skipped_and_counted(converted):
    result, _ = converted
    assert result.skipped == {reason: 1 for reason in convert.SKIP_REASONS if reason != convert.SKIP_REASONS[3]}
    by_line = dict(zip(result.skipped_lines["line"], result.skipped_lines["reason"]))
    assert by_line == {5: "crop crosses the frame edge",
                       10: "cluster index not in the view", 11: "cluster of another polarisation or flag",
                       13: "raw frame missing from Frames", 14: "view flag not 0",
                       15: "view entry not in Vdmr", 16: "grain index not in the view",
                       17: "cluster frame not in the view"}
    assert "skipped 8 grain lines" in result.summary()
    assert hdf5.read_attrs(result.output)["skipped"]  # recorded in the file too


def test_both_grain_list_formats(tmp_path, converted):
    _, scan = converted
    a = convert.read_grain_list(GRAINS_TRFLAG)
    b = convert.read_grain_list(GRAINS_COMMA)
    cols = ["line", "header_id", "view_id", "grain_id"] + [f"cl{p}" for p in range(8)]
    assert a[cols].equals(b[cols])
    assert (b["tr_flag"] == convert.NO_TR_FLAG).all() and (a["n_pol"][a["cl5"] >= 0] == 8).all()
    result = run_convert(tmp_path, grains=GRAINS_COMMA)
    np.testing.assert_array_equal(hdf5.read_scan(result.output).images, scan.images)


def test_grain_list_separators_and_bad_lines(tmp_path):
    p = tmp_path / "g.txt"
    p.write_text("# comment\n1,2,3,0,1,2,3,4,5,6,7,\n\n1 2 3 0 1 2 3 4 5 6 7 -1 8\n")
    g = convert.read_grain_list(p)
    assert g["line"].tolist() == [2, 4] and g["cl7"].tolist() == [7, 7] and g["n_pol"].tolist() == [-1, 8]
    p.write_text("1,2,3,0,1,2,3,4,5,6,7\n1,2,3,0,1,2\n")
    with pytest.raises(DataFormatError, match=r"g.txt: field 'line 2'.*6 fields"):
        convert.read_grain_list(p)
    p.write_text("1,2,3,0,1,2,3,4,5,6,x\n")
    with pytest.raises(DataFormatError, match="line 1.*non-integer"):
        convert.read_grain_list(p)


def test_streaming_in_small_blocks_gives_the_same_file(tmp_path, monkeypatch, converted):
    _, scan = converted
    monkeypatch.setattr(convert, "EVENTS_PER_BLOCK", 3)
    monkeypatch.setattr(convert, "FRAMES_PER_READ", 2)
    monkeypatch.setattr(convert, "VIEWS_PER_READ", 1)
    back = hdf5.read_scan(run_convert(tmp_path).output)
    np.testing.assert_array_equal(back.images, scan.images)
    assert back.events.equals(scan.events)


# ----------------------------------------------------------------------------------- missing polarisation
def test_grain_with_a_missing_polarisation_is_kept_with_a_zero_image(converted):
    """Line 9 lists polarisation 5 as -1: written, that image all zeros, the 7 others the crops of
    the present polarisations, the window anchored on polarisation 0, n_pol 7."""
    result, scan = converted
    i = np.flatnonzero(~complete(scan))
    assert len(i) == 1 and MISSING_POL_LINE not in result.skipped_lines["line"].tolist()
    ev, images = scan.events.iloc[i[0]], scan.images[i[0]]
    assert (ev["view"], ev["grain_id"]) == (1, 3)
    assert (ev["crop_col0"], ev["crop_row0"]) == (24 - 20, 72 - 20)  # fixture window (U, V) = (24, 72)
    assert not images[MISSING_POL].any()
    present = [p for p in range(8) if p != MISSING_POL]
    truth = fixture_crops()
    np.testing.assert_array_equal(truth[[0, 1, 2, 3, 5, 6, 7, 11]], EXPECTED["crops"])  # script = fixture
    np.testing.assert_array_equal(images[present], truth[MISSING_POL_EVENT, present])
    assert ev["n_pol"] == 7 == convert.read_grain_list(GRAINS_TRFLAG)["n_pol"].iloc[MISSING_POL_LINE - 1]
    assert (scan.events["n_pol"][complete(scan)] == 8).all()


def test_missing_polarisation_grain_is_removed_by_its_cut_in_the_cutflow(converted):
    _, scan = converted
    ev = scan.events.assign(sample="C100keV")
    removed = cleaning.first_cut(cleaning.cut_masks(ev))
    assert removed[~complete(scan)].tolist() == ["missing_polarisation"]
    assert not cleaning.clean(ev)[~complete(scan)].any()
    flow = cleaning.cutflow(ev)
    assert flow.loc["C100keV", "missing_polarisation"] == 1 and flow.loc["C100keV", "in"] == 9


def test_crop_is_anchored_on_the_first_present_polarisation(tmp_path):
    """Event 0 (window (U, V) = (24, 24)) listed without polarisations 0 and 1: the window is that
    of polarisation 2's cluster, one column right and one row down in camera pixels (its track
    spot sits 1.2 px further along 30 deg), so crop[r, c] = expected[r + 1, c + 1]. A line with
    every polarisation missing is skipped."""
    p = tmp_path / "g.txt"
    p.write_text("0,0,0,-1,-1,2,3,4,5,6,7\n0,0,0,-1,1,2,3,4,5,6,7\n0,0,0,-1,-1,-1,-1,-1,-1,-1,-1\n")
    result = run_convert(tmp_path, grains=p)
    assert result.skipped == {"every polarisation missing (-1)": 1}
    scan = hdf5.read_scan(result.output)
    ev, im, want = scan.events, scan.images, EXPECTED["crops"][0]
    assert (ev["crop_col0"].tolist(), ev["crop_row0"].tolist()) == ([5, 4], [3, 4])
    assert not im[0, :2].any() and not im[1, 0].any()
    np.testing.assert_array_equal(im[0, 2:, :39, :39], want[2:, 1:, 1:])
    np.testing.assert_array_equal(im[1, 1:], want[1:])
    assert ev["n_pol"].tolist() == [6, 7]


# ----------------------------------------------------------------------------------- conventions
def test_crop_window_and_orientation_convention():
    """Window = camera [u0-20, u0+20) x [v0-20, v0+20), u0 = floor(u); rows reversed for pixY < 0."""
    frame = np.arange(96 * 128, dtype=np.int64).reshape(96, 128)  # value = 128 * row + column
    geo = rootio.CameraGeometry(128, 96, 0.02752, -0.02752, "test")
    col0, row0 = convert.window_origin(50.9, 60.2)
    assert (col0, row0) == (30, 40)
    crop = convert.cut(frame, col0, row0, geo)
    assert crop.shape == (40, 40)
    assert crop[0, 0] == 128 * (row0 + 39) + col0  # first crop row = highest camera row
    assert crop[39, 39] == 128 * row0 + col0 + 39
    up = convert.cut(frame, col0, row0, rootio.CameraGeometry(128, 96, -0.02752, 0.02752, "test"))
    assert up[0, 0] == 128 * row0 + col0 + 39  # pixX < 0: columns reversed, rows kept
    # camera pixel of a cluster (physics.md c.3): stage offset from the frame over the pitch
    u, v = convert.camera_pixel(1000.0 + 0.02752 * 10, 2000.0 - 0.02752 * 5, 1000.0, 2000.0, geo)
    assert (u, v) == pytest.approx((74.0, 53.0))


# ----------------------------------------------------------------------------------- bad input
def test_never_overwrites(tmp_path, capsys):
    out = tmp_path / "C100keV_rot0.h5"
    out.write_bytes(b"somebody's data")
    before = sha(out)
    with pytest.raises(FileExistsError, match="never overwrites"):
        run_convert(tmp_path)
    rc = main(["convert", str(RUN), "--grains", str(GRAINS_TRFLAG), "--output", str(out),
               "--sample", "C100keV", "--scan", "rot0"])
    assert rc == 2 and "never overwrites" in capsys.readouterr().err
    assert sha(out) == before


def test_command_line(tmp_path, capsys, converted):
    _, scan = converted
    out = tmp_path / "fog_test.h5"
    rc = main(["convert", str(RUN), "--grains", str(GRAINS_COMMA), "--output", str(out), "--sample", "fog",
               "--scan", "test", "--beam-phi-deg", "30"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "9 events written from 17 grain lines" in text and "raw frame missing from Frames" in text
    back = hdf5.read_scan(out)
    a = back.attrs
    assert (a["sample"], a["is_signal"], a["energy_keV"], a["scan"], a["area"]) == ("fog", False, 0.0, "test", "test")
    np.testing.assert_array_equal(back.images, scan.images)


def test_missing_tree_and_leaf_are_named(tmp_path):
    uproot = pytest.importorskip("uproot")
    only_vdmr = tmp_path / "only_vdmr.root"
    with uproot.recreate(only_vdmr) as f:
        f["Vdmr"] = {"x": np.arange(3, dtype=np.float32)}
    with pytest.raises(DataFormatError, match=r"only_vdmr.root: field 'Frames': no tree 'Frames'"):
        convert.convert_run(only_vdmr, GRAINS_TRFLAG, tmp_path / "a.h5", "fog", "rot0", progress=False)
    flat = tmp_path / "flat.root"
    with uproot.recreate(flat) as f:
        f["Vdmr"] = {"x": np.arange(3, dtype=np.float32)}
        f["Frames"] = {"ventr": np.arange(3, dtype=np.int32)}
    with pytest.raises(DataFormatError, match="RunHeader.*--pixel-size-nm"):
        convert.convert_run(flat, GRAINS_TRFLAG, tmp_path / "a.h5", "fog", "rot0", progress=False)
    with pytest.raises(DataFormatError, match=r"flat.root: field 'Frames/fr.ventr': missing member"):
        convert.convert_run(flat, GRAINS_TRFLAG, tmp_path / "a.h5", "fog", "rot0", progress=False,
                            pixel_size_nm=27.52, frame_width=128, frame_height=96)
    assert not (tmp_path / "a.h5").exists()
    with pytest.raises(DataFormatError, match="not a readable ROOT file"):
        convert.convert_run(GRAINS_TRFLAG, GRAINS_TRFLAG, tmp_path / "a.h5", "fog", "rot0", progress=False)


def test_unreadable_run_header_falls_back_to_the_command_line(tmp_path, monkeypatch, converted):
    """2017 files: uproot cannot read the RunHeader; the user passes the camera geometry."""
    _, scan = converted
    monkeypatch.setattr(rootio, "_run_header", lambda run: (None, "uproot cannot read the RunHeader (test)"))
    with pytest.raises(DataFormatError, match="2017.*--pixel-size-nm, --frame-width and --frame-height"):
        run_convert(tmp_path)
    result = run_convert(tmp_path, pixel_size_nm=27.52, frame_width=128, frame_height=96)
    back = hdf5.read_scan(result.output)
    assert back.attrs["camera_geometry"].startswith("command line") and back.attrs["pixel_size_nm"] == 27.52
    np.testing.assert_array_equal(back.images, scan.images)


def test_command_line_geometry_must_agree_with_the_run_header(tmp_path):
    with pytest.raises(DataFormatError, match="--frame-width 100 disagrees with the file's RunHeader"):
        run_convert(tmp_path, frame_width=100)
    with pytest.raises(DataFormatError, match="--pixel-size-nm 27.349 disagrees"):
        run_convert(tmp_path, pixel_size_nm=27.349)
    assert not list(tmp_path.iterdir())


def test_no_convertible_grain_is_an_error(tmp_path):
    p = tmp_path / "bad.txt"
    p.write_text("9,9,0,0,1,2,3,4,5,6,7\n")
    with pytest.raises(DataFormatError, match=r"no grain line could be converted.*view entry not in Vdmr"):
        run_convert(tmp_path, grains=p)
    assert not (tmp_path / "C100keV_rot0.h5").exists()


def test_convert_writes_each_events_imaging_depth(converted):
    """``depth_um``: the distance below the face located per view (issue 17, item 5), never negative,
    zero for the view's highest events, and what the data layer would derive from ``z_um``."""
    from emulsion_core.measure.depth import imaging_depth_from_z
    ev = converted[1].events
    assert ev["depth_um"].dtype == np.float32 and (ev["depth_um"] >= 0).all()
    np.testing.assert_allclose(ev["depth_um"], imaging_depth_from_z(ev.drop(columns="depth_um")), atol=1e-6)
    assert ev["depth_um"].min() == 0.0
