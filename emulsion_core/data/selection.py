"""The cleaned event selection every later notebook starts from, and the tables around it.

``clean_events(profile)`` reads the profile's dataset (made ready by
:mod:`emulsion_core.app.prepare`; it never simulates), applies the cleaning cuts and writes
``results/<profile>/clean_events.csv`` (file, event_id, sample, scan, split); later notebooks
read it, or rebuild it when they run alone.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from emulsion_core.measure import cleaning
from emulsion_core.data import dataset
from emulsion_core.storage import atomic, provenance, results
from emulsion_core.config.profiles import Profile
from emulsion_core.config import paper
from emulsion_core.config.samples import PRIMARY_KIND, TABLE1_SAMPLES
from emulsion_core.config.samples import SPLITS as ALL_SPLITS

# [P21] Table 4: events after cleaning
PAPER_TABLE4 = pd.DataFrame({k: list(v) for k, v in paper.TABLE4.items()}, index=pd.Index(TABLE1_SAMPLES, name="sample"))
SPLITS = ("train", "validation", "test")  # the paper's (Table 4)


def all_events(profile: Profile, progress: bool = True) -> pd.DataFrame:
    """Every raw event of the profile's dataset (made ready by :mod:`emulsion_core.app.prepare`), with the
    cleaning decision: ``removed_by`` (first cut, or ``kept``) and ``clean`` (bool)."""
    folder = dataset.require(profile)
    table = dataset.events_table(folder)
    table["removed_by"] = cleaning.first_cut(cleaning.cut_masks(table))
    table["clean"] = table["removed_by"] == "kept"
    return table


def clean_events(profile: Profile, rebuild: bool = False, progress: bool = True) -> pd.DataFrame:
    """Events that pass cleaning (all columns), cached as ``results/<profile>/clean_events.csv``.

    The cache is keyed (:mod:`provenance`) by the dataset's fingerprint, the cut values and the
    code of cleaning and of the data path; it is rebuilt when any changed (re-simulated data,
    other cuts, edited code) or when ``rebuild`` is set.
    """
    path = results.path(profile.name, "clean_events")
    folder = dataset.require(profile)
    key = provenance.key("clean_events", dataset=dataset.fingerprint(folder), cuts=cleaning.CleaningCuts().as_dict())
    if not rebuild and provenance.is_current(path, key):
        keys = pd.read_csv(path)
        table = dataset.events_table(folder)
        return keys[["file", "event_id"]].merge(table, on=["file", "event_id"], how="left", validate="one_to_one")
    table = all_events(profile, progress)
    kept = table[table["clean"]].reset_index(drop=True)
    atomic.write_csv(kept[["file", "event_id", "sample", "scan", "split"]], path, index=False)
    provenance.write(path, key)
    return kept


def split_counts(table: pd.DataFrame) -> pd.DataFrame:
    """Events per sample and split (rows: samples; columns: train, validation, test, test_bulk
    where simulated, total)."""
    present = [s for s in ALL_SPLITS if s in SPLITS or s in set(table["split"])]
    counts = pd.crosstab(table["sample"], table["split"]).reindex(columns=present, fill_value=0)
    counts["total"] = counts.sum(axis=1)
    counts.columns.name = None
    return counts


def table4_comparison(clean: pd.DataFrame) -> pd.DataFrame:
    """Clean events per split next to the paper's Table 4 and their ratio."""
    ours = split_counts(clean).loc[lambda d: d.index.isin(PAPER_TABLE4.index), list(SPLITS)]
    rows = {}
    for split in SPLITS:
        rows[(split, "this run")] = ours[split]
        rows[(split, "paper")] = PAPER_TABLE4[split]
        rows[(split, "ratio")] = (ours[split] / PAPER_TABLE4[split]).round(3)
    return pd.DataFrame(rows).reindex(PAPER_TABLE4.index)


def example_events(table: pd.DataFrame, quantile: float = 0.75) -> pd.DataFrame:
    """One kept event per sample (its physics kind) and one removed event per instrumental
    kind: the one whose peak brightness is nearest the ``quantile`` of its group (visible
    but typical). Deterministic; rows carry a ``label``."""
    picks = []
    for sample, group in table[table["clean"]].groupby("sample", sort=False):
        g = group[group["true_kind"] == PRIMARY_KIND[sample]] if "true_kind" in group else group
        picks.append(_typical(g, quantile).assign(label=f"{sample}\n(kept)"))
    if "true_kind" in table:
        removed = table[~table["clean"]]
        for kind in ("dust", "noise", "nanoparticle", "non_isolated", "scratch"):
            g = removed[removed["true_kind"] == kind]
            if len(g):
                picks.append(_typical(g, quantile).assign(label=f"{kind}\n(cut: {g['removed_by'].mode().iloc[0]})"))
    return pd.concat(picks, ignore_index=True)


def _typical(group: pd.DataFrame, quantile: float) -> pd.DataFrame:
    target = group["peak_adu"].quantile(quantile)
    i = int(np.argmin(np.abs(group["peak_adu"].to_numpy() - target)))
    return group.iloc[[i]]


def has_truth(table: pd.DataFrame) -> bool:
    """True for simulated events (a ``true_kind`` column); real scans have no truth."""
    return "true_kind" in table and not table["true_kind"].isna().all()


def removed_kinds(table: pd.DataFrame) -> pd.DataFrame:
    """Simulated data: events of each (sample, true kind) removed by each cut
    (:func:`cleaning.removed_kinds`); an empty table for data without truth (real scans)."""
    if not has_truth(table):
        return pd.DataFrame(columns=list(cleaning.CUTS) + ["kept"],
                            index=pd.MultiIndex.from_arrays([[], []], names=["sample", "true_kind"]))
    return cleaning.removed_kinds(table)


def truth_purity(table: pd.DataFrame) -> pd.DataFrame:
    """Simulated data: purity and cleaning efficiency per sample (see :func:`cleaning.purity`);
    an empty table for data without truth (real scans)."""
    if not has_truth(table):
        return pd.DataFrame(columns=["kept", "wanted_kept", "purity", "efficiency", "purity (68% CL)",
                                     "efficiency (68% CL)"], index=pd.Index([], name="sample"))
    wanted = {s: PRIMARY_KIND[s] for s in table["sample"].unique()}
    return cleaning.purity(table, table["clean"].to_numpy(), wanted)
