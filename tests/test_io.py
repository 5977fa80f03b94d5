"""Scan format version 1: round trip, files written by other programs, and every malformed input."""

import h5py
import numpy as np
import pandas as pd
import pytest

from emulsion_core.formats import hdf5
from emulsion_core.formats.hdf5 import DataFormatError


def make_scan(n=5, p=8, size=40, rng=None):
    rng = rng or np.random.default_rng(0)
    images = rng.integers(20, 60, (n, p, size, size), dtype=np.uint8)
    events = pd.DataFrame({
        "event_id": np.arange(n, dtype=np.int64), "view": np.zeros(n, np.int32),
        "x_um": rng.random(n).astype(np.float32), "y_um": rng.random(n).astype(np.float32),
        "z_um": rng.random(n).astype(np.float32), "npx": np.full(n, 30, np.int32),
        "volume": np.full(n, 1000.0, np.float32), "brightness_max": np.full(n, 60, np.int32),
        "n_peaks": np.ones(n, np.int32), "view_density": np.full(n, 100, np.int32),
        "true_kind": ["track"] * n,
    })
    attrs = {"format_version": 1, "sample": "C100keV", "is_signal": True, "energy_keV": 100.0, "scan": "rot0",
             "rotation_deg": 0.0, "area": "train", "beam_phi_deg": 0.0, "pixel_size_nm": 27.52,
             "camera_max": 255, "polarisation_deg": [22.5 * i for i in range(p)]}
    return hdf5.Scan(images, events, attrs)


def test_round_trip(tmp_path):
    scan = make_scan()
    path = hdf5.write_scan(tmp_path / "a.h5", scan)
    back = hdf5.read_scan(path)
    np.testing.assert_array_equal(back.images, scan.images)
    pd.testing.assert_frame_equal(back.events, scan.events, check_dtype=False)
    assert back.attrs["sample"] == "C100keV" and back.attrs["polarisation_deg"][1] == 22.5
    assert not list(tmp_path.glob("*.tmp*"))


def test_file_written_by_another_program_loads(tmp_path):
    """Plain h5py, the DESIGN section 2 recipe: DataFrame.to_records, no chunking, no compression."""
    scan = make_scan(n=3)
    path = tmp_path / "foreign.h5"
    ev = scan.events.drop(columns="true_kind")
    with h5py.File(path, "w") as f:
        f["images"] = scan.images
        f["events"] = ev.to_records(index=False)
        for k, v in scan.attrs.items():
            f.attrs[k] = v
    back = hdf5.read_scan(path)
    assert back.images.shape == (3, 8, 40, 40)
    assert list(back.events["event_id"]) == [0, 1, 2]


def test_block_iterator_matches_whole_read(tmp_path):
    scan = make_scan(n=10)
    path = hdf5.write_scan(tmp_path / "a.h5", scan)
    blocks = list(hdf5.iter_scan_blocks(path, block_size=4))
    assert [len(b[0]) for b in blocks] == [4, 4, 2]
    np.testing.assert_array_equal(np.concatenate([b[0] for b in blocks]), scan.images)
    assert list(pd.concat([b[1] for b in blocks])["event_id"]) == list(range(10))


def test_interrupted_write_leaves_no_file(tmp_path):
    scan = make_scan(n=4)
    target = tmp_path / "a.h5"
    with pytest.raises(RuntimeError):
        with hdf5.ScanWriter(target, 4, scan.images.shape[1:], np.uint8, scan.attrs) as w:
            w.append(scan.images[:2], scan.events[:2])
            raise RuntimeError("killed")
    assert not target.exists()
    assert not list(tmp_path.iterdir())


def _write_raw(path, scan, drop_attr=None, drop_col=None, images=None, attrs=None):
    ev = scan.events.drop(columns=[c for c in [drop_col] if c]).drop(columns="true_kind")
    with h5py.File(path, "w") as f:
        f["images"] = scan.images if images is None else images
        f["events"] = ev.to_records(index=False)
        for k, v in {**scan.attrs, **(attrs or {})}.items():
            if k != drop_attr:
                f.attrs[k] = v
    return path


def check_error(path, field, match=None):
    with pytest.raises(DataFormatError) as err:
        hdf5.read_scan(path)
    msg = str(err.value)
    assert str(path) in msg, msg
    assert f"'{field}'" in msg, msg
    if match:
        assert match in msg, msg
    return err.value


def test_missing_file(tmp_path):
    check_error(tmp_path / "nope.h5", "file", "no such file")


def test_empty_file(tmp_path):
    p = tmp_path / "empty.h5"
    p.write_bytes(b"")
    check_error(p, "file", "empty")


def test_not_hdf5(tmp_path):
    p = tmp_path / "text.h5"
    p.write_text("event_id,x\n1,2\n")
    check_error(p, "file", "HDF5")


def test_truncated_file(tmp_path):
    p = hdf5.write_scan(tmp_path / "a.h5", make_scan(n=64))
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    check_error(p, "file")


def test_truncated_image_data(tmp_path):
    """Header intact, image chunks cut off: the error comes when the images are read."""
    p = hdf5.write_scan(tmp_path / "a.h5", make_scan(n=200))
    with h5py.File(p, "r") as f:
        offset = f["images"].id.get_chunk_info(2).byte_offset
    data = bytearray(p.read_bytes())
    data[offset:offset + 2000] = bytes(2000)  # corrupt a compressed chunk
    p.write_bytes(bytes(data))
    with pytest.raises(DataFormatError) as err:
        hdf5.read_scan(p)
    assert str(p) in str(err.value)


def test_wrong_dtype(tmp_path):
    s = make_scan()
    p = _write_raw(tmp_path / "a.h5", s, images=s.images.astype(np.int32))
    check_error(p, "images", "dtype")


def test_wrong_shape(tmp_path):
    s = make_scan()
    p = _write_raw(tmp_path / "a.h5", s, images=s.images[:, :, :, :].reshape(5, 8, 1600))
    check_error(p, "images", "shape")


def test_missing_column(tmp_path):
    p = _write_raw(tmp_path / "a.h5", make_scan(), drop_col="z_um")
    check_error(p, "z_um", "missing column")


def test_missing_attribute(tmp_path):
    p = _write_raw(tmp_path / "a.h5", make_scan(), drop_attr="pixel_size_nm")
    check_error(p, "pixel_size_nm", "missing attribute")


def test_nan_in_images(tmp_path):
    s = make_scan()
    img = s.images.astype(np.float32)
    img[3, 2, 10, 10] = np.nan
    p = _write_raw(tmp_path / "a.h5", s, images=img)
    err = check_error(p, "images", "NaN")
    assert err.event == 3 and "event 3" in str(err)


def test_inf_in_event_column(tmp_path):
    s = make_scan()
    s.events.loc[2, "x_um"] = np.inf
    p = _write_raw(tmp_path / "a.h5", s)
    err = check_error(p, "x_um", "NaN or inf")
    assert err.event == 2


def test_polarisation_count_mismatch(tmp_path):
    p = _write_raw(tmp_path / "a.h5", make_scan(), attrs={"polarisation_deg": [0.0, 45.0, 90.0, 135.0]})
    check_error(p, "images", "polarisation")


def test_unknown_format_version(tmp_path):
    p = _write_raw(tmp_path / "a.h5", make_scan(), attrs={"format_version": 7})
    check_error(p, "format_version", "unknown format_version 7")


def test_no_events(tmp_path):
    s = make_scan()
    with h5py.File(tmp_path / "a.h5", "w") as f:
        f["images"] = np.zeros((0, 8, 40, 40), np.uint8)
        f["events"] = s.events.drop(columns="true_kind").iloc[:0].to_records(index=False)
        for k, v in s.attrs.items():
            f.attrs[k] = v
    check_error(tmp_path / "a.h5", "images", "no events")


def test_pixel_above_camera_max(tmp_path):
    s = make_scan()
    p = _write_raw(tmp_path / "a.h5", s, attrs={"camera_max": 50})
    check_error(p, "images", "camera_max")


def test_splits_validation(tmp_path):
    (tmp_path / "splits.csv").write_text("file,event_id,split\na.h5,0,train\na.h5,1,holdout\n")
    with pytest.raises(DataFormatError) as err:
        hdf5.read_splits(tmp_path)
    assert "'split'" in str(err.value) and "holdout" in str(err.value) and "splits.csv" in str(err.value)
