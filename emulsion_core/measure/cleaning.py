"""Data cleaning ([P21] sec. 2): the same cuts for every sample, applied in order.

1. ``dense_area``: events in views with more than ``max_view_density`` events (scratches, dust;
   the experiment skips views with too many clusters, physics.md a.7);
2. ``too_few_pixels``: cluster of at most ``min_npx - 1`` pixels (noise clusters; a.7 npx > 10;
   second in the experiment's order, b.8);
3. ``missing_polarisation``: fewer than ``n_polarisations`` polarisations with a cluster linked to
   the grain (the experiment's selection requires all 8, physics.md a.7 cut_npol). It comes
   before the brightness cuts (the experiment applied it last, b.8 step 8): a grain converted
   with a missing polarisation has a zero image there (:mod:`emulsion_core.formats.convert`),
   which lowers its brightness, and the cut flow should name the missing polarisation;
4. ``too_dim``: peak over background below ``min_peak_adu`` (fake events from pixel noise);
5. ``too_bright``: mean cluster brightness above ``max_brightness_mean_adu`` (a.7: 100 ADU) or
   more than ``max_npx`` pixels (large dust);
6. ``not_isolated``: more than one optically resolved peak (b.9);
7. ``surface``: depth outside ``z_window_um`` (silver nanoparticles on the layer surfaces, a.5).

An event is clean when no cut removes it, so the order changes only which cut the cut flow
names first, never the clean events.

The pixel counts are those of :mod:`emulsion_core.measure.features` (unpolarised image, 3 sigma of a
single frame's noise), so ``max_npx`` is set on that scale rather than the online software's
126 px. ``clean`` returns the mask of kept events; ``cutflow`` the table of events in,
removed by each cut and left, per sample.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from emulsion_core.stats.metrics import format_fraction

CUTS = ("dense_area", "too_few_pixels", "missing_polarisation", "too_dim", "too_bright", "not_isolated", "surface")
CUT_LABELS = {
    "dense_area": "high event density area",
    "missing_polarisation": "no cluster in every polarisation",
    "too_few_pixels": "too few pixels",
    "too_dim": "too low brightness",
    "too_bright": "too high brightness / large dust",
    "not_isolated": "non-isolated (several resolved peaks)",
    "surface": "surface layers (depth)",
}
REQUIRED = ("view_density", "npx", "peak_adu", "brightness_mean", "n_peaks", "z_um", "n_pol")


@dataclass(frozen=True)
class CleaningCuts:
    """Cut values, identical for every sample."""

    max_view_density: float = 600.0  # events per view
    min_npx: int = 11  # npx > 10 ([PHD] "cuts applied by Valerio's script")
    min_peak_adu: float = 8.0  # peak over background of the unpolarised image, ADU
    max_brightness_mean_adu: float = 100.0  # [NW] settings.mac thr_ldust_br = 10^2.0 ADU
    max_npx: int = 350  # large dust, on this suite's npx scale
    max_peaks: int = 1
    z_window_um: tuple = (-22.0, 22.0)  # [PHD] Summary.ipynb fog z ranges, about +-22 um
    n_polarisations: int = 8  # all of them ([NW] settings.mac cut_npol)

    def as_dict(self) -> dict:
        return asdict(self)


def cut_masks(events: pd.DataFrame, cuts: CleaningCuts = CleaningCuts()) -> pd.DataFrame:
    """Boolean table, one column per cut: True where the cut alone would remove the event."""
    missing = [c for c in REQUIRED if c not in events.columns]
    if missing:
        raise KeyError(f"events table lacks the column(s) {missing} that cleaning needs; "
                       "compute them with emulsion_core.measure.features.cluster_features")
    z = events["z_um"].to_numpy()
    return pd.DataFrame({
        "dense_area": events["view_density"].to_numpy() > cuts.max_view_density,
        "too_few_pixels": events["npx"].to_numpy() < cuts.min_npx,
        "too_dim": events["peak_adu"].to_numpy() < cuts.min_peak_adu,
        "too_bright": (events["brightness_mean"].to_numpy() > cuts.max_brightness_mean_adu)
        | (events["npx"].to_numpy() > cuts.max_npx),
        "not_isolated": events["n_peaks"].to_numpy() > cuts.max_peaks,
        "surface": (z < cuts.z_window_um[0]) | (z > cuts.z_window_um[1]),
        "missing_polarisation": events["n_pol"].to_numpy() < cuts.n_polarisations,
    }, index=events.index)


def first_cut(masks: pd.DataFrame) -> pd.Series:
    """Name of the first cut (in CUTS order) that removes each event, or ``"kept"``."""
    m = masks[list(CUTS)].to_numpy()
    first = np.where(m.any(axis=1), np.argmax(m, axis=1), len(CUTS))
    return pd.Series(np.asarray(list(CUTS) + ["kept"], dtype=object)[first], index=masks.index, name="removed_by")


def clean(events: pd.DataFrame, cuts: CleaningCuts = CleaningCuts()) -> np.ndarray:
    """Boolean mask (N,) of the events that pass every cut."""
    return ~cut_masks(events, cuts).to_numpy().any(axis=1)


def cutflow(events: pd.DataFrame, cuts: CleaningCuts = CleaningCuts(), by: str = "sample") -> pd.DataFrame:
    """Cut-flow per group: events in, removed by each cut in order, and left (counts).

    Rows are the groups of ``by``; columns ``in``, one per cut, ``left``, ``yield`` (fraction)
    and ``yield (68% CL)`` (text, the fraction with its Clopper-Pearson interval).
    """
    removed = first_cut(cut_masks(events, cuts))
    table = pd.crosstab(events[by], removed).reindex(columns=list(CUTS) + ["kept"], fill_value=0)
    table.insert(0, "in", table.sum(axis=1))
    table = table.rename(columns={"kept": "left"})
    table["yield"] = table["left"] / table["in"]
    table["yield (68% CL)"] = [format_fraction(k, n) for k, n in zip(table["left"], table["in"])]
    table.columns.name = None
    return table


def isolated_fractions(events: pd.DataFrame, cuts: CleaningCuts = CleaningCuts(), by: str = "sample") -> pd.DataFrame:
    """Fraction of each group's events with at most ``cuts.max_peaks`` optical peaks (isolated),
    before any cut, with its 68 % interval, beside the authors' fraction of ``tr_flag = -1`` events
    (``config.paper.AUTHORS_ISOLATED_FRACTION``; their flag also drops microtrack members, which
    the simulator does not make): a validation of the simulated densities and neighbours."""
    from emulsion_core.config.paper import AUTHORS_ISOLATED_FRACTION
    isolated = pd.Series(events["n_peaks"].to_numpy() <= cuts.max_peaks, index=events.index)
    grouped = isolated.groupby(events[by].astype(str), sort=False)
    table = pd.DataFrame({"events": grouped.size(), "isolated": grouped.sum().astype(int)})
    table["fraction"] = table["isolated"] / table["events"]
    table["fraction (68% CL)"] = [format_fraction(k, n) for k, n in zip(table["isolated"], table["events"])]
    table["authors (tr_flag = -1)"] = [AUTHORS_ISOLATED_FRACTION.get(g, np.nan) for g in table.index]
    table.index.name = by
    return table


def removed_kinds(events: pd.DataFrame, cuts: CleaningCuts = CleaningCuts(), kind: str = "true_kind",
                  by: str = "sample") -> pd.DataFrame:
    """Simulated data: events of each (group, true kind) removed by each cut (first cut wins)."""
    removed = first_cut(cut_masks(events, cuts))
    table = pd.crosstab([events[by], events[kind]], removed).reindex(columns=list(CUTS) + ["kept"], fill_value=0)
    table.columns.name = None
    return table


def purity(events: pd.DataFrame, mask: np.ndarray, wanted: dict, kind: str = "true_kind", by: str = "sample") -> pd.DataFrame:
    """Fraction of kept events whose true kind is the sample's physics (``wanted[sample]``).

    Returns per group: kept events, wanted ones among them, purity and the fraction of wanted
    events that cleaning kept (its efficiency).
    """
    rows = []
    for name, group in events.groupby(by, sort=False):
        good = group[kind].to_numpy() == wanted[name]
        keep = mask[events.index.get_indexer(group.index)]
        k_good, n_keep, n_good = int((keep & good).sum()), int(keep.sum()), int(good.sum())
        rows.append({by: name, "kept": n_keep, "wanted_kept": k_good,
                     "purity": k_good / max(n_keep, 1), "efficiency": k_good / max(n_good, 1),
                     "purity (68% CL)": format_fraction(k_good, n_keep),
                     "efficiency (68% CL)": format_fraction(k_good, n_good)})
    return pd.DataFrame(rows).set_index(by)
