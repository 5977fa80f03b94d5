"""NEWSnet on a profile's dataset: the search, the final fit and its snapshot ensemble, scores,
the cut at 30 % C100keV efficiency, Table 1 rows and the curves of paper Figure 4.

Everything is written under ``results/<profile>/newsnet/`` and resumes from there: the search
history after every call, the final fit every epoch.
"""

from __future__ import annotations

import json
import time

import numpy as np
import pandas as pd

from . import conventional, dataset, metrics, paths, provenance, scoring, search, selection, training
from .models import CLASSES, PAPER_PARAMETERS, keras
from .profiles import Profile

LABELS = {name: i for i, name in enumerate(CLASSES)}


def workdir(profile: Profile):
    d = paths.results_dir(profile.name) / "newsnet"
    d.mkdir(parents=True, exist_ok=True)
    return d


def _key(artefact: str, profile: Profile, **extra) -> dict:
    """Provenance key of a search or fit: the clean selection it reads (its record's digest), the
    network settings, the seed and the code (:data:`provenance.CODE`)."""
    clean = paths.results_dir(profile.name) / "clean_events.csv"
    return provenance.key(artefact, clean_events=provenance.upstream(clean), network=dict(profile.network),
                          seed=profile.seed, **extra)


def search_stamp(profile: Profile) -> dict:
    """Provenance key of the search history: :func:`_key` with the whole ``search`` section
    (dimensions, repeats and parallel included: changing any sets an old history aside)."""
    return _key("search_history", profile, search=dict(profile.search))


def fit_stamp(profile: Profile, params: dict) -> dict:
    return _key("final_fit", profile, training=dict(profile.training), params=dict(params))


def resume_or_restart(path, stamp: dict, what: str) -> None:
    """Resume ``path`` when made with ``stamp``, else set it aside: :func:`provenance.resume_or_restart`."""
    provenance.resume_or_restart(path, stamp, what)


def camera_max(profile: Profile) -> float:
    """The camera range (ADU) of the images :func:`split_data` returns (:func:`dataset.camera_max`)."""
    return dataset.camera_max(dataset.dataset_dir(profile))


def split_data(profile: Profile, split: str, fraction: float = 1.0, seed: int = 0, with_images: bool = True):
    """Clean events of the three classes in ``split``: (table, images, labels); the images are in
    the standard polarisation order at the range :func:`camera_max` (:func:`dataset.load_images`).

    ``fraction`` < 1 keeps a stratified random subset (the search uses half the training data);
    ``with_images=False`` returns None for the images (the table and labels only).
    """
    clean = selection.clean_events(profile, progress=False)
    rows = clean[(clean["split"] == split) & clean["sample"].isin(CLASSES)].reset_index(drop=True)
    if fraction < 1.0:
        rng = np.random.default_rng([seed, 7])
        keep = np.concatenate([rng.permutation(np.flatnonzero(rows["sample"] == s))[: int(round(fraction * (rows["sample"] == s).sum()))]
                               for s in CLASSES])
        rows = rows.iloc[np.sort(keep)].reset_index(drop=True)
    images = dataset.load_images(dataset.dataset_dir(profile), rows) if with_images else None
    labels = rows["sample"].astype(str).map(LABELS).to_numpy()
    return rows, images, labels


def run_search(profile: Profile, progress: bool = True) -> pd.DataFrame:
    """The profile's GP search (resumable): ``search.n_calls`` calls over ``search.dimensions``
    (the rest at the paper's values), ``search.parallel`` points asked at once, then the best call
    ``search.repeats`` more times with seeds ``profile.seed + 1000 r`` (another fold split and
    initialisation, same training subset). Returns the history (:func:`search.run`)."""
    cfg = profile.search
    _, images, labels = split_data(profile, "train", cfg["train_fraction"], profile.seed)
    scale = camera_max(profile)

    def objective(params, replica=0):
        return search.cross_validated_auc(params, images, labels, cfg["folds"], cfg["epochs"],
                                          profile.network["width_scale"], profile.network["batch_size"],
                                          search.replica_seed(profile.seed, replica), camera_max=scale)

    checkpoint = workdir(profile) / "search_history.json"
    resume_or_restart(checkpoint, search_stamp(profile), "the search history")
    return search.run(objective, cfg["n_calls"], cfg["n_initial_points"], profile.seed, checkpoint, progress,
                      dimensions=cfg["dimensions"], fixed=PAPER_PARAMETERS, batch_size=cfg["parallel"],
                      repeats=cfg["repeats"])


def chosen_parameters(profile: Profile) -> tuple[dict, str]:
    """The search's best parameters, or the paper's when no search has run with the profile's
    current settings and data."""
    path = workdir(profile) / "search_history.json"
    if not path.exists():
        return dict(PAPER_PARAMETERS), "paper (no search history)"
    if provenance.difference(provenance.read(path), search_stamp(profile)) is not None:
        return dict(PAPER_PARAMETERS), "paper (the search history was made with other settings; rerun notebook 03)"
    return search.best(pd.DataFrame(json.loads(path.read_text()))), "search"


def train_final(profile: Profile, params: dict, verbose: int = 0):
    """Fit on the whole training split; returns (history, ensemble member paths)."""
    keras.utils.set_random_seed(profile.seed)
    net, tr = profile.network, profile.training
    clean = selection.clean_events(profile, progress=False)
    rows = clean[(clean["split"] == "train") & clean["sample"].isin(CLASSES)]
    # the training split is streamed from the scan files (it may not fit in memory)
    train = training.ScanSequence(dataset.dataset_dir(profile), rows.assign(label=rows["sample"].astype(str).map(LABELS)),
                                  net["batch_size"], shuffle=True, augment=True, seed=profile.seed)
    _, x_val, y_val = split_data(profile, "validation")
    val = training.EventSequence(x_val, y_val, net["batch_size"], camera_max=camera_max(profile))
    folder = workdir(profile) / "final"
    resume_or_restart(folder, fit_stamp(profile, params), "the final fit")
    _, history, members = training.fit(params, train, val, tr["epochs"], folder,
                                       net["width_scale"], tr["ensemble"], verbose)
    return history, members


def score(profile: Profile, members: list, splits=("validation", "test")) -> tuple[pd.DataFrame, np.ndarray]:
    """Ensemble scores of the clean events of ``splits``.

    Returns the table (``score``: the log-odds of carbon against fog of the members' mean
    probabilities, ``scoring.ensemble_log_odds``; ``score_std``: the members' spread of their own
    log-odds; ``p_signal``: the ensemble's summed carbon probability, for display; ``predicted``:
    the most probable class) and the members' logits (M, N, 3) float64; both are saved in
    ``results/<profile>/newsnet/`` (``scores.csv``, ``member_logits.npy``)."""
    models = [training.load_member(p) for p in members]
    tables, logits = [], []
    for split in splits:
        rows, images, _ = split_data(profile, split)
        logits.append(scoring.predict_logits(models, images, profile.network["batch_size"], camera_max(profile)))
        tables.append(rows)
    table = pd.concat(tables, ignore_index=True)
    logits = np.concatenate(logits, axis=1)
    table["score"] = scoring.ensemble_log_odds(logits)
    table["score_std"] = scoring.member_log_odds(logits).std(axis=0)
    table["p_signal"] = scoring.signal_probability(table["score"])
    table["predicted"] = np.asarray(CLASSES)[np.exp(scoring.log_probabilities(logits)).mean(axis=0).argmax(axis=1)]
    table[["file", "event_id", "sample", "split", "score", "score_std", "p_signal", "predicted"]].to_csv(
        workdir(profile) / "scores.csv", index=False)
    np.save(workdir(profile) / "member_logits.npy", logits)
    return table, logits


def table1_rows(table: pd.DataFrame, logits: np.ndarray) -> tuple[pd.DataFrame, tuple]:
    """NEWSnet rows of Table 1 as the paper makes them: one cut, set on the ensemble-mean
    ``score`` to keep 30 % of C100keV validation events, applied to the ensemble and to every
    member alike.

    table : events with ``sample``, ``split`` and the ensemble ``score`` (log-odds);
    logits : (M, N, 3) the members' logits for the same events.
    Returns (rows, cut): rows as ``conventional.table1_rows`` (the ensemble's value with its 68 %
    binomial interval) plus ``member_mean`` and ``ensemble_spread`` (mean and standard deviation,
    ddof 1, of the members' values at the same cut) and ``member_ci95`` (the paper's band,
    t(0.975, M - 1) x spread / sqrt(M)); cut = (value, low, high) in log-odds."""
    from scipy import stats
    cut = conventional.reference_threshold(table, "score")
    rows = conventional.table1_rows(table, "newsnet", "score", cut[0])
    values = np.array([conventional.table1_rows(table.assign(score=m), "newsnet", "score", cut[0])["value"].to_numpy()
                       for m in scoring.member_log_odds(logits)])
    m = len(values)
    rows["member_mean"] = values.mean(axis=0)
    rows["ensemble_spread"] = values.std(axis=0, ddof=1) if m > 1 else np.nan
    rows["member_ci95"] = stats.t.ppf(0.975, m - 1) * rows["ensemble_spread"] / np.sqrt(m) if m > 1 else np.nan
    return rows, cut


def format_table1_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """NEWSnet's Table 1 rows as text: the ensemble's value with its 68 % binomial interval, and
    the members' mean +- standard deviation at the same cut (the paper's mean +- spread)."""
    out = rows[["sample", "split"]].copy()
    out["ensemble (68 % binomial)"] = [metrics.format_value(v, lo, hi) for v, lo, hi in
                                       zip(rows["value"], rows["err_low"], rows["err_high"])]
    out["members: mean ± spread"] = [metrics.format_value(v, s) if np.isfinite(s) else f"{v:.3g}"
                                      for v, s in zip(rows["member_mean"], rows["ensemble_spread"])]
    out["passed / total"] = [f"{k} / {n}" for k, n in zip(rows["passed"], rows["total"])]
    return out.set_index(["sample", "split"])


def efficiency_band(table: pd.DataFrame, logits: np.ndarray, signal: str, split: str = "validation",
                    grid=np.linspace(0.01, 1.0, 100)):
    """Fog fraction passing at each signal efficiency of ``grid`` for every ensemble member
    (their own log-odds from ``logits`` (M, N, 3)): (grid, (M, G) background fractions) for
    paper Figure 4."""
    sel_s = ((table["sample"] == signal) & (table["split"] == split)).to_numpy()
    sel_b = ((table["sample"] == "fog") & (table["split"] == split)).to_numpy()
    out = []
    for m in scoring.member_log_odds(logits):
        sig, bkg = np.sort(m[sel_s]), np.sort(m[sel_b])
        thr = np.quantile(sig, 1.0 - grid)
        out.append(1.0 - np.searchsorted(bkg, thr, side="right") / len(bkg))
    return grid, np.array(out)


def throughput(model, images: np.ndarray, batch_size: int, camera_max: float, repeats: int = 1) -> dict:
    """Training and inference events/s of ``model`` on ``images`` (one epoch each, after a warm-up);
    camera_max : their range, ADU."""
    labels = np.arange(len(images)) % 3
    if not getattr(model, "compiled", False):  # a network loaded for inference
        model.compile(optimizer=keras.optimizers.Adam(1e-4), loss=training.CombinedLoss(0.5))
    seq = training.EventSequence(images, labels, batch_size, shuffle=True, augment=True, camera_max=camera_max)
    model.fit(seq, epochs=1, verbose=0)
    t = time.perf_counter()
    model.fit(seq, epochs=1, verbose=0)
    train_rate = len(images) / (time.perf_counter() - t)
    pseq = training.EventSequence(images, None, batch_size, camera_max=camera_max)
    model.predict(pseq, verbose=0)
    t = time.perf_counter()
    for _ in range(repeats):
        model.predict(pseq, verbose=0)
    return {"train_events_per_s": train_rate, "inference_events_per_s": repeats * len(images) / (time.perf_counter() - t)}


def binary_auc(table: pd.DataFrame, score_column: str = "score", split: str = "validation") -> float:
    from sklearn.metrics import roc_auc_score
    t = table[table["split"] == split]
    return float(roc_auc_score(t["sample"] != "fog", t[score_column]))


def reduction_at_reference(table: pd.DataFrame, column: str = "score") -> dict:
    cut = conventional.reference_threshold(table, column)[0]
    return metrics.reduction_factor(conventional.select(table, "fog", "validation")[column], cut)


def compare_architectures(profile: Profile, params: dict, newsnet_table: pd.DataFrame, newsnet_model,
                          n_timing: int = 256) -> pd.DataFrame:
    """Architecture table: NEWSnet (the trained ensemble's last member) against the compact nets,
    each compact net trained like NEWSnet (same epochs, loss and optimiser settings, batch
    normalisation re-estimated after the fit) and scored by the same log-odds.

    Columns: trainable parameters, FLOPs per event, training and inference events/s (this
    machine), validation AUC (carbon vs fog) and fog reduction factor at 30 % C100keV."""
    from .models import ARCHITECTURES, flops_per_event, trainable_parameters

    rows = []
    _, x_train, y_train = split_data(profile, "train")
    val_rows, x_val, _ = split_data(profile, "validation")
    timing, scale = x_train[:n_timing], camera_max(profile)
    entries = [("newsnet", newsnet_model, newsnet_table[newsnet_table["split"] == "validation"])]
    for name in ("compact_3d", "polarisation_channels_2d"):
        keras.utils.set_random_seed(profile.seed)
        model = training.compile_model(ARCHITECTURES[name](), params)
        training.fit_in_memory(model, params, x_train, y_train, profile.training["epochs"],
                               profile.network["batch_size"], profile.seed, camera_max=scale)
        z = scoring.class_logits(model, training.EventSequence(x_val, None, profile.network["batch_size"],
                                                               camera_max=scale))
        entries.append((name, model, val_rows.assign(score=scoring.member_log_odds(z))))
    for name, model, table in entries:
        rate = throughput(model, timing, profile.network["batch_size"], scale)
        red = reduction_at_reference(table)
        rows.append({"architecture": name, "parameters": trainable_parameters(model),
                     "MFLOPs per event": round(flops_per_event(model) / 1e6, 1),
                     "train events/s": round(rate["train_events_per_s"]),
                     "inference events/s": round(rate["inference_events_per_s"]),
                     "validation AUC": round(binary_auc(table), 3),
                     "fog reduction at 30% C100keV": metrics.format_value(red["value"], red["value"] - red["low"],
                                                                          red["high"] - red["value"])})
    return pd.DataFrame(rows).set_index("architecture")
