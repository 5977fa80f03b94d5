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

from . import conventional, dataset, metrics, paths, provenance, search, selection, training
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
    return _key("search_history", profile, search=dict(profile.search))


def fit_stamp(profile: Profile, params: dict) -> dict:
    return _key("final_fit", profile, training=dict(profile.training), params=dict(params))


def resume_or_restart(path, stamp: dict, what: str) -> None:
    """Resume ``path`` when made with ``stamp``, else set it aside: :func:`provenance.resume_or_restart`."""
    provenance.resume_or_restart(path, stamp, what)


def camera_max(profile: Profile) -> float:
    """The camera range (ADU) of the images :func:`split_data` returns (:func:`dataset.camera_max`)."""
    return dataset.camera_max(dataset.dataset_dir(profile))


def split_data(profile: Profile, split: str, fraction: float = 1.0, seed: int = 0):
    """Clean events of the three classes in ``split``: (table, images, labels); the images are in
    the standard polarisation order at the range :func:`camera_max` (:func:`dataset.load_images`).

    ``fraction`` < 1 keeps a stratified random subset (the search uses half the training data).
    """
    clean = selection.clean_events(profile, progress=False)
    rows = clean[(clean["split"] == split) & clean["sample"].isin(CLASSES)].reset_index(drop=True)
    if fraction < 1.0:
        rng = np.random.default_rng([seed, 7])
        keep = np.concatenate([rng.permutation(np.flatnonzero(rows["sample"] == s))[: int(round(fraction * (rows["sample"] == s).sum()))]
                               for s in CLASSES])
        rows = rows.iloc[np.sort(keep)].reset_index(drop=True)
    images = dataset.load_images(dataset.dataset_dir(profile), rows)
    labels = rows["sample"].astype(str).map(LABELS).to_numpy()
    return rows, images, labels


def run_search(profile: Profile, progress: bool = True) -> pd.DataFrame:
    """The profile's GP search (resumable); returns the history."""
    cfg = profile.search
    _, images, labels = split_data(profile, "train", cfg["train_fraction"], profile.seed)
    scale = camera_max(profile)

    def objective(params):
        return search.cross_validated_auc(params, images, labels, cfg["folds"], cfg["epochs"],
                                          profile.network["width_scale"], profile.network["batch_size"],
                                          profile.seed, camera_max=scale)

    checkpoint = workdir(profile) / "search_history.json"
    resume_or_restart(checkpoint, search_stamp(profile), "the search history")
    return search.run(objective, cfg["n_calls"], cfg["n_initial_points"], profile.seed, checkpoint, progress)


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
    """Ensemble scores of the clean events of ``splits``: the table (with ``score`` = mean summed
    carbon probability over members, ``score_std``, ``predicted`` class) and the member
    probabilities (M, N, 3); both saved in ``results/<profile>/newsnet/``."""
    models = [training.load_member(p) for p in members]
    tables, probs = [], []
    for split in splits:
        rows, images, _ = split_data(profile, split)
        p = training.predict(models, images, profile.network["batch_size"], camera_max(profile))
        tables.append(rows)
        probs.append(p)
    table = pd.concat(tables, ignore_index=True)
    probs = np.concatenate(probs, axis=1)
    s = training.signal_probability(probs)
    table["score"], table["score_std"] = s.mean(axis=0), s.std(axis=0)
    table["predicted"] = np.asarray(CLASSES)[probs.mean(axis=0).argmax(axis=1)]
    table[["file", "event_id", "sample", "split", "score", "score_std", "predicted"]].to_csv(
        workdir(profile) / "scores.csv", index=False)
    np.save(workdir(profile) / "member_probabilities.npy", probs)
    return table, probs


def table1_rows(table: pd.DataFrame, probs: np.ndarray) -> tuple[pd.DataFrame, tuple]:
    """NEWSnet rows of Table 1 at the cut on the ensemble-mean score that keeps 30 % of C100keV
    validation events, with the binomial interval and ``ensemble_spread`` (standard deviation
    of the same quantity over the members, each with its own 30 % cut). Returns (rows, cut)."""
    cut = conventional.reference_threshold(table, "score")
    rows = conventional.table1_rows(table, "newsnet", "score", cut[0])
    members = training.signal_probability(probs)
    spread = []
    for m in members:
        t = table.assign(score=m)
        tm = conventional.reference_threshold(t, "score")[0]
        spread.append(conventional.table1_rows(t, "newsnet", "score", tm)["value"].to_numpy())
    rows["ensemble_spread"] = np.std(spread, axis=0) if len(spread) > 1 else np.nan
    return rows, cut


def efficiency_band(table: pd.DataFrame, probs: np.ndarray, signal: str, split: str = "validation",
                    grid=np.linspace(0.01, 1.0, 100)):
    """Fog fraction passing at each signal efficiency of ``grid`` for every ensemble member:
    (grid, (M, G) background fractions) for paper Figure 4."""
    sel_s = ((table["sample"] == signal) & (table["split"] == split)).to_numpy()
    sel_b = ((table["sample"] == "fog") & (table["split"] == split)).to_numpy()
    out = []
    for m in training.signal_probability(probs):
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
    each compact net trained like NEWSnet (same epochs, loss and optimiser settings).

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
        model = training.compile_model(ARCHITECTURES[name](), params,
                                       training.use_xla(profile.training["epochs"] * len(x_train)))
        model.fit(training.EventSequence(x_train, y_train, profile.network["batch_size"], shuffle=True, augment=True,
                                         seed=profile.seed, camera_max=scale), epochs=profile.training["epochs"], verbose=0,
                  callbacks=[training.schedule_callback(params, profile.training["epochs"])])
        p = model.predict(training.EventSequence(x_val, None, profile.network["batch_size"], camera_max=scale), verbose=0)
        entries.append((name, model, val_rows.assign(score=training.signal_probability(p))))
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
