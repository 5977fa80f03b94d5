"""Directionality after the NEWSnet selection ([P21] sec. 4.2, Figure 6): barshift and angle
distributions of selected and rejected events, statistical tests, and the score's stability
under rotations of the images."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
from scipy import stats

from emulsion_core.analyses import conventional, network_analysis
from emulsion_core.storage import results
from emulsion_core.networks import scoring, training
from emulsion_core.figures.plots import angular_distribution, plt
from emulsion_core.config.profiles import Profile
from emulsion_core.config.samples import TABLE1_SAMPLES

SAMPLES = TABLE1_SAMPLES  # the samples whose angular distributions the paper shows


def scored_events(profile: Profile) -> pd.DataFrame:
    """Validation and test events with NEWSnet's ``score`` and ``selected`` (above the 30 %
    C100keV cut of notebook 04) joined to the conventional variables."""
    scores = pd.read_csv(results.path(profile.name, "scores"))
    cut = json.loads(results.path(profile.name, "newsnet_threshold").read_text())["value"]
    conv = conventional.variables(profile, progress=False)
    table = scores.merge(conv[["file", "event_id", "scan", "barshift_nm", "phi_deg"]], on=["file", "event_id"],
                         how="left", validate="one_to_one")
    table["selected"] = table["score"] > cut
    return table


def figure6(table: pd.DataFrame):
    """Barshift (top) and direction (bottom) of selected and rejected events per sample."""
    fig, axes = plt.subplots(2, 3, figsize=(15, 8))
    bins = np.linspace(0, 120, 41)
    for j, sample in enumerate(SAMPLES):
        t = table[table["sample"] == sample]
        for flag, label in ((True, "selected"), (False, "rejected")):
            v = t.loc[t["selected"] == flag, "barshift_nm"]
            if len(v):
                axes[0, j].hist(v.clip(upper=bins[-1]), bins=bins, histtype="step", density=True,
                                label=f"{label} (N = {len(v)})")
        axes[0, j].set_xlabel("barycenter shift (nm)")
        axes[0, j].set_ylabel("probability density")
        axes[0, j].set_title(sample)
        axes[0, j].legend()
        unrotated = t["scan"].isin(["rot0", "rot0_repeat", "test"])
        edges, hists = conventional.angular_histograms(
            t, {"selected": unrotated & t["selected"], "rejected": unrotated & ~t["selected"]}, bins=12)
        angular_distribution(axes[1, j], edges, {k: v for k, v in hists.items() if v[2] > 0})
    fig.tight_layout()
    return fig


def direction_tests(table: pd.DataFrame) -> pd.DataFrame:
    """KS tests: selected vs all events of each sample (unrotated scans); selected fog vs isotropy."""
    rows = []
    unrotated = table["scan"].isin(["rot0", "rot0_repeat", "test"])
    for sample in SAMPLES:
        t = table[(table["sample"] == sample) & unrotated]
        sel = t.loc[t["selected"], "phi_deg"].dropna()
        allp = t["phi_deg"].dropna()
        if len(sel) >= 2:
            res = stats.ks_2samp(sel, allp)
            rows.append({"sample": sample, "test": "selected vs all (KS)", "n selected": len(sel),
                         "statistic": res.statistic, "p-value": res.pvalue})
        if sample == "fog" and len(sel) >= 2:
            res = stats.kstest(sel, stats.uniform(loc=-90, scale=180).cdf)
            rows.append({"sample": sample, "test": "selected vs isotropy (KS)", "n selected": len(sel),
                         "statistic": res.statistic, "p-value": res.pvalue})
    return pd.DataFrame(rows).set_index(["sample", "test"])


def rotation_check(profile: Profile, n_events: int | None = None) -> pd.DataFrame:
    """Score spread of test events under the 7 other symmetries of the pixel grid (rotations by
    90, 180 and 270 degrees, and the 4 mirrors: the augmentation of training, exact, no
    interpolation), with the last ensemble member; n_events : the first test events of each sample
    (default the profile's ``angular.rotation_events``).

    Returns per sample: events, mean score (log-odds), mean and maximum standard deviation of
    each event's score over the 8 orientations, and the fraction whose selection flips."""
    from emulsion_core.data import dataset, preprocessing
    members = sorted(results.path(profile.name, "final_fit").glob("epoch_*.keras"))
    model = training.load_member(members[-1])
    cut = json.loads(results.path(profile.name, "newsnet_threshold").read_text())["value"]
    n_events = profile.angular["rotation_events"] if n_events is None else n_events
    rows = []
    table, _, _ = network_analysis.split_data(profile, "test", with_images=False)
    picks = {sample: np.flatnonzero(table["sample"] == sample)[:n_events] for sample in SAMPLES}
    chosen = np.concatenate(list(picks.values()))
    images = dataset.load_images(dataset.dataset_dir(profile), table.iloc[chosen].reset_index(drop=True))  # those only
    x = preprocessing.preprocess(images, network_analysis.camera_max(profile))
    orientations = [(k, mirror) for mirror in (False, True) for k in range(4)]  # the first: the events as they are
    # every orientation of every event in one prediction pass: (8, N) scores
    every = scoring.member_log_odds(scoring.class_logits(
        model, np.concatenate([preprocessing.grid_symmetry(x, k, mirror) for k, mirror in orientations])))
    every = every.reshape(len(orientations), len(x))
    at = 0
    for sample, pick in picks.items():
        s = every[:, at:at + len(pick)]
        at += len(pick)
        flips = (s > cut).any(axis=0) & ~(s > cut).all(axis=0)
        rows.append({"sample": sample, "events": len(pick), "mean score": s.mean(),
                     "mean score spread": s.std(axis=0).mean(), "max score spread": s.std(axis=0).max(),
                     "selection flips": flips.mean()})
    return pd.DataFrame(rows).set_index("sample")
