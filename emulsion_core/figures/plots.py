"""Figures styled for a paper. Plot functions take results and return or fill matplotlib objects;
they never recompute physics. ``save_figure`` writes PNG and PDF with stable metadata."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from emulsion_core.config.samples import TABLE1_SAMPLES
from emulsion_core.storage import results

SAMPLE_COLOURS = {"C30keV": "#1f77b4", "C60keV": "#9467bd", "C100keV": "#d62728", "fog": "#2ca02c",
                  "gamma": "#8c564b"}
STYLE = {"figure.dpi": 100, "savefig.dpi": 150, "font.size": 10, "axes.labelsize": 10,
         "legend.fontsize": 8, "legend.frameon": False, "axes.spines.top": False, "axes.spines.right": False}


def use_style() -> None:
    """Apply the suite's paper style to matplotlib."""
    plt.rcParams.update(STYLE)


def save_figure(fig, name: str, profile: str) -> None:
    """Write ``figures/<profile>/<name>.png`` and ``.pdf`` without time stamps; ``name`` must be
    in the registry (:data:`emulsion_core.storage.results.FIGURES`)."""
    for ext, meta in (("png", {"Software": None}), ("pdf", {"CreationDate": None, "Producer": None})):
        fig.savefig(results.figure(profile, name, ext), metadata=meta, bbox_inches="tight")


def polarisation_strips(examples: dict, polarisation_deg, pixel_size_nm: float):
    """Paper Figure 1: each row one event, each column one polarisation image.

    examples : {row label: (P, H, W) camera counts}. Each row shares one colour scale (ADU).
    """
    rows, p = len(examples), len(polarisation_deg)
    fig, axes = plt.subplots(rows, p, figsize=(1.25 * p + 1.6, 1.3 * rows + 0.5), squeeze=False,
                             layout="constrained")
    for r, (label, images) in enumerate(examples.items()):
        lo, hi = np.percentile(images, 1), images.max()
        for c in range(p):
            ax = axes[r, c]
            im = ax.imshow(images[c], cmap="gray", vmin=lo, vmax=hi, origin="lower")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(f"{polarisation_deg[c]:g}°", fontsize=9)
        axes[r, 0].set_ylabel(label, fontsize=8, rotation=0, ha="right", va="center")
        fig.colorbar(im, ax=axes[r, :], fraction=0.015, pad=0.01, label="ADU")
    size_um = images.shape[-1] * pixel_size_nm / 1000
    fig.suptitle(f"polarisation angle (each image {size_um:.2f} µm wide)", fontsize=10)
    return fig


def depth_distribution(ax, events: pd.DataFrame, window_um, surfaces_um=None, bins: int = 92):
    """Event depth per sample (log scale), the accepted window and the surface layers."""
    lo, hi = events["z_um"].min(), events["z_um"].max()
    edges = np.linspace(np.floor(lo), np.ceil(hi), bins + 1)
    for sample, group in events.groupby("sample", sort=False):
        ax.hist(group["z_um"], bins=edges, histtype="step", color=SAMPLE_COLOURS.get(sample),
                label=sample, density=True)
    ax.set_yscale("log")
    for edge in window_um:
        ax.axvline(edge, color="k", ls="--", lw=1)
    ax.axvspan(edges[0], window_um[0], color="0.85", zorder=0, label="surface layers (cut)")
    ax.axvspan(window_um[1], edges[-1], color="0.85", zorder=0)
    ax.set_xlabel("depth z (µm)")
    ax.set_ylabel("events / µm (normalised)")
    ax.legend(ncols=2)
    return ax


def cut_variable(ax, events: pd.DataFrame, column: str, cuts: list, xlabel: str, logx: bool = False,
                 bins=60, integer: bool = False):
    """Distribution of one cleaning variable per sample (log y) with its cut values drawn."""
    values = events[column].to_numpy(dtype=float)
    if integer:
        edges = np.arange(values.min() - 0.5, values.max() + 1.5)
    elif logx:
        pos = values[values > 0]
        edges = np.geomspace(max(pos.min(), 1e-2), pos.max() * 1.01, bins + 1)
        if np.all(np.mod(values, 1) == 0):  # integer counts: bin edges between integers
            edges = np.unique(np.floor(edges)) + 0.5
    else:
        edges = np.linspace(values.min(), values.max(), bins + 1)
    for sample, group in events.groupby("sample", sort=False):
        v = group[column].to_numpy(dtype=float)
        ax.hist(np.clip(v, edges[0], edges[-1]), bins=edges, histtype="step", label=sample,
                color=SAMPLE_COLOURS.get(sample), density=True)
    for c in cuts:
        ax.axvline(c, color="r", ls="--", lw=1.2)
    if logx:
        ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("fraction of events (normalised)")
    return ax


def cleaning_variables(events: pd.DataFrame, cuts):
    """The six distributions the cleaning cuts act on, per sample, with the cut values.

    cuts : :class:`emulsion_core.measure.cleaning.CleaningCuts`. Returns the figure.
    """
    fig, axes = plt.subplots(2, 3, figsize=(13, 7))
    a = axes.ravel()
    cut_variable(a[0], events, "view_density", [cuts.max_view_density], "events per view", logx=True)
    cut_variable(a[1], events, "npx", [cuts.min_npx - 0.5, cuts.max_npx + 0.5], "cluster size npx (pixels)",
                 logx=True)
    cut_variable(a[2], events, "peak_adu", [cuts.min_peak_adu], "peak over background (ADU)", logx=True)
    cut_variable(a[3], events, "brightness_mean", [cuts.max_brightness_mean_adu], "mean cluster brightness (ADU)")
    cut_variable(a[4], events, "n_peaks", [cuts.max_peaks + 0.5], "optically resolved peaks", integer=True)
    cut_variable(a[5], events, "z_um", list(cuts.z_window_um), "depth z (µm)")
    a[0].legend(loc="upper right")
    fig.tight_layout()
    return fig


def angular_distribution(ax, edges, histograms: dict, title: str = ""):
    """Normalised phi histograms with statistical errors (paper Figures 2 and 5).

    histograms : {label: (density, error, n_events)}.
    """
    centres = 0.5 * (edges[1:] + edges[:-1])
    for label, (h, err, n) in histograms.items():
        line = ax.stairs(h, edges, label=f"{label} (N = {n})")
        ax.errorbar(centres, h, yerr=err, fmt="none", color=line.get_edgecolor(), lw=0.8)
    ax.set_xlabel("track angle φ (deg)")
    ax.set_ylabel("probability density (1/deg)")
    ax.set_xlim(edges[0], edges[-1])
    ax.set_xticks(np.arange(-90, 91, 30))
    if title:
        ax.set_title(title)
    ax.set_ylim(0, None)
    ax.legend(loc="lower center")
    return ax


def score_distribution(ax, table: pd.DataFrame, column: str, threshold: float, xlabel: str,
                       samples=TABLE1_SAMPLES, bins=None, log: bool = True):
    """Normalised distributions of a selection variable per sample with the cut (paper Figure 3)."""
    values = table[column].to_numpy(dtype=float)
    if bins is None:
        hi = np.nanquantile(values, 0.995)
        bins = np.linspace(0, hi, 61)
    for sample in samples:
        v = table.loc[table["sample"] == sample, column].dropna().to_numpy(dtype=float)
        ax.hist(np.clip(v, bins[0], bins[-1]), bins=bins, histtype="step", density=True, lw=1.3,
                color=SAMPLE_COLOURS.get(sample), label=f"{sample} (N = {len(v)})")
    ax.axvline(threshold, color="r", ls="--", lw=1.3, label=f"cut: {threshold:.3g}")
    if log:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("probability density")
    ax.legend()
    return ax


def efficiency_vs_reduction(ax, curves: dict, marker=None):
    """Signal efficiency (x) against background fraction passing (y, log) for several selections.

    curves : {label: (signal_efficiency, background_fraction)}; marker: optional (x, y, label).
    """
    for label, (eff, bkg) in curves.items():
        ok = bkg > 0
        ax.plot(eff[ok], bkg[ok], label=label, lw=1.5)
    if marker is not None:
        ax.plot(marker[0], marker[1], "k*", ms=10, label=marker[2])
    return _efficiency_axes(ax)


def _efficiency_axes(ax):
    """Axes of a signal-efficiency (x) against background-fraction (log y) plot."""
    ax.set_yscale("log")
    ax.set_xlim(0, 1)
    ax.set_xlabel("signal efficiency")
    ax.set_ylabel("background reduction factor (fog passing)")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    return ax


def search_convergence(ax, history: pd.DataFrame, floor: dict | None = None):
    """Cross-validated AUC of every search call (rows flagged ``repeat`` left out) and the best so
    far; with ``floor`` (``search.noise_floor``), the repeated call's AUCs with other seeds as
    markers beside the calls and their mean +- standard deviation as a band across them: calls
    that differ by less than the band's half-width are not told apart."""
    if "repeat" in history:
        history = history[~history["repeat"].eq(True)]
    calls = np.arange(1, len(history) + 1)
    ax.plot(calls, history["score"], "o", ms=4, label="call")
    ax.plot(calls, np.maximum.accumulate(history["score"].to_numpy()), "-", label="best so far")
    if floor is not None:
        scores = np.asarray(floor["scores"], dtype=float)
        mean, spread = scores.mean(), floor["spread"]
        ax.axhspan(mean - spread, mean + spread, color="0.5", alpha=0.2, lw=0,
                   label="best call: mean ± std over its seeds (noise)")
        ax.plot(np.full(len(scores), len(history) + 1), scores, "D", ms=5, mfc="none", color="0.3",
                label=f"best call, {len(scores)} seeds")
        ax.set_xlim(0.5, len(history) + 1.5)
    ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
    ax.set_xlabel("search call")
    ax.set_ylabel("cross-validated ROC AUC (carbon vs fog)")
    ax.legend()
    return ax


def efficiency_band_plot(ax, grid, fractions: np.ndarray, label: str, colour=None):
    """Ensemble mean and min-max band of the fog fraction passing against signal efficiency (log y)."""
    with np.errstate(divide="ignore"):
        mean = fractions.mean(axis=0)
    ok = mean > 0
    line, = ax.plot(grid[ok], mean[ok], label=label, color=colour)
    ax.fill_between(grid[ok], fractions.min(axis=0)[ok].clip(min=1e-6), fractions.max(axis=0)[ok],
                    color=line.get_color(), alpha=0.25, lw=0)
    return _efficiency_axes(ax)


def class_histograms(ax, table: pd.DataFrame, column: str = "score", bins=None):
    """Network output per true class (log y): ``score``, the log-odds of the carbon classes against
    the background classes (``scoring``; ln[(p(C30keV) + p(C100keV)) / p(fog)] for the paper's
    classes); 60 bins over its range unless ``bins`` is given."""
    if bins is None:
        finite = table[column][np.isfinite(table[column])]
        bins = np.linspace(finite.min(), finite.max(), 61) if len(finite) and finite.max() > finite.min() else 60
    for sample, group in table.groupby("sample", sort=False, observed=True):
        ax.hist(group[column], bins=bins, histtype="step", density=True, lw=1.3, color=SAMPLE_COLOURS.get(sample),
                label=f"{sample} (N = {len(group)})")
    ax.set_yscale("log")
    ax.set_xlabel("log-odds ln[p(carbon) / p(background)]")
    ax.set_ylabel("probability density")
    ax.legend()
    return ax


def artefact_audit(stats: pd.DataFrame, aucs: pd.DataFrame, limit: float = 0.55):
    """Artefact audit figure: border-ring noise per sample (left) and, per comparison, the largest
    ROC AUC of the pure acquisition statistics and of all statistics (right)."""
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(11, 4), layout="constrained",
                                   gridspec_kw={"width_ratios": [1, 1.4]})
    col = "border_noise_adu"
    edges = np.linspace(*np.nanquantile(stats[col], [0.001, 0.999]), 60)
    for sample, group in stats.groupby("sample", sort=False, observed=True):
        ax0.hist(group[col], bins=edges, histtype="step", density=True, color=SAMPLE_COLOURS.get(str(sample)),
                 label=str(sample))
    ax0.set_xlabel("camera noise in the outer 3-px ring (neighbour differences) [ADU]")
    ax0.set_ylabel("events (normalised)")
    ax0.legend()
    y = np.arange(len(aucs))
    ax1.barh(y + 0.2, aucs["max"], height=0.4, label="acquisition statistics (noise, background)")
    ax1.barh(y - 0.2, aucs["max_any"], height=0.4, label="any statistic (also event light)")
    ax1.axvline(limit, color="red", lw=1, label=f"AUC {limit}")
    ax1.set_yticks(y, aucs.index, fontsize=7)
    ax1.set_xlim(0.5, 1.0)
    ax1.set_xlabel("largest ROC AUC of one statistic")
    ax1.invert_yaxis()
    ax1.legend(loc="lower right")
    return fig


def misclassified_gallery(events: pd.DataFrame, images: np.ndarray, polarisation_deg=None, cut: float | None = None):
    """Misclassified events, one strip each: its polarisation images on one colour scale per strip
    (ADU, 1st percentile to maximum), and beside them its group, sample, ``score`` (log-odds),
    ``npx``, ``barshift_nm`` (when the table has it) and ``brightness_max`` (ADU).

    events : rows with ``group``, ``sample``, ``score``, ``npx`` (``network_analysis.misclassified_events``);
    images : (len(events), P, H, W) camera counts in the standard polarisation order.
    Returns the figure (len(events) strips)."""
    n, p = len(events), images.shape[1]
    angles = polarisation_deg if polarisation_deg is not None else np.arange(p) * 180.0 / p
    fig, axes = plt.subplots(max(n, 1), p + 1, figsize=(1.1 * p + 2.6, 1.15 * max(n, 1) + 0.6), squeeze=False,
                             gridspec_kw={"width_ratios": [1] * p + [2.2]}, layout="constrained")
    for r, (_, ev) in enumerate(events.reset_index(drop=True).iterrows()):
        lo, hi = np.percentile(images[r], 1), images[r].max()
        for c in range(p):
            ax = axes[r, c]
            ax.imshow(images[r, c], cmap="gray", vmin=lo, vmax=max(hi, lo + 1), origin="lower")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(f"{angles[c]:g}°", fontsize=8)
        text = [f"{ev.get('group', '')}", f"{ev['sample']}  score {ev['score']:.2f}", f"npx {ev.get('npx', np.nan):.0f}"]
        if "barshift_nm" in ev and np.isfinite(ev["barshift_nm"]):
            text.append(f"barshift {ev['barshift_nm']:.1f} nm")
        if "brightness_max" in ev:
            text.append(f"brightness {ev['brightness_max']:.0f} ADU")
        axes[r, p].axis("off")
        axes[r, p].text(0.02, 0.5, "\n".join(text), fontsize=7, va="center", transform=axes[r, p].transAxes,
                        color=SAMPLE_COLOURS.get(str(ev["sample"]), "k"))
    if n == 0:
        for ax in axes[0]:
            ax.axis("off")
    title = "misclassified validation events (each strip: its own grey scale)"
    fig.suptitle(title + (f"; cut: log-odds > {cut:.3g}" if cut is not None else ""), fontsize=9)
    return fig


def score_against_depth(ax, table: pd.DataFrame, column: str, cut: float, ylabel: str, bins: int = 12):
    """Mean ``column`` (with its standard error) against imaging depth (um of emulsion crossed)
    for fog and for carbon on the implanted test area and the bulk one (issue 17: what a network
    would do on recoils spread through the detector), with the cut."""
    edges = np.linspace(0.0, float(np.nanmax(table["depth_um"])) + 1e-6, bins + 1)
    groups = [("fog", "test", "fog (test)"), ("C30keV", "test", "C30keV implanted"),
              ("C30keV", "test_bulk", "C30keV bulk"), ("C100keV", "test", "C100keV implanted"),
              ("C100keV", "test_bulk", "C100keV bulk")]
    for sample, split, label in groups:
        sel = table[(table["sample"] == sample) & (table["split"] == split)]
        if len(sel) < 10:
            continue
        which = np.digitize(sel["depth_um"], edges) - 1
        stats = sel.groupby(which)[column].agg(["mean", "sem", "size"])
        stats = stats[stats["size"] >= 5]
        centres = 0.5 * (edges[stats.index] + edges[stats.index + 1])
        ax.errorbar(centres, stats["mean"], yerr=stats["sem"], marker="o", ms=4, capsize=2,
                    ls="-" if split == "test" else "--", color=SAMPLE_COLOURS.get(sample), label=label)
    ax.axhline(cut, color="r", ls=":", lw=1.2, label=f"cut: {cut:.3g}")
    ax.set_xlabel("imaging depth (um of emulsion crossed)")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize="small")
    return ax
