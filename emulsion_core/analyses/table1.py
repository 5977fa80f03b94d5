"""Table 1 of the paper, in one place: the working point (the cut keeping 30 % of C100keV
validation events), one row schema, one atomic ``record`` into ``results/<profile>/table1.csv``
(every method's rows in one file, a method's rows replaced when it runs again), the formatted
table, and the paper's values beside ours ([P21] Table 1, :data:`emulsion_core.config.paper.TABLE1`).

Fractions are the fraction of a sample's events passing the cut: the efficiency for carbon, the
reduction factor for fog; intervals are 68 % Clopper-Pearson, ``upper_limit`` the 90 % limit
(shown when no event passes)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from emulsion_core.config import paper
from emulsion_core.config.profiles import Profile
from emulsion_core.config.samples import EVALUATION_SPLITS, SAMPLES, SIGNAL_SAMPLES, TABLE1_SAMPLES
from emulsion_core.stats import metrics
from emulsion_core.storage import atomic, results

COLUMNS = ("method", "sample", "split", "value", "err_low", "err_high", "passed", "total", "upper_limit")
METHOD_ORDER = ("barshift", "shape", "newsnet")  # the paper's order; other methods (controls) follow


def select(table: pd.DataFrame, sample: str, split: str) -> pd.DataFrame:
    """The events of ``sample`` in ``split``."""
    return table[(table["sample"] == sample) & (table["split"] == split)]


def reference_cut(table: pd.DataFrame, column: str) -> tuple[float, float, float]:
    """Cut on ``column`` keeping 30 % of C100keV validation events: (value, low, high)."""
    ref = select(table, paper.REFERENCE_SAMPLE, "validation")[column]
    return metrics.threshold_interval(ref, paper.REFERENCE_EFFICIENCY)


def samples_for(classes) -> tuple:
    """Table 1's samples for a network's class list: C30keV, C100keV, fog, then the list's other
    classes (C60keV: an efficiency row; gamma: a background row like fog's)."""
    return tuple(TABLE1_SAMPLES) + tuple(c for c in classes if c not in TABLE1_SAMPLES)


def splits_of(table: pd.DataFrame) -> tuple:
    """The evaluation splits ``table`` holds events of: validation, test, and test_bulk (carbon
    tracks at the bulk samples' depths) where it was simulated."""
    return EVALUATION_SPLITS if (table["split"] == "test_bulk").any() else EVALUATION_SPLITS[:2]


def rows(table: pd.DataFrame, method: str, column: str, cut: float, splits=None,
         samples=TABLE1_SAMPLES) -> pd.DataFrame:
    """Rows of ``method``: the fraction of each sample's events with ``column`` above ``cut``, per
    split (default :func:`splits_of`), in the :data:`COLUMNS` schema. A (sample, test_bulk) pair
    without events (fog: its test is already the bulk) has no row."""
    out = []
    for sample in samples:
        for split in splits_of(table) if splits is None else splits:
            events = select(table, sample, split)[column]
            if split == "test_bulk" and not len(events):
                continue
            r = metrics.reduction_factor(events, cut)
            out.append({"method": method, "sample": sample, "split": split, "value": r["value"],
                        "err_low": r["value"] - r["low"], "err_high": r["high"] - r["value"],
                        "passed": r["k"], "total": r["n"], "upper_limit": r["upper_limit"]})
    return pd.DataFrame(out, columns=list(COLUMNS))


def path(profile: Profile) -> Path:
    """``results/<profile>/table1.csv``."""
    return results.path(profile.name, "table1")


def record(new_rows: pd.DataFrame, profile: Profile) -> Path:
    """Write ``new_rows`` into the profile's Table 1 atomically, replacing the rows of their methods
    and keeping the other methods' rows; returns the file."""
    missing = set(COLUMNS[:6]) - set(new_rows.columns)
    if missing:
        raise ValueError(f"Table 1 rows lack the column(s) {sorted(missing)} (schema: {', '.join(COLUMNS)})")
    file = path(profile)
    merged = new_rows
    if file.exists():
        old = pd.read_csv(file)
        merged = pd.concat([old[~old["method"].isin(new_rows["method"].unique())], new_rows], ignore_index=True)
    order = {m: i for i, m in enumerate(METHOD_ORDER)}
    merged = merged.sort_values(["method", "sample", "split"],
                                key=lambda c: c.map(order) if c.name == "method" else c)
    return atomic.write_csv(merged, file, index=False)


def read(profile: Profile) -> pd.DataFrame:
    """The profile's Table 1 rows (empty, in the schema, before any method has run)."""
    file = path(profile)
    return pd.read_csv(file) if file.exists() else pd.DataFrame(columns=list(COLUMNS))


def formatted(table_rows: pd.DataFrame, methods=METHOD_ORDER) -> pd.DataFrame:
    """Samples x (method, split) of ``value ± err`` strings (test_bulk where simulated); ``not run``
    where a method is missing,
    ``-`` for a sample a method that ran did not measure (gamma for the barshift cut). Samples:
    Table 1's three, then any other the rows hold (C60keV, gamma when the network learnt them)."""
    present = set(table_rows["sample"])
    samples = list(TABLE1_SAMPLES) + [s for s in SAMPLES if s not in TABLE1_SAMPLES and s in present]
    out = {}
    for method in methods:
        ran = (table_rows["method"] == method).any()
        for split in splits_of(table_rows):
            out[(method, split)] = [_cell(table_rows, method, sample, split, ran) for sample in samples]
    return pd.DataFrame(out, index=pd.Index(samples, name="sample"))


def _cell(table_rows: pd.DataFrame, method: str, sample: str, split: str, ran: bool) -> str:
    r = table_rows[(table_rows["method"] == method) & (table_rows["sample"] == sample)
                   & (table_rows["split"] == split)]
    if r.empty:
        return "-" if ran else "not run"
    if r["value"].iloc[0] == 0 and "upper_limit" in r:
        return f"< {r['upper_limit'].iloc[0]:.2g} (90% CL)"
    return metrics.format_value(r["value"].iloc[0], r["err_low"].iloc[0], r["err_high"].iloc[0])


def paper_rows() -> pd.DataFrame:
    """The paper's Table 1 as rows: method, sample, split, value, err."""
    return pd.DataFrame(paper.TABLE1, columns=["method", "sample", "split", "value", "err"])


def paper_table() -> pd.DataFrame:
    """The paper's Table 1 in the layout of :func:`formatted` (fog: reduction factor)."""
    out = {}
    for (method, split), g in paper_rows().groupby(["method", "split"], sort=False):
        g = g.set_index("sample").loc[list(TABLE1_SAMPLES)]
        out[(method, split)] = [metrics.format_value(v, e) if np.isfinite(e) else f"{v:g}"
                                for v, e in zip(g["value"], g["err"])]
    return pd.DataFrame(out, index=pd.Index(TABLE1_SAMPLES, name="sample"))


def beside_paper(table_rows: pd.DataFrame, methods=("barshift", "newsnet")) -> pd.DataFrame:
    """Ours next to the paper's, per (method, sample, split) the paper reports: ``ours``, ``paper``
    (formatted) and ``pull`` = (ours - paper) / the paper's error (NaN where it gives none)."""
    ours = table_rows.set_index(["method", "sample", "split"])
    out = []
    for r in paper_rows().itertuples(index=False):
        if r.method not in methods or (r.method, r.sample, r.split) not in ours.index:
            continue
        o = ours.loc[(r.method, r.sample, r.split)]
        out.append({"method": r.method, "sample": r.sample, "split": r.split,
                    "ours": metrics.format_value(o["value"], o["err_low"], o["err_high"]),
                    "paper": metrics.format_value(r.value, r.err) if np.isfinite(r.err) else f"{r.value:g}",
                    "pull": (o["value"] - r.value) / r.err if np.isfinite(r.err) and r.err > 0 else np.nan})
    return pd.DataFrame(out).set_index(["method", "sample", "split"]) if out else pd.DataFrame()


def bulk_comparison(table_rows: pd.DataFrame) -> pd.DataFrame:
    """Each method's carbon efficiency on the implanted test area and on the bulk one (tracks at
    the bulk samples' depths) at the same cut, and their ratio: what a method keeps of recoils
    spread through the detector, which the calibration samples do not show."""
    out = []
    for (method, sample), g in table_rows[table_rows["sample"].isin(SIGNAL_SAMPLES)].groupby(["method", "sample"]):
        by = g.set_index("split")
        if not {"test", "test_bulk"} <= set(by.index):
            continue
        t, b = by.loc["test"], by.loc["test_bulk"]
        out.append({"method": method, "sample": sample,
                    "implanted test": metrics.format_value(t["value"], t["err_low"], t["err_high"]),
                    "bulk test": metrics.format_value(b["value"], b["err_low"], b["err_high"]),
                    "bulk / implanted": round(b["value"] / t["value"], 3) if t["value"] > 0 else np.nan})
    return pd.DataFrame(out).set_index(["method", "sample"]) if out else pd.DataFrame()
