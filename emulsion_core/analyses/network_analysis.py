"""NEWSnet on a profile's dataset: the search, the final fit and its snapshot ensemble, scores,
the cut at 30 % C100keV efficiency, Table 1 rows and the curves of paper Figure 4, the spread
over repeated training seeds and the misclassified events.

The network learns ``network.classes``; its score is the log-odds of carbon against background
(``scoring``). Everything resumes from ``results/<profile>/newsnet/`` (search history, fits).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from emulsion_core.analyses import table1
from emulsion_core.config.paper import PAPER_CLASSES, PAPER_PARAMETERS
from emulsion_core.config.profiles import Profile
from emulsion_core.data import dataset, selection
from emulsion_core.formats import hdf5
from emulsion_core.networks import scoring, search, sequences, training
from emulsion_core.networks.models import keras
from emulsion_core.stats import metrics
from emulsion_core.storage import paths, provenance, results


def classes(profile: Profile) -> tuple:
    """The classes the profile's network learns (``network.classes``), in output order."""
    return tuple(profile.network.get("classes", PAPER_CLASSES))


def labels(profile: Profile) -> dict:
    """{sample: class index} of the profile's class list."""
    return {name: i for i, name in enumerate(classes(profile))}


def _key(artefact: str, profile: Profile, **extra) -> dict:
    """Provenance key of a search or fit: the clean selection it reads (its record's digest), the
    network settings, the seed and the code (:func:`provenance.code_modules`)."""
    clean = results.path(profile.name, "clean_events")
    return provenance.key(artefact, clean_events=provenance.upstream(clean), network=dict(profile.network),
                          seed=profile.seed, **extra)


def search_stamp(profile: Profile) -> dict:
    """Provenance key of the search history: :func:`_key` with the whole ``search`` section
    (dimensions, repeats and parallel included: changing any sets an old history aside) and the
    class balance its folds train with."""
    return _key("search_history", profile, search=dict(profile.search),
                class_balance=profile.training.get("class_balance", "weights"))


def fit_stamp(profile: Profile, params: dict, seed: int | None = None) -> dict:
    """Key of a final fit: the profile's network (its class list included) and training settings
    except the extra seeds, which do not change it; ``seed`` (default the profile's) for the
    fits of :func:`seed_spread`."""
    key = _key("final_fit", profile, training={k: v for k, v in profile.training.items() if k != "seeds"},
               params=dict(params))
    if seed is not None and seed != profile.seed:
        key["inputs"]["seed"] = int(seed)
    return key


def resume_or_restart(path, stamp: dict, what: str) -> None:
    """Resume ``path`` when made with ``stamp``, else set it aside: :func:`provenance.resume_or_restart`."""
    provenance.resume_or_restart(path, stamp, what)


def camera_max(profile: Profile) -> float:
    """The camera range (ADU) of the images :func:`split_data` returns (:func:`dataset.camera_max`)."""
    return dataset.camera_max(dataset.dataset_dir(profile))


def split_data(profile: Profile, split: str, fraction: float = 1.0, seed: int = 0, with_images: bool = True):
    """Clean events of the profile's classes in ``split``: (table, images, labels); the images are
    in the standard polarisation order at the range :func:`camera_max` (:func:`dataset.load_images`),
    the labels indices into :func:`classes`; ``with_images=False`` gives None for the images.

    ``fraction`` < 1 keeps a stratified random subset (the search uses half the training data);
    ``with_images=False`` returns None for the images (the table and labels only).
    """
    names = classes(profile)
    clean = selection.clean_events(profile, progress=False)
    rows = clean[(clean["split"] == split) & clean["sample"].isin(names)].reset_index(drop=True)
    if fraction < 1.0:
        rng = np.random.default_rng([seed, 7])
        keep = np.concatenate([rng.permutation(np.flatnonzero(rows["sample"] == s))[: int(round(fraction * (rows["sample"] == s).sum()))]
                               for s in names])
        rows = rows.iloc[np.sort(keep)].reset_index(drop=True)
    images = dataset.load_images(dataset.dataset_dir(profile), rows) if with_images else None
    return rows, images, rows["sample"].astype(str).map(labels(profile)).to_numpy()


def run_search(profile: Profile, progress: bool = True, executor=None) -> pd.DataFrame:
    """The profile's GP search (resumable, :func:`search.run`): ``search.n_calls`` calls over
    ``search.dimensions``, ``search.parallel`` trials at once in ``search.mode``, then the best call
    ``search.repeats`` more times (seeds ``profile.seed + 1000 r``); ``executor``: where trials run
    (a Dask cluster's; its workers read the dataset, so folders must be shared). Returns the history."""
    from functools import partial
    cfg = profile.search
    checkpoint = results.path(profile.name, "search_history")
    resume_or_restart(checkpoint, search_stamp(profile), "the search history")
    return search.run(partial(search_objective, profile), cfg["n_calls"], cfg["n_initial_points"], profile.seed,
                      checkpoint, progress, dimensions=cfg["dimensions"], fixed=PAPER_PARAMETERS,
                      batch_size=cfg["parallel"], repeats=cfg["repeats"], mode=cfg.get("mode", "batch"),
                      executor=executor)


_SEARCH_DATA = {}  # per process (a cluster worker reads the training subset once)
def search_objective(profile: Profile, params: dict, replica: int = 0) -> float:
    """One search call: the cross-validated AUC of ``params`` on the search subset (read once per process)."""
    cfg = profile.search
    key = (profile.path, profile.name, profile.seed, str(paths.root()))
    if key not in _SEARCH_DATA:
        _, images, y = split_data(profile, "train", cfg["train_fraction"], profile.seed)
        _SEARCH_DATA.clear()
        _SEARCH_DATA[key] = (images, y, camera_max(profile))
    images, y, scale = _SEARCH_DATA[key]
    names = classes(profile)
    practice = {"classes": names, "class_balance": profile.training["class_balance"],
                "precision": profile.network.get("precision", "float32")}
    logs = results.path(profile.name, "logs") / "search" / f"{provenance.digest(params)[:12]}_r{replica}"
    return search.cross_validated_auc({**params, **practice}, images, y, cfg["folds"], cfg["epochs"],
                                      profile.network["width_scale"], profile.network["batch_size"],
                                      search.replica_seed(profile.seed, replica), camera_max=scale, classes=names,
                                      log_dir=logs)


def chosen_parameters(profile: Profile) -> tuple[dict, str]:
    """The search's best parameters, or the paper's when no search has run with the profile's
    current settings and data."""
    path = results.path(profile.name, "search_history")
    if not path.exists():
        return dict(PAPER_PARAMETERS), "paper (no search history)"
    if provenance.difference(provenance.read(path), search_stamp(profile)) is not None:
        return dict(PAPER_PARAMETERS), "paper (the search history was made with other settings; rerun notebook 03)"
    return search.best(pd.DataFrame(json.loads(path.read_text()))), "search"


def train_final(profile: Profile, params: dict, verbose: int = 0, seed: int | None = None):
    """Fit on the whole training split with the profile's classes, class balance and early
    stopping; returns (history, ensemble member paths). ``seed`` (default the profile's) seeds the
    initial weights and the batches; another seed than the profile's fits into
    ``seeds/seed<N>/`` (:func:`seed_spread`)."""
    seed = profile.seed if seed is None else int(seed)
    keras.utils.set_random_seed(seed)
    net, tr, names = profile.network, profile.training, classes(profile)
    clean = selection.clean_events(profile, progress=False)
    rows = clean[(clean["split"] == "train") & clean["sample"].isin(names)]
    missing = [c for c in names if not (rows["sample"] == c).any()]
    if missing:
        raise ValueError(f"network.classes of profile {profile.name}: no clean training events of "
                         f"{', '.join(missing)} in dataset {profile.dataset} (its samples: {', '.join(profile.samples)})")
    # the training split is streamed from the scan files (it may not fit in memory)
    train = sequences.ScanSequence(dataset.dataset_dir(profile), rows.assign(label=rows["sample"].astype(str).map(labels(profile))),
                                  net["batch_size"], shuffle=True, augment=True, seed=seed, n_classes=len(names),
                                  class_balance=tr["class_balance"])
    _, x_val, y_val = split_data(profile, "validation")
    val = sequences.EventSequence(x_val, y_val, net["batch_size"], camera_max=camera_max(profile), n_classes=len(names))
    folder = fit_dir(profile, seed)
    resume_or_restart(folder, fit_stamp(profile, params, seed), "the final fit")
    logs = results.path(profile.name, "logs") / folder.name
    _, history, members = training.fit({**params, "precision": net.get("precision", "float32")}, train, val,
                                       tr["epochs"], folder, net["width_scale"], tr["ensemble"], verbose, classes=names,
                                       early_stopping=tr["early_stopping"], log_dir=logs, seed=seed)
    return history, members


def fit_dir(profile: Profile, seed: int | None = None):
    """Folder of the final fit (``final/``), or of the fit with another training ``seed``."""
    if seed is None or int(seed) == profile.seed:
        return results.path(profile.name, "final_fit")
    results.path(profile.name, "seed_fits").mkdir(exist_ok=True)
    return results.path(profile.name, "seed_fits") / f"seed{int(seed)}"


def evaluation_splits(profile: Profile) -> tuple:
    """The splits a network is scored on: validation, test, and test_bulk where the dataset has it
    (read from its ``splits.csv``)."""
    return table1.splits_of(hdf5.read_splits(dataset.dataset_dir(profile)))


def score(profile: Profile, members: list, splits=None, save: bool = True) -> tuple[pd.DataFrame, np.ndarray]:
    """Ensemble scores of the clean events of ``splits`` (default :func:`evaluation_splits`).

    Returns the table (``score``: the log-odds of the carbon classes against the background
    classes of the members' mean probabilities, ``scoring.ensemble_log_odds``; ``score_std``: the
    members' spread of their own log-odds; ``p_signal``: the ensemble's summed carbon probability,
    for display; ``predicted``: the most probable class) and the members' logits (M, N, C)
    float64, C = len(classes), by the faster engine here (``predict.resolve_engine``). The members
    must have been trained with the profile's class list (:class:`models.ClassListError`). With
    ``save``, both are saved in ``results/<profile>/newsnet/`` (``scores.csv``, ``member_logits.npy``)."""
    from emulsion_core.networks import predict
    names, splits = classes(profile), evaluation_splits(profile) if splits is None else splits
    predict.model_classes(members, predict.load_models(members), names)
    tables = [split_data(profile, split, with_images=False)[0] for split in splits]  # the engine needs the count first
    engine = predict.resolve_engine("auto", members, names, sum(map(len, tables)), scoring.INFERENCE_BATCH)
    logits = [predict.ensemble_logits(members, names, dataset.load_images(dataset.dataset_dir(profile), rows),
                                      camera_max(profile), engine, scoring.INFERENCE_BATCH) for rows in tables]
    table = pd.concat(tables, ignore_index=True)
    logits = np.concatenate(logits, axis=1)
    table["score"] = scoring.ensemble_log_odds(logits, names)
    table["score_std"] = scoring.member_log_odds(logits, names).std(axis=0)
    table["p_signal"] = scoring.probability_from_log_odds(table["score"])
    table["predicted"] = np.asarray(names)[np.exp(scoring.log_probabilities(logits)).mean(axis=0).argmax(axis=1)]
    if save:
        kept = ["file", "event_id", "sample", "split", "depth_um", "score", "score_std", "p_signal", "predicted"]
        table[[c for c in kept if c in table]].to_csv(
            results.path(profile.name, "scores"), index=False)
        np.save(results.path(profile.name, "member_logits"), logits)
    return table, logits


def table1_samples(names) -> tuple:
    """Table 1's samples for a class list: C30keV, C100keV, fog, then the list's other classes
    (C60keV: an efficiency row; gamma: a background row like fog's)."""
    return table1.samples_for(names)


def table1_rows(table: pd.DataFrame, logits: np.ndarray, classes=PAPER_CLASSES) -> tuple[pd.DataFrame, tuple]:
    """NEWSnet rows of Table 1 as the paper makes them: one cut, set on the ensemble-mean
    ``score`` to keep 30 % of C100keV validation events, applied to the ensemble and to every
    member alike; a row for every class of ``classes`` (:func:`table1_samples`).

    table : events with ``sample``, ``split`` and the ensemble ``score`` (log-odds);
    logits : (M, N, C) the members' logits for the same events, over ``classes``.
    Returns (rows, cut): rows as :func:`emulsion_core.analyses.table1.rows` (the ensemble's value with its 68 %
    binomial interval) plus ``member_mean`` and ``ensemble_spread`` (mean and standard deviation,
    ddof 1, of the members' values at the same cut) and ``member_ci95`` (the paper's band,
    t(0.975, M - 1) x spread / sqrt(M)); cut = (value, low, high) in log-odds."""
    from scipy import stats
    samples = table1_samples(classes)
    cut = table1.reference_cut(table, "score")
    rows = table1.rows(table, "newsnet", "score", cut[0], samples=samples)
    values = np.array([table1.rows(table.assign(score=m), "newsnet", "score", cut[0],
                                  samples=samples)["value"].to_numpy()
                       for m in scoring.member_log_odds(logits, classes)])
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
                    grid=np.linspace(0.01, 1.0, 100), classes=PAPER_CLASSES, background: str = "fog"):
    """``background`` fraction passing at each signal efficiency of ``grid`` for every ensemble
    member (their own log-odds from ``logits`` (M, N, C) over ``classes``): (grid, (M, G)
    background fractions) for paper Figure 4."""
    sel_s = ((table["sample"] == signal) & (table["split"] == split)).to_numpy()
    sel_b = ((table["sample"] == background) & (table["split"] == split)).to_numpy()
    out = []
    for m in scoring.member_log_odds(logits, classes):
        sig, bkg = np.sort(m[sel_s]), np.sort(m[sel_b])
        thr = np.quantile(sig, 1.0 - grid)
        out.append(1.0 - np.searchsorted(bkg, thr, side="right") / len(bkg))
    return grid, np.array(out)


def binary_auc(table: pd.DataFrame, score_column: str = "score", split: str = "validation") -> float:
    """ROC AUC of carbon (samples starting with "C") against the background samples in ``table``."""
    from sklearn.metrics import roc_auc_score
    t = table[table["split"] == split]
    return float(roc_auc_score(t["sample"].astype(str).str.startswith("C"), t[score_column]))


def reduction_at_reference(table: pd.DataFrame, column: str = "score") -> dict:
    cut = table1.reference_cut(table, column)[0]
    return metrics.reduction_factor(table1.select(table, "fog", "validation")[column], cut)

def seed_spread(profile: Profile, params: dict, cut: float | None = None, verbose: int = 0,
                executor=None) -> pd.DataFrame:
    """The final configuration fitted with the profile's seed and each of ``training.seeds``
    (:func:`train_final`, resumable; on ``executor``'s workers at once when given), each ensemble
    cut at the SAME log-odds ``cut`` (default notebook 04's): one :func:`seed_row` per seed."""
    if cut is None:
        cut = json.loads(results.path(profile.name, "newsnet_threshold").read_text())["value"]
    executor = executor or search.SerialExecutor()
    futures = [executor.submit(seed_row, profile, params, s, float(cut), verbose)
               for s in (profile.seed, *profile.training["seeds"])]
    return pd.DataFrame([f.result() for f in futures])


def seed_row(profile: Profile, params: dict, seed: int, cut: float, verbose: int = 0) -> dict:
    """The fit of ``seed`` (trained or read back) cut at ``cut`` on validation: ``seed``, ``last_epoch``
    and per class of :func:`table1_samples` the fraction passing and ``<sample> passed`` counts."""
    samples = table1_samples(classes(profile))
    history, members = train_final(profile, params, verbose, seed=seed)
    table, _ = score(profile, members, splits=("validation",), save=False)
    r = table1.rows(table, "newsnet", "score", cut, splits=("validation",), samples=samples)
    row = {"seed": int(seed), "last_epoch": int(history["epoch"].max()) + 1}
    row.update({s: v for s, v in zip(r["sample"], r["value"])})
    row.update({f"{s} passed": f"{k} / {n}" for s, k, n in zip(r["sample"], r["passed"], r["total"])})
    return row


def spread_comparison(per_seed: pd.DataFrame, rows: pd.DataFrame) -> pd.DataFrame:
    """Validation fractions passing the one cut: the snapshot members' mean ± standard deviation
    (``rows`` from :func:`table1_rows` of the profile seed's fit) next to the seeds' (``per_seed``
    from :func:`seed_spread`, the profile's seed included), and the ratio of the two spreads."""
    val = rows[rows["split"] == "validation"].set_index("sample")
    out = []
    for sample in [s for s in val.index if s in per_seed.columns]:
        v = per_seed[sample].to_numpy(dtype=float)
        seed_sd = v.std(ddof=1) if len(v) > 1 else np.nan
        member_sd = float(val.loc[sample, "ensemble_spread"])
        out.append({"sample": sample,
                    "snapshot members: mean ± sd":
                        metrics.format_value(val.loc[sample, "member_mean"], member_sd)
                        if np.isfinite(member_sd) else f"{val.loc[sample, 'member_mean']:.3g}",
                    f"seeds (S = {len(v)}): mean ± sd": metrics.format_value(v.mean(), seed_sd)
                        if np.isfinite(seed_sd) else f"{v.mean():.3g}",
                    "seed sd / member sd": round(seed_sd / member_sd, 2) if member_sd > 0 else np.nan})
    return pd.DataFrame(out).set_index("sample")


def misclassified_events(profile: Profile, table: pd.DataFrame, k: int = 4, split: str = "validation"
                         ) -> tuple[pd.DataFrame, np.ndarray]:
    """The ``k`` highest-scoring fog events (fog called carbon) and the ``k`` lowest-scoring carbon
    events (carbon called fog) of ``split`` in the scored ``table`` (:func:`score`), with their
    ``barshift_nm`` when ``results/<profile>/conventional.csv`` exists (not computed here), and
    their images (2k, 8, H, W) in the standard polarisation order (:func:`dataset.load_images`).

    Returns (events with a ``group`` column, images)."""
    t = table[table["split"] == split]
    carbon = t["sample"].astype(str).str.startswith("C")
    events = pd.concat([t[t["sample"] == "fog"].nlargest(k, "score").assign(group="fog called carbon"),
                        t[carbon].nsmallest(k, "score").assign(group="carbon called fog")], ignore_index=True)
    conv = results.path(profile.name, "conventional")
    if "barshift_nm" not in events and conv.exists():
        bs = pd.read_csv(conv, usecols=["file", "event_id", "barshift_nm"])
        events = events.merge(bs, on=["file", "event_id"], how="left")
    return events, dataset.load_images(dataset.dataset_dir(profile), events)


def score_label(names) -> str:
    """The score's formula for a class list, e.g. ``ln[(p(C30keV) + p(C100keV)) / p(fog)]``."""
    def total(group):
        terms = [f"p({c})" for c in group]
        return terms[0] if len(terms) == 1 else "(" + " + ".join(terms) + ")"
    return (f"ln[{total([c for c in names if c.startswith('C')])} / "
            f"{total([c for c in names if not c.startswith('C')])}]")


def beside_the_authors(table: pd.DataFrame, column: str = "score") -> pd.DataFrame:
    """Per carbon class: the validation efficiency at the cut passing the authors' fog fraction
    (1.43e-3) and the AUC against fog on validation and test, next to the authors' 4-class
    ensemble (:data:`emulsion_core.config.paper.AUTHORS_EFFICIENCY`, ``AUTHORS_AUC``)."""
    from emulsion_core.config import paper
    from sklearn.metrics import roc_auc_score
    fog = table1.select(table, "fog", "validation")[column]
    cut = float(np.quantile(fog, 1.0 - paper.AUTHORS_FOG_FRACTION)) if len(fog) else np.nan
    out = []
    for sample, authors in paper.AUTHORS_EFFICIENCY.items():
        val = table1.select(table, sample, "validation")[column]
        if not len(val):
            continue
        row = {"sample": sample, "efficiency at fog 1.43e-3": round(float((val > cut).mean()), 3),
               "authors": authors, "fog events at the cut": f"{int((fog > cut).sum())} / {len(fog)}"}
        for split, theirs in zip(("validation", "test"), paper.AUTHORS_AUC[sample]):
            s, f = table1.select(table, sample, split)[column], table1.select(table, "fog", split)[column]
            ok = len(s) and len(f)
            row[f"AUC vs fog ({split})"] = round(float(roc_auc_score(np.r_[np.ones(len(s)), np.zeros(len(f))],
                                                                      np.r_[s, f])), 3) if ok else np.nan
            row[f"authors ({split})"] = theirs
        out.append(row)
    return pd.DataFrame(out).set_index("sample") if out else pd.DataFrame()
