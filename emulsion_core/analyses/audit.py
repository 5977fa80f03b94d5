"""Artefact audit: how well do acquisition statistics alone tell the samples apart?

A network sees the preprocessed images ([P21] 3.2.1: divided by the camera maximum, each image's
median subtracted). If the samples were scanned under different conditions, statistics of those
images that carry no physics (the noise of the background ring, the median that preprocessing
removed, light far from the event) still differ between samples, and a classifier can learn them
instead of the tracks. This module measures that, per event:

- ``border_noise_adu``: the camera noise in the outermost ``noise_ring_px`` pixels of the crop
  (ADU, mean over polarisations), from the differences of neighbouring pixels (median absolute
  deviation / 0.6745 / sqrt 2): a smooth lift of the ring (the halo of a grain blurred by depth)
  cancels in a difference, and a track crossing the ring is an outlier the median ignores;
- ``background_adu``: median of the raw outermost ring (ADU): the optical background level;
- ``ring_std_adu``: standard deviation of the ``ring_px``-wide ring (ADU): noise *and* event light
  reaching it, what depth changes (a deep grain's blurred halo, an electron's spread);
- ``border_rms_adu``: rms of the *preprocessed* border ring (ADU): the noise and the ring's offset
  from the image median;
- ``median_removed_adu``: the median that preprocessing subtracted (ADU, mean over polarisations);
- ``outside_brightness_adu``: summed preprocessed brightness farther than ``core_px`` from the crop
  centre (ADU, mean over polarisations): light that is not the event's cluster.

The first two are pure acquisition: measured where the event's light does not reach and
insensitive to its smooth part, so a sample pair reads at the null floor whatever the events'
depths (issue 17). The others also carry physics: a larger event (a
three-grain C100keV track) lifts the image median, so the ring sits lower after preprocessing;
their AUCs measure what a network can read from outside the event, whatever its cause.
:func:`auc_table` gives the ROC AUC of each statistic between every pair of samples and between
the training and test areas of each sample, folded to >= 0.5 (0.5: indistinguishable).
:func:`border_control` is a control classifier that sees only the border ring (no event pixel):
a network result means something only when it beats this control by a wide margin.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pandas as pd

ACQUISITION = ("border_noise_adu", "background_adu")
STATISTICS = ACQUISITION + ("ring_std_adu", "border_rms_adu", "median_removed_adu", "outside_brightness_adu")
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


def _ring_mask(h: int, w: int, ring_px: int) -> np.ndarray:
    mask = np.zeros((h, w), bool)
    mask[:ring_px], mask[-ring_px:], mask[:, :ring_px], mask[:, -ring_px:] = True, True, True, True
    return mask


def neighbour_noise(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Pixel noise (same unit as ``x``) of the ``mask`` pixels of images ``x`` (..., H, W): the
    robust spread (MAD / 0.6745) of horizontal and vertical neighbour differences inside the mask,
    over sqrt 2. For white Gaussian noise of sigma s it is s; a smooth gradient adds only its
    square to the differences' spread, and isolated bright pixels are outliers."""
    pair_h, pair_v = mask[:, 1:] & mask[:, :-1], mask[1:, :] & mask[:-1, :]
    d = np.concatenate([(x[..., :, 1:] - x[..., :, :-1])[..., pair_h],
                        (x[..., 1:, :] - x[..., :-1, :])[..., pair_v]], axis=-1)
    mad = np.median(np.abs(d - np.median(d, axis=-1, keepdims=True)), axis=-1)
    return mad / np.float32(0.6744898 * np.sqrt(2.0))


def event_statistics(images: np.ndarray, camera_max: float, ring_px: int = 8, core_px: float = 8.0,
                     noise_ring_px: int = 3) -> pd.DataFrame:
    """Acquisition statistics of each event after the network's preprocessing.

    images : (N, P, H, W) raw camera counts of range ``camera_max``; statistics are given in
    8-bit ADU (counts x 255 / camera_max) so that files of any range compare. Returns the
    STATISTICS columns (ADU; the acquisition ones from the outermost ``noise_ring_px`` pixels) and, for the
    border-ring control, ``ring_<q>_p<i>`` quantiles (about the ring's median) and ``ring_std_p<i>``
    of each polarisation's border ring: the shape of its noise. The ring's offset from the image
    median is left out of the control: the event's own light lifts the median (a three-grain
    C100keV track more than a fog grain), so the offset measures the event's size, which is
    physics, not acquisition.
    """
    n, p, h, w = images.shape
    x = images.astype(np.float32) * np.float32(255.0 / camera_max)
    med = np.median(x.reshape(n, p, h * w), axis=-1)
    x -= med[:, :, None, None]  # preprocessing, in ADU (the division by camera_max is a unit)
    ring = x[:, :, _ring_mask(h, w, ring_px)]  # (N, P, K)
    outer = _ring_mask(h, w, noise_ring_px)
    ys, xs = np.mgrid[0:h, 0:w]
    outside = np.hypot(xs - (w - 1) / 2, ys - (h - 1) / 2) > core_px
    q = np.quantile(ring, QUANTILES, axis=-1)  # (Q, N, P)
    std = ring.std(axis=-1)
    centred = q - q[2][None]  # ring quantiles about the ring's own median: its noise, not its offset
    out = {
        "border_noise_adu": neighbour_noise(x, outer).mean(axis=1),
        "background_adu": (np.median(x[:, :, outer], axis=-1) + med).mean(axis=1),
        "ring_std_adu": std.mean(axis=1),
        "border_rms_adu": np.sqrt((ring**2).mean(axis=-1)).mean(axis=1),
        "median_removed_adu": med.mean(axis=1),
        "outside_brightness_adu": x[:, :, outside].sum(axis=-1).mean(axis=1),
    }
    for i in range(p):
        out[f"ring_std_p{i}"] = std[:, i]
        for k, qq in enumerate(QUANTILES):
            if qq != 0.5:
                out[f"ring_q{int(qq * 100):02d}_p{i}"] = centred[k, :, i]
    return pd.DataFrame(out).astype(np.float32)


def dataset_statistics(folder, events: pd.DataFrame, progress: bool = True) -> pd.DataFrame:
    """:func:`event_statistics` of the ``events`` rows (``file``, ``event_id``), streamed file by
    file, polarisations in the standard order. Returns ``events``' key columns and its
    ``sample``, ``scan``, ``split``, ``area`` with the statistics."""
    from emulsion_core.data import dataset, preprocessing

    def measure(images, attrs, source):
        ordered = preprocessing.standard_polarisations(images, attrs["polarisation_deg"], str(source))
        return event_statistics(ordered, float(attrs["camera_max"]))

    measured = dataset.measure_events(folder, events, measure, "audit", progress)
    keys = events[["file", "event_id", "sample", "scan", "split", "area"]]
    return keys.merge(measured, on=["file", "event_id"], how="left", validate="one_to_one")


def folded_auc(a, b) -> float:
    """ROC AUC separating ``a`` from ``b`` by one variable, folded to [0.5, 1] (either sign of cut)."""
    from sklearn.metrics import roc_auc_score
    a, b = np.asarray(a, float), np.asarray(b, float)
    if len(a) == 0 or len(b) == 0:
        return float("nan")
    auc = roc_auc_score(np.r_[np.ones(len(a)), np.zeros(len(b))], np.r_[a, b])
    return float(max(auc, 1.0 - auc))


def null_scans(train: pd.DataFrame, sample: str) -> tuple[str, str] | None:
    """The two training-area scans of ``sample`` with the most events (ties: by name), whose
    comparison is the audit's null floor: one sample, one physics, only the views differ."""
    counts = train.loc[train["sample"] == sample, "scan"].astype(str).value_counts()
    if len(counts) < 2:
        return None
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return ranked[0][0], ranked[1][0]


def auc_table(stats: pd.DataFrame, statistics=STATISTICS) -> pd.DataFrame:
    """Folded ROC AUC of each statistic for every pair of samples (training area: train and
    validation events; the test_bulk scan is left out), for the training vs test area of each sample and for two scans of one
    sample (:func:`null_scans`; ``stats`` needs ``sample``, ``scan``, ``split``): the null floor,
    what counting and view-to-view draws alone give, against which a sample pair is read.

    Rows: comparisons (``C30keV vs fog``, ``fog: train vs test area``, ``fog: rot0 vs rot0_repeat
    (null)``); columns: statistics and ``max`` (over the pure acquisition statistics, ACQUISITION)
    and ``max_any``; events per side in ``n_a``, ``n_b``.
    """
    # the training area's events; the bulk test scan (carbon rendered at fog's depths) is a physics
    # probe, not an area, and stays out of every comparison
    train = stats[stats["split"].isin(("train", "validation"))]
    samples = [s for s in pd.unique(stats["sample"].astype(str))]
    pairs = [(f"{a} vs {b}", train[train["sample"] == a], train[train["sample"] == b])
             for a, b in combinations(samples, 2)]
    pairs += [(f"{s}: train vs test area", train[train["sample"] == s], stats[(stats["sample"] == s)
                                                                             & (stats["split"] == "test")])
              for s in samples]
    for s in samples:
        scans = null_scans(train, s)
        if scans:
            a, b = (train[(train["sample"] == s) & (train["scan"].astype(str) == x)] for x in scans)
            pairs.append((f"{s}: {scans[0]} vs {scans[1]} (null)", a, b))
    rows = []
    for label, a, b in pairs:
        row = {"comparison": label, "n_a": len(a), "n_b": len(b)}
        row.update({c: folded_auc(a[c], b[c]) for c in statistics})
        rows.append(row)
    table = pd.DataFrame(rows).set_index("comparison")
    table["max"] = table[[c for c in statistics if c in ACQUISITION]].max(axis=1)
    table["max_any"] = table[list(statistics)].max(axis=1)
    return table


def ring_columns(stats: pd.DataFrame) -> list:
    """The border-ring features the control classifier sees."""
    return [c for c in stats.columns if c.startswith("ring_")]


def border_control(stats: pd.DataFrame, signal=("C30keV", "C100keV"), background=("fog",), seed: int = 0) -> pd.Series:
    """Control classifier that sees only each image's preprocessed border ring.

    A gradient-boosted tree ensemble (scikit-learn) is trained on the training split to tell
    ``signal`` from ``background`` samples using the ring quantiles and widths of every
    polarisation; returns its signal score for every row of ``stats`` (NaN for other samples
    than those two groups is not needed: every row is scored).
    """
    from sklearn.ensemble import HistGradientBoostingClassifier
    cols = ring_columns(stats)
    sample = stats["sample"].astype(str)
    fit = (stats["split"] == "train") & sample.isin(signal + background)
    y = sample[fit].isin(signal).to_numpy()
    weight = np.where(y, 0.5 / max(y.sum(), 1), 0.5 / max((~y).sum(), 1))  # balanced classes
    model = HistGradientBoostingClassifier(max_iter=200, learning_rate=0.05, early_stopping=False,
                                           random_state=seed)
    model.fit(stats.loc[fit, cols].to_numpy(), y, sample_weight=weight * len(y))
    return pd.Series(model.predict_proba(stats[cols].to_numpy())[:, 1], index=stats.index, name="border_score")


def audit_profile(profile, clean: pd.DataFrame, progress: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Statistics of the profile's clean events and their AUC table, written to
    ``results/<profile>/artefact_audit.csv``. Returns (statistics, AUC table)."""
    from emulsion_core.data import dataset
    from emulsion_core.storage import atomic, results
    stats = dataset_statistics(dataset.dataset_dir(profile), clean, progress)
    table = auc_table(stats)
    atomic.write_csv(table, results.path(profile.name, "artefact_audit"))
    return stats, table


def control_rows(stats: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Table 1 rows of the border-ring control (method ``border_control``): its score cut at 30 %
    C100keV validation efficiency, like every other method."""
    from emulsion_core.analyses import table1
    scored = stats.assign(border_score=border_control(stats, seed=seed))
    threshold = table1.reference_cut(scored, "border_score")[0]
    return table1.rows(scored, "border_control", "border_score", threshold)
