"""The conventional analysis of a dataset: barshift, direction and ellipse variables of the clean
events, the cut at fixed C100keV efficiency, and Table 1 rows with uncertainties.

``variables(profile)`` streams every scan file once, block by block, measures the clean events
and caches the result as ``results/<profile>/conventional.csv``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from . import dataset, metrics, paths, preprocessing, provenance, selection
from .barshift import conventional_variables
from .profiles import Profile
from .shape import ellipse_fit

REFERENCE_SAMPLE = "C100keV"
REFERENCE_EFFICIENCY = 0.30  # [P21] sec. 3.1: the cut keeps 30 % of C100keV validation events
TABLE1_SAMPLES = ("C30keV", "C100keV", "fog")
# [P21] Table 1 (fractions): barshift, NEWSnet, shape analysis ([11], another sample)
PAPER_TABLE1 = pd.DataFrame([
    ("barshift", "C30keV", "validation", 0.189, 0.004), ("barshift", "C30keV", "test", 0.193, 0.004),
    ("barshift", "C100keV", "validation", 0.300, 0.004), ("barshift", "C100keV", "test", 0.303, 0.005),
    ("barshift", "fog", "validation", 0.25, 0.01), ("barshift", "fog", "test", 0.25, 0.01),
    ("newsnet", "C30keV", "validation", 0.231, 0.037), ("newsnet", "C30keV", "test", 0.122, 0.028),
    ("newsnet", "C100keV", "validation", 0.300, 0.034), ("newsnet", "C100keV", "test", 0.311, 0.033),
    ("newsnet", "fog", "validation", 1.4e-3, 0.45e-3), ("newsnet", "fog", "test", 2.7e-4, 0.81e-4),
    ("shape", "C30keV", "other sample", 0.017, 0.001), ("shape", "C100keV", "other sample", 0.297, 0.007),
    ("shape", "fog", "other sample", 0.01, np.nan),
], columns=["method", "sample", "split", "value", "err"])


def variables(profile: Profile, rebuild: bool = False, progress: bool = True) -> pd.DataFrame:
    """Clean events with their conventional variables (cached in ``results/<profile>/``).

    Columns: the clean-event table's, plus ``barshift_nm``, ``phi_deg``, ``pol1_deg``,
    ``pol2_deg``, ``path_nm``, ``regularity``, ``n_missing`` and the ellipse ``major_nm``,
    ``minor_nm``, ``ellipticity``, ``angle_deg``. The barycenters are taken in the standard
    polarisation order of each file's ``polarisation_deg`` attribute. The cache is keyed
    (:mod:`provenance`) by the clean selection and the code of the estimators.
    """
    path = paths.results_dir(profile.name) / "conventional.csv"
    clean = selection.clean_events(profile, progress=progress)
    key = provenance.key("conventional", clean_events=provenance.upstream(paths.results_dir(profile.name) / "clean_events.csv"))
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
    measured.to_csv(path, index=False)
    provenance.write(path, key)
    return clean.merge(measured, on=["file", "event_id"], how="left", validate="one_to_one")


def select(table: pd.DataFrame, sample: str, split: str) -> pd.DataFrame:
    return table[(table["sample"] == sample) & (table["split"] == split)]


def reference_threshold(table: pd.DataFrame, column: str) -> tuple[float, float, float]:
    """Cut on ``column`` keeping 30 % of C100keV validation events: (value, low, high)."""
    ref = select(table, REFERENCE_SAMPLE, "validation")[column]
    return metrics.threshold_interval(ref, REFERENCE_EFFICIENCY)


def table1_rows(table: pd.DataFrame, method: str, column: str, threshold: float,
                splits=("validation", "test"), samples=TABLE1_SAMPLES) -> pd.DataFrame:
    """Table 1 rows: efficiency (signal) or reduction factor (fog, fraction passing) above the cut,
    for each of ``samples`` (a network with gamma as a class adds gamma's rows).

    Columns ``method, sample, split, value, err_low, err_high, passed, total, upper_limit``;
    intervals are 68 % Clopper-Pearson, ``upper_limit`` the 90 % limit (used when none pass).
    """
    rows = []
    for sample in samples:
        for split in splits:
            r = metrics.reduction_factor(select(table, sample, split)[column], threshold)
            rows.append({"method": method, "sample": sample, "split": split, "value": r["value"],
                         "err_low": r["value"] - r["low"], "err_high": r["high"] - r["value"],
                         "passed": r["k"], "total": r["n"], "upper_limit": r["upper_limit"]})
    return pd.DataFrame(rows)


def write_table1(rows: pd.DataFrame, profile: Profile) -> Path:
    """Replace ``rows``' method in ``results/<profile>/table1.csv`` (one file for all methods)."""
    path = paths.results_dir(profile.name) / "table1.csv"
    if path.exists():
        old = pd.read_csv(path)
        rows = pd.concat([old[~old["method"].isin(rows["method"].unique())], rows], ignore_index=True)
    order = {m: i for i, m in enumerate(("barshift", "shape", "newsnet"))}
    rows = rows.sort_values(["method", "sample", "split"], key=lambda c: c.map(order) if c.name == "method" else c)
    rows.to_csv(path, index=False)
    return path


def read_table1(profile: Profile) -> pd.DataFrame:
    path = paths.results_dir(profile.name) / "table1.csv"
    return pd.read_csv(path) if path.exists() else pd.DataFrame(
        columns=["method", "sample", "split", "value", "err_low", "err_high"])


def format_table1(rows: pd.DataFrame, methods=("barshift", "shape", "newsnet")) -> pd.DataFrame:
    """Rows x (method, split) of ``value ± err`` strings; ``not run`` where a method is missing,
    ``-`` for a sample a method that ran did not measure (gamma for the barshift cut). Samples:
    Table 1's three, then any other the rows hold (C60keV, gamma when the network learnt them)."""
    from .io import SAMPLES
    samples = list(TABLE1_SAMPLES) + [s for s in SAMPLES if s not in TABLE1_SAMPLES and s in set(rows["sample"])]
    out = {}
    for method in methods:
        ran = (rows["method"] == method).any()
        for split in ("validation", "test"):
            col = []
            for sample in samples:
                r = rows[(rows["method"] == method) & (rows["sample"] == sample) & (rows["split"] == split)]
                if r.empty:
                    col.append("-" if ran else "not run")
                elif r["value"].iloc[0] == 0 and "upper_limit" in r:
                    col.append(f"< {r['upper_limit'].iloc[0]:.2g} (90% CL)")
                else:
                    col.append(metrics.format_value(r["value"].iloc[0], r["err_low"].iloc[0], r["err_high"].iloc[0]))
            out[(method, split)] = col
    return pd.DataFrame(out, index=pd.Index(samples, name="sample"))


def paper_table1() -> pd.DataFrame:
    """The paper's Table 1 in the same layout (fog: reduction factor)."""
    out = {}
    for (method, split), g in PAPER_TABLE1.groupby(["method", "split"], sort=False):
        out[(method, split)] = [metrics.format_value(v, e) if np.isfinite(e) else f"{v:g}"
                                for v, e in zip(g.set_index("sample").loc[list(TABLE1_SAMPLES), "value"],
                                                g.set_index("sample").loc[list(TABLE1_SAMPLES), "err"])]
    return pd.DataFrame(out, index=pd.Index(TABLE1_SAMPLES, name="sample"))


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
    """Write ``results/<profile>/<name>.json`` with the cut and its 68 % interval."""
    import json
    path = paths.results_dir(profile.name) / f"{name}.json"
    path.write_text(json.dumps({"value": value[0], "low": value[1], "high": value[2], "unit": unit,
                                "reference": f"{REFERENCE_SAMPLE} validation efficiency {REFERENCE_EFFICIENCY}"},
                               indent=1))
    return path
