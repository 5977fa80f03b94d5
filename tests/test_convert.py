"""libDMRoot conversion on the committed fixture (scripts/make_root_fixture.py), uproot only.

The fixture holds known events: in each polarisation a spot whose centre moves by
(p - 3.5) x 0.6 px along the beam direction, 30 degrees in the stage frame (tracks), or stays
put (fog); defocused copies in the other z-level, merged frames (flags 1) and the 180-degree
repeat of polarisation 0 (flags 2) at the same place; and one bad grain line per skip reason.
"""

import hashlib
from pathlib import Path

import numpy as np
import pytest

from emulsion_core import barshift, cleaning, convert, io, rootio
from emulsion_core.__main__ import main
from emulsion_core.io import DataFormatError

FIXTURES = Path(__file__).resolve().parents[1] / "data" / "fixtures"
RUN = FIXTURES / "libdmroot_run.dm.root"
GRAINS_TRFLAG = FIXTURES / "libdmroot_grains_trflag.txt"
GRAINS_COMMA = FIXTURES / "libdmroot_grains_comma.txt"
EXPECTED = np.load(FIXTURES / "libdmroot_expected.npz")


def run_convert(tmp_path, grains=GRAINS_TRFLAG, name="C100keV_rot0.h5", **kw):
    kw.setdefault("beam_phi_deg", 30.0)
    return convert.convert_run(RUN, grains, tmp_path / name, "C100keV", "rot0", progress=False,
                               log=lambda *a: None, **kw)


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    result = run_convert(tmp_path_factory.mktemp("conv"))
    return result, io.read_scan(result.output)


def sha(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# ----------------------------------------------------------------------------------- the fixture
def test_converted_scan_is_format_version_1(converted):
    result, scan = converted
    n = len(EXPECTED["crops"])
    assert result.n_events == n == 8 and result.n_lines == 17
    assert scan.images.shape == (n, 8, 40, 40) and scan.images.dtype == np.uint8
    a = scan.attrs
    for key in io.REQUIRED_ATTRS:
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
    np.testing.assert_array_equal(ev["view"], EXPECTED["header_id"])
    np.testing.assert_array_equal(ev["grain_id"], EXPECTED["grain_id"])
    np.testing.assert_array_equal(ev["view_density"], EXPECTED["view_density"])
    assert (ev["tr_flag"] == -1).all()
    cleaning.cut_masks(ev)  # every column the cuts need is there


def test_crops_are_pixel_identical_to_the_events_put_into_the_frames(converted):
    _, scan = converted
    np.testing.assert_array_equal(scan.images, EXPECTED["crops"])


def test_orientation_gives_the_known_beam_direction(converted):
    """phi (from crop columns towards crop rows) equals the stage-frame beam direction, 30 deg;
    a crop with its rows in camera order would give -30 deg."""
    _, scan = converted
    tracks = EXPECTED["kind"] == "track"
    phi = barshift.direction(scan.images[tracks])
    np.testing.assert_allclose(phi, float(EXPECTED["beam_phi_deg"]), atol=3.0)
    flipped = barshift.direction(scan.images[tracks][:, :, ::-1, :])
    np.testing.assert_allclose(flipped, -float(EXPECTED["beam_phi_deg"]), atol=3.0)
    shift = barshift.barshift(scan.images[tracks], scan.attrs["pixel_size_nm"])
    np.testing.assert_allclose(shift, 7 * 0.6 * 27.52, rtol=0.05)  # pols 0 and 7, 7 steps of 0.6 px


def test_polarisation_order_follows_the_polariser(converted):
    """Barycenters of a track advance along the beam with the polarisation index; the flags-2
    frame (spot one step further than polarisation 7) is never taken for polarisation 0."""
    _, scan = converted
    tracks = EXPECTED["kind"] == "track"
    bc = barshift.barycenters(scan.images[tracks])  # (N, 8, 2) px, (column, row)
    beam = np.radians(float(EXPECTED["beam_phi_deg"]))
    along = bc[..., 0] * np.cos(beam) + bc[..., 1] * np.sin(beam)
    steps = np.diff(along, axis=1)
    assert (steps > 0.3).all() and (steps < 0.9).all(), steps  # 0.6 px per polarisation


def test_bad_grain_lines_are_skipped_and_counted(converted):
    result, _ = converted
    assert result.skipped == {reason: 1 for reason in convert.SKIP_REASONS}
    by_line = dict(zip(result.skipped_lines["line"], result.skipped_lines["reason"]))
    assert by_line == {5: "crop crosses the frame edge", 9: "polarisation missing (-1)",
                       10: "cluster index not in the view", 11: "cluster of another polarisation or flag",
                       13: "raw frame missing from Frames", 14: "view flag not 0",
                       15: "view entry not in Vdmr", 16: "grain index not in the view",
                       17: "cluster frame not in the view"}
    assert "skipped 9 grain lines" in result.summary()
    assert io.read_attrs(result.output)["skipped"]  # recorded in the file too


def test_both_grain_list_formats(tmp_path, converted):
    _, scan = converted
    a = convert.read_grain_list(GRAINS_TRFLAG)
    b = convert.read_grain_list(GRAINS_COMMA)
    cols = ["line", "header_id", "view_id", "grain_id"] + [f"cl{p}" for p in range(8)]
    assert a[cols].equals(b[cols])
    assert (b["tr_flag"] == convert.NO_TR_FLAG).all() and (a["n_pol"][a["cl5"] >= 0] == 8).all()
    result = run_convert(tmp_path, grains=GRAINS_COMMA)
    np.testing.assert_array_equal(io.read_scan(result.output).images, scan.images)


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
    back = io.read_scan(run_convert(tmp_path).output)
    np.testing.assert_array_equal(back.images, scan.images)
    assert back.events.equals(scan.events)


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
    assert "8 events written from 17 grain lines" in text and "raw frame missing from Frames" in text
    back = io.read_scan(out)
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
    back = io.read_scan(result.output)
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
