"""The conventional analysis of a dataset: barshift, direction and ellipse variables of the clean
events, their angular distributions and efficiency curves, and the cuts they are read at (Table 1
itself: :mod:`emulsion_core.analyses.table1`).

``variables(profile)`` streams every scan file once, block by block, measures the clean events
and caches the result as ``results/<profile>/conventional.csv``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from emulsion_core.analyses.table1 import select
from emulsion_core.config import paper
from emulsion_core.config.profiles import Profile
from emulsion_core.data import dataset, preprocessing, selection
from emulsion_core.measure.barshift import conventional_variables
from emulsion_core.measure.shape import ellipse_fit
from emulsion_core.stats import metrics
from emulsion_core.storage import atomic, provenance, results


def variables(profile: Profile, rebuild: bool = False, progress: bool = True) -> pd.DataFrame:
    """Clean events with their conventional variables (cached in ``results/<profile>/``).

    Columns: the clean-event table's, plus ``barshift_nm``, ``phi_deg``, ``pol1_deg``,
    ``pol2_deg``, ``path_nm``, ``regularity``, ``n_missing`` and the ellipse ``major_nm``,
    ``minor_nm``, ``ellipticity``, ``angle_deg``. The barycenters are taken in the standard
    polarisation order of each file's ``polarisation_deg`` attribute. The cache is keyed
    (:mod:`provenance`) by the clean selection and the code of the estimators.
    """
    path = results.path(profile.name, "conventional")
    clean = selection.clean_events(profile, progress=progress)
    key = provenance.key("conventional", clean_events=provenance.upstream(results.path(profile.name, "clean_events")))
    if not rebuild and provenance.is_current(path, key):
        cached = pd.read_csv(path)
        return clean.merge(cached, on=["file", "event_id"], how="left", validate="one_to_one")
    def measure(images, attrs, source):
        pixel = float(attrs["pixel_size_nm"])
        ordered = preprocessing.standard_polarisations(images, attrs["polarisation_deg"], str(source))
        cv = conventional_variables(ordered, pixel, polarisation_deg=preprocessing.POLARISATIONS_DEG)
        ell = ellipse_fit(images, pixel)[["major_nm", "minor_nm", "ellipticity", "angle_deg"]]
        return pd.concat([cv, ell], axis=1)

    measured = dataset.measure_events(dataset.dataset_dir(profile), clean, measure, "barshift", progress)
    atomic.write_csv(measured, path, index=False)
    provenance.write(path, key)
    return clean.merge(measured, on=["file", "event_id"], how="left", validate="one_to_one")


def angular_histograms(table: pd.DataFrame, groups: dict, bins: int = 18) -> tuple[np.ndarray, dict]:
    """Normalised phi histograms (density, 1/deg) for named row selections ``{label: mask}``."""
    edges = np.linspace(-90, 90, bins + 1)
    out = {}
    for label, mask in groups.items():
        phi = table.loc[mask, "phi_deg"].dropna().to_numpy()
        h, _ = np.histogram(phi, bins=edges, density=True)
        err = np.sqrt(np.histogram(phi, bins=edges)[0]) / max(len(phi), 1) / np.diff(edges)
        out[label] = (h, err, len(phi))
    return edges, out


def rotation_masks(table: pd.DataFrame, sample: str) -> dict:
    """Events of ``sample`` in the unrotated scans (rot0 and rot0_repeat) and in the 90-degree scan."""
    s = table["sample"] == sample
    return {"0° rotation": s & table["scan"].isin(["rot0", "rot0_repeat"]), "90° rotation": s & (table["scan"] == "rot90")}


def length_masks(table: pd.DataFrame, sample: str, threshold: float, column: str = "barshift_nm") -> dict:
    """Short (at or below the cut) and long (above) events of ``sample`` in the unrotated scans."""
    s = (table["sample"] == sample) & table["scan"].isin(["rot0", "rot0_repeat"])
    return {"short": s & (table[column] <= threshold), "long": s & (table[column] > threshold)}


def efficiency_curves(table: pd.DataFrame, columns: dict, signal: str, split: str = "validation") -> dict:
    """{label: (signal efficiency, fog fraction passing)} for cuts ``column > t`` on ``split``."""
    out = {}
    for label, column in columns.items():
        _, eff, bkg = metrics.roc_points(select(table, signal, split)[column].dropna(),
                                         select(table, "fog", split)[column].dropna(), n_points=400)
        out[label] = (eff, bkg)
    return out


def save_threshold(profile: Profile, name: str, value: tuple, unit: str) -> Path:
    """Write the result ``name`` (``results/<profile>/<name>.json``, registered in
    :data:`emulsion_core.storage.results.RESULTS`) with the cut and its 68 % interval."""
    reference = f"{paper.REFERENCE_SAMPLE} validation efficiency {paper.REFERENCE_EFFICIENCY}"
    return atomic.write_json(results.path(profile.name, name), {"value": value[0], "low": value[1], "high": value[2],
                                                                 "unit": unit, "reference": reference}, indent=1)
