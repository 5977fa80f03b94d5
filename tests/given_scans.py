"""Helpers for tests that need scans written by another program (no simulator attributes) and profiles
written outside the repository."""

import hashlib
from pathlib import Path

import yaml

from emulsion_core.formats import hdf5
from emulsion_core.simulator.simulate import simulate_scan


def foreign_scan(dest, sample: str, scan: str, n: int, seed: int, scratch) -> Path:
    """A valid format_version 1 file as another program would write it: the simulator's images
    and events, but only the format's required columns and attributes, written by hdf5.write_scan."""
    src = simulate_scan(Path(scratch) / f"src_{sample}_{scan}_{seed}.h5", sample, scan, n, seed)
    s = hdf5.read_scan(src)
    attrs = {k: s.attrs[k] for k in hdf5.REQUIRED_ATTRS}
    events = s.events[list(hdf5.REQUIRED_COLUMNS)]
    return hdf5.write_scan(dest, hdf5.Scan(s.images, events, attrs))


def checksums(folder) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(Path(folder).iterdir()) if p.is_file()}


def write_profile(path, name: str, dataset: str, samples, rotated: int, test: int, seed: int = 11, **extra) -> Path:
    raw = {"profile": name, "seed": seed, "dataset": dataset, "samples": list(samples),
           "events": {"rotated": {s: rotated for s in samples}, "test": {s: test for s in samples}}, **extra}
    Path(path).write_text(yaml.safe_dump(raw))
    return Path(path)


def scan_contents(folder) -> dict:
    """What a dataset folder holds, file by file, as a reader sees it: each scan's images, events and
    attributes (hashed), ``splits.csv``'s bytes, the manifest without the files' byte counts. Compressed
    chunk bytes are left out: ISA-L's deflate once wrote one chunk of identical images 1 byte longer
    in another process (2026-12-07, a CI run)."""
    import hashlib
    import json
    from pathlib import Path

    from emulsion_core.formats import hdf5
    out = {}
    for p in sorted(Path(folder).iterdir()):
        if p.name.startswith(".") or not p.is_file():
            continue
        if p.suffix == ".h5":
            scan = hdf5.read_scan(p)
            h = hashlib.sha256(scan.images.tobytes())
            h.update(scan.events.to_csv(index=False).encode())
            h.update(json.dumps({k: str(v) for k, v in scan.attrs.items()}, sort_keys=True).encode())
            out[p.name] = h.hexdigest()
        elif p.suffix == ".json":
            manifest = json.loads(p.read_text())
            for entry in manifest.get("files", {}).values():
                if isinstance(entry, dict):
                    entry.pop("bytes", None)
            out[p.name] = json.dumps(manifest, sort_keys=True)
        else:
            out[p.name] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out
