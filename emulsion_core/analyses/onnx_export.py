"""A profile's trained ensemble leaves for the experiment's chain: ONNX beside a JSON sidecar.

:func:`export_profile` writes ``results/<profile>/newsnet/export/newsnet.onnx`` (the final fit's
snapshot ensemble, or a kept variant such as the depth-matched network) through
:mod:`emulsion_core.networks.export`, with the sidecar completed by what only the analysis knows:
the cut in log-odds and the Table 1 working point it was set at, and the provenance of the fit
(the dataset, simulated or given, and whether the background was depth-matched).
"""

from __future__ import annotations

import json
from pathlib import Path

from emulsion_core.config.profiles import Profile
from emulsion_core.data import dataset
from emulsion_core.formats import ownership
from emulsion_core.networks import export, training
from emulsion_core.storage import results


def members(profile: Profile, variant: str | None = None) -> list:
    """The ``.keras`` files of the profile's final snapshot ensemble, or of a kept variant."""
    if variant:
        from emulsion_core.analyses.architectures import variant_path
        path = variant_path(profile, variant)
        if not path.exists():
            raise FileNotFoundError(f"no kept {variant} network at {path}: run notebook 04 (the architecture table)")
        return [path]
    folder = results.path(profile.name, "final_fit")
    info = training.read_network(folder) or {}
    if "last_epoch" not in info:
        raise FileNotFoundError(f"no finished final fit in {folder}: run notebook 04 first")
    last, n = int(info["last_epoch"]), int(profile.training["ensemble"])
    return [folder / f"epoch_{e:03d}.keras" for e in range(max(1, last - n + 1), last + 1)]


def provenance(profile: Profile, variant: str | None = None) -> dict:
    """What the fit was made from: the dataset (simulated, with the simulator's version, or given
    scans), its fingerprint, the profile and seed, and whether the background was depth-matched."""
    folder = dataset.dataset_dir(profile)
    contents = ownership.inspect(folder)
    source = "given scans" if contents.given else "simulated (emulsion_core simulator)"
    scans = (contents.manifest or {}).get("files", {}).values()
    versions = sorted({e["provenance"]["inputs"].get("simulator_version") for e in scans
                       if isinstance(e, dict) and "provenance" in e})
    return {"profile": profile.name, "seed": profile.seed, "dataset": profile.dataset, "data": source,
            "simulator_version": versions[0] if len(versions) == 1 else versions or None,
            "dataset_fingerprint": dataset.fingerprint(folder),
            "network": variant or "final snapshot ensemble", "depth_matched": variant == "depth_matched"}


def export_profile(profile: Profile, variant: str | None = None, output=None) -> Path:
    """Export the profile's ensemble (or ``variant``) to ONNX with its sidecar; returns the ONNX path."""
    from emulsion_core.analyses.network_analysis import classes
    names = classes(profile)
    extra = {"provenance": provenance(profile, variant)}
    cut = results.path(profile.name, "newsnet_threshold")
    if cut.exists() and not variant:
        c = json.loads(cut.read_text())
        extra["cut"] = {"log_odds": c["value"], "interval_68": [c["low"], c["high"]],
                        "working_point": f"{c['reference']} (Table 1's cut, set on the validation split)"}
    name = f"newsnet_{variant}.onnx" if variant else "newsnet.onnx"
    output = Path(output) if output else results.path(profile.name, "onnx_export") / name
    return export.export(members(profile, variant), output, names, extra)
