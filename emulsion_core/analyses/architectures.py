"""The architecture table: NEWSnet-family configurations and the compact nets, each trained alike
at one budget, next to the controls every network must beat and the simulator's ceiling.

Every network of the table is trained with the same hyper-parameters (the search's best or the
paper's), on the same stratified fraction of the training split for the same epochs, its batch
normalisation re-estimated after the fit (``training.fit_in_memory``), and scored on the whole
validation split by the log-odds of carbon against fog (``scoring``). A NEWSnet configuration is
its widths (``[stem scale, residual scale]`` of the paper's 32/64 stem and searched residual
widths, :func:`training.scaled_widths`) and its number of identity blocks. Rows are written to
``results/<profile>/newsnet/architectures.json`` as they finish, keyed by their inputs and code
(:mod:`provenance`), so an interrupted table resumes and a finished one is read back.

Reference rows: the controls of Table 1 (barshift, cluster size, border ring) at the same
30 % C100keV cut, and, on simulated scans, the ceiling set by the true number of grains: single-grain
carbon events are the simulator's fog grains (one grain model, acquisition shared by every sample),
so no image classifier can rank them above fog, and the AUC of the grain count bounds what any
network can reach (an audit found every image statistic of one-grain carbon and fog alike within
AUC 0.49-0.55; the events table's ``view_density`` and positions do differ, so the bound holds for
classifiers of the images only).
"""

from __future__ import annotations

import json
import time
from concurrent.futures import as_completed

import numpy as np
import pandas as pd

from emulsion_core.analyses import table1
from emulsion_core.config.profiles import VARIANT_METHODS, Profile
from emulsion_core.data import dataset, preprocessing
from emulsion_core.networks import scoring, sequences, training
from emulsion_core.networks.models import ARCHITECTURES, flops_per_event, keras, trainable_parameters
from emulsion_core.stats import metrics
from emulsion_core.storage import atomic, provenance, results

CONTROLS = ("barshift", "cluster_size", "border_control")  # written by notebooks 01-02, before this table


def configurations(profile: Profile, params: dict | None = None) -> list[dict]:
    """The table's entries: ``{"name", "kind": "newsnet" | compact name, "width_scale", "n_identity"}``;
    a NEWSnet entry without ``n_identity`` takes that of ``params`` (the search's), and an entry
    that repeats an earlier one is left out."""
    out = []
    for c in profile.architectures["newsnet"]:
        n_id = c.get("n_identity", (params or {}).get("n_identity"))
        entry = {"name": newsnet_name(c["width_scale"], n_id), "kind": "newsnet", "width_scale": list(c["width_scale"]),
                 "n_identity": None if n_id is None else int(n_id)}
        if entry not in out:
            out.append(entry)
    out += [{"name": name, "kind": name} for name in profile.architectures["compact"]]
    n_id = (params or {}).get("n_identity")
    mine = {"kind": "newsnet", "width_scale": list(training.width_pair(profile.network["width_scale"])),
            "n_identity": None if n_id is None else int(n_id)}
    return out + [{"name": f"{newsnet_name(mine['width_scale'], n_id)}: {VARIANT_NAMES[v]}", **mine, "variant": v}
                  for v in profile.architectures.get("variants", [])]


VARIANT_NAMES = {"unpolarised": "unpolarised input (mean of the 8, repeated)",
                 "shuffled": "polarisations in a random order per event",
                 "depth_matched": "background at the carbon's imaging depths"}


def variant_input(images: np.ndarray, config: dict, seed: int) -> np.ndarray:
    """The images a table entry sees: as recorded, or its variant's transform of them."""
    if config.get("variant") == "unpolarised":
        return preprocessing.unpolarised_input(images)
    if config.get("variant") == "shuffled":
        return preprocessing.shuffled_polarisations(images, seed)
    return images


def depth_matched(rows: pd.DataFrame, signal: tuple, quantiles=(0.01, 0.99)) -> np.ndarray:
    """Mask of the training events a depth-matched network learns from: every carbon event, and
    the background events whose imaging depth lies within the carbon events' band (their 1-99 %
    quantiles), so the network cannot lean on depth (issue 17, item 5)."""
    if "depth_um" not in rows:
        raise ValueError("depth-matched training needs the events' imaging depth (depth_um column)")
    carbon = rows["sample"].isin(signal).to_numpy()
    lo, hi = np.quantile(rows.loc[carbon, "depth_um"], quantiles)
    return carbon | rows["depth_um"].between(lo, hi).to_numpy()


def depth_matched_training(profile: Profile, rows: pd.DataFrame, images: np.ndarray, labels: np.ndarray):
    """The depth-matched network's training events: the budget's carbon events (``rows``, ``images``,
    ``labels``) and every background event of the whole training split inside the carbon's
    imaging-depth band (:func:`depth_matched`). The band holds ~5 % of the background (2.2 of 46 um),
    so the budget's fraction of it would leave tens of events (59 at ``default``: AUC on scans without
    depth effects 0.78, against 0.85 with the 268 of the whole split, 2026-12-07)."""
    from emulsion_core.analyses.network_analysis import classes, split_data
    carbon_names = tuple(n for n in classes(profile) if n.startswith("C"))
    carbon = rows["sample"].isin(carbon_names).to_numpy()
    full_rows, _, full_labels = split_data(profile, "train", with_images=False)
    band = depth_matched(full_rows, carbon_names) & ~full_rows["sample"].isin(carbon_names).to_numpy()
    band_images = dataset.load_images(dataset.dataset_dir(profile), full_rows[band])  # only the ~5 % kept
    return (pd.concat([rows[carbon], full_rows[band]], ignore_index=True),
            np.concatenate([images[carbon], band_images]), np.concatenate([labels[carbon], full_labels[band]]))


def newsnet_name(width_scale, n_identity=None) -> str:
    """``NEWSnet stem 1/8, residual 1/4, 3 id`` from a ``[stem, residual]`` scale pair."""
    stem, residual = training.width_pair(width_scale)
    ident = "" if n_identity is None else f", {int(n_identity)} id"
    return f"NEWSnet stem {_fraction(stem)}, residual {_fraction(residual)}{ident}"


def _fraction(x: float) -> str:
    return "1" if x == 1 else f"1/{round(1 / x):d}" if abs(1 / x - round(1 / x)) < 1e-6 else f"{x:g}"


def build(config: dict, params: dict, n_classes: int = 3) -> "keras.Model":
    """The uncompiled network of a table entry with the training ``params``."""
    from emulsion_core.networks.models import newsnet
    if config["kind"] != "newsnet":
        return ARCHITECTURES[config["kind"]](n_classes=n_classes)
    p = dict(params) if config.get("n_identity") is None else {**params, "n_identity": int(config["n_identity"])}
    return newsnet(**training.scaled_widths(p, config["width_scale"]), n_classes=n_classes)


def _key(profile: Profile, params: dict, config: dict) -> dict:
    clean = results.path(profile.name, "clean_events")
    return provenance.key("architecture_table", clean_events=provenance.upstream(clean),
                          batch_size=profile.network["batch_size"], budget=dict(profile.architectures["budget"]),
                          seed=profile.seed, params=dict(params), config=config)


def table_path(profile: Profile):
    return results.path(profile.name, "architectures")


def sweep(profile: Profile, params: dict, progress: bool = True, n_timing: int = 256, executor=None) -> pd.DataFrame:
    """Train and score every entry of :func:`configurations` (resumable); returns one row each:
    trainable parameters, MFLOPs per event, training events/s on this machine (the row's own fit,
    its epochs after the first) and inference events/s (``n_timing`` events), validation AUC (carbon vs fog) and the fog fraction at the 30 % C100keV validation cut.

    The compact nets and the depth-matched NEWSnet are also scored on the test splits (test_bulk
    included) and their Table 1 rows (the cut set on validation like every method's) written to
    ``table1.csv``. executor : train the rows on its workers at once (a Dask cluster's; each row
    seeds its own fit, so its numbers are those of the serial table; its events/s are the worker's)."""
    from tqdm import tqdm

    from emulsion_core.analyses.network_analysis import classes, split_data
    names = classes(profile)
    # the network's classes and class balance travel with the parameters, as in the search
    params = {**params, "classes": list(names), "class_balance": profile.training.get("class_balance", "weights")}
    path = table_path(profile)
    done = _read(path)
    todo = [c for c in configurations(profile, params) if _digest(profile, params, c) not in done]
    if executor is not None:
        futures = {executor.submit(table_row, profile, params, c, n_timing): c for c in todo}
        bars = {} if progress else {"disable": True}  # not disable=False: that would override TQDM_DISABLE
        for future in tqdm(as_completed(futures), total=len(futures), desc="architectures", **bars):
            done[_digest(profile, params, futures[future])] = future.result()
            _write(path, done)
        todo = []
    if todo:
        train = split_data(profile, "train", profile.architectures["budget"]["train_fraction"], profile.seed)
    for config in tqdm(todo, desc="architectures", **({} if progress else {"disable": True})):
        done[_digest(profile, params, config)] = _train_and_score(profile, params, config, train, n_timing)
        keras.backend.clear_session()
        _write(path, done)
    records = [done[_digest(profile, params, c)] for c in configurations(profile, params)]
    trained = [r for rec in records for r in rec.get("table1", [])]
    if trained:
        table1.record(pd.DataFrame(trained), profile)
    return pd.DataFrame([{k: v for k, v in r.items() if k != "table1"} for r in records]).set_index("architecture")


def table_row(profile: Profile, params: dict, config: dict, n_timing: int = 256) -> dict:
    """One row of the table trained where it runs (a cluster task): its training events read there."""
    from emulsion_core.analyses.network_analysis import split_data
    train = split_data(profile, "train", profile.architectures["budget"]["train_fraction"], profile.seed)
    try:
        return _train_and_score(profile, params, config, train, n_timing)
    finally:
        keras.backend.clear_session()


def _train_and_score(profile: Profile, params: dict, config: dict, train: tuple, n_timing: int) -> dict:
    """One table entry trained at the profile's budget on ``train`` (rows, images, labels) and
    scored: its record (with Table 1 rows for the compact nets and the depth-matched NEWSnet)."""
    from emulsion_core.analyses.network_analysis import binary_auc, classes, evaluation_splits, split_data
    names, seed = classes(profile), profile.seed
    budget, batch = profile.architectures["budget"], profile.network["batch_size"]
    scale = dataset.camera_max(dataset.dataset_dir(profile))
    rows, x_train, y_train = train
    if config.get("variant") == "depth_matched":
        rows, x_train, y_train = depth_matched_training(profile, rows, x_train, y_train)
    background = int((~rows["sample"].astype(str).str.startswith("C")).sum())
    keras.utils.set_random_seed(seed)
    model = training.compile_model(build(config, params, len(names)), params, False, names)
    timer = training.EpochTimer()  # the training events/s of this very fit (its first epoch traces: left out)
    training.fit_in_memory(model, params, variant_input(x_train, config, seed), y_train, budget["epochs"], batch, seed,
                           camera_max=scale, callbacks=[timer])
    if config.get("variant"):
        save_variant(model, profile, config["variant"])
    method = VARIANT_METHODS.get(config.get("variant")) or (config["name"] if config["kind"] != "newsnet" else None)
    scored = []
    for split in evaluation_splits(profile) if method else ("validation",):
        split_rows, images, _ = split_data(profile, split)
        z = scoring.class_logits(model, sequences.EventSequence(variant_input(images, config, seed + 1), None,
                                                                scoring.INFERENCE_BATCH,
                                                                camera_max=scale))
        scored.append(split_rows.assign(score=scoring.member_log_odds(z, names)))
        del images
    scored = pd.concat(scored, ignore_index=True)
    validation = scored[scored["split"] == "validation"]
    per_epoch = -(-len(y_train) // batch) * batch  # the last batch filled up (full batches)
    record = {"architecture": config["name"], "parameters": trainable_parameters(model),
              "MFLOPs per event": round(flops_per_event(model) / 1e6, 1),
              "train events/s": float(np.round(timer.events_per_s(per_epoch))),  # NaN: no epoch timed
              "inference events/s": float(np.round(inference_rate(model, x_train[:n_timing], scale))),
              "training events": int(len(y_train)), "background training events": background,
              "validation AUC": round(binary_auc(validation), 3), **_fog_fraction(validation, "score")}
    if method:
        cut = table1.reference_cut(scored, "score")[0]
        table_rows = table1.rows(scored, method, "score", cut, samples=table1.samples_for(names))
        record["table1"] = json.loads(table_rows.to_json(orient="records"))
    return record


def inference_rate(model, images: np.ndarray, camera_max: float) -> float:
    """Inference events/s of ``model`` on ``images`` (camera range ``camera_max``, ADU), scored as
    the table's scores are (``scoring.class_logits``, ``scoring.INFERENCE_BATCH``), after a warm-up."""
    x = sequences.EventSequence(images, None, scoring.INFERENCE_BATCH, camera_max=camera_max)
    scoring.class_logits(model, x)
    t = time.perf_counter()
    scoring.class_logits(model, x)
    return len(images) / (time.perf_counter() - t)


def variant_path(profile: Profile, variant: str):
    """The ``.keras`` file of the table's NEWSnet ``variant`` (one member: score it with ``predict``)."""
    return results.path(profile.name, "variant_networks") / f"{variant}.keras"


def save_variant(model, profile: Profile, variant: str) -> None:
    """Keep a variant's trained network (written atomically)."""
    final = variant_path(profile, variant)
    final.parent.mkdir(parents=True, exist_ok=True)
    with atomic.replacing(final, keep_suffix=True) as tmp:  # Keras wants the .keras suffix
        model.save(tmp)


def _digest(profile: Profile, params: dict, config: dict) -> str:
    return provenance.digest(_key(profile, params, config))


def _read(path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


def _write(path, rows: dict) -> None:
    atomic.write_json(path, rows, indent=1)


def _fog_fraction(table: pd.DataFrame, column: str) -> dict:
    """Fog fraction passing the cut that keeps 30 % of C100keV validation events, with its 68 %
    interval: ``fog at 30% C100keV``, ``fog low``, ``fog high``."""
    from emulsion_core.analyses.network_analysis import reduction_at_reference
    red = reduction_at_reference(table, column)
    return {"fog at 30% C100keV": red["value"], "fog low": red["low"], "fog high": red["high"]}


def reference_rows(profile: Profile) -> pd.DataFrame:
    """The controls' validation fog fractions at the 30 % C100keV cut (from Table 1, as far as the
    earlier notebooks have written them). The grain-count ceiling (:func:`grain_count_ceiling`) is
    left out: with imaging depth in the image it is no bound."""
    rows = []
    t = table1.read(profile)
    if len(t):
        for method in CONTROLS:
            r = t[(t["method"] == method) & (t["sample"] == "fog") & (t["split"] == "validation")]
            if len(r):
                r = r.iloc[0]
                rows.append({"architecture": f"control: {method}", "fog at 30% C100keV": r["value"],
                             "fog low": r["value"] - r["err_low"], "fog high": r["value"] + r["err_high"]})
    # no grain-count ceiling since depth entered the image (issue 17): a one-grain carbon event no
    # longer looks like fog (it is imaged through less emulsion), so the true grain count bounds nothing
    return pd.DataFrame(rows).set_index("architecture") if rows else pd.DataFrame()


def grain_count_ceiling(profile: Profile, split: str = "validation") -> dict | None:
    """:func:`ceiling` of the profile's clean ``split`` events from their true number of grains;
    None when the scans carry no truth (real data)."""
    from emulsion_core.analyses.network_analysis import split_data
    rows = split_data(profile, split, with_images=False)[0]
    truth = dataset.truth_column(dataset.dataset_dir(profile), rows, "true_n_grains")
    return None if truth is None else ceiling(rows, truth, profile.seed)


def ceiling(rows: pd.DataFrame, n_grains: np.ndarray, seed: int = 0) -> dict:
    """AUC (carbon vs fog; ties count one half) and fog fraction at the 30 % C100keV cut of a score
    that is the true number of grains: what an image classifier can at best reach when one-grain
    carbon events look like fog (one grain model for every grain, acquisition shared by every
    sample), counting every multi-grain event as separable (so the bound is optimistic).

    rows : events with ``sample`` and ``split``; n_grains : their true grain counts; samples other
    than carbon (names starting with "C") and fog are left out. ``seed`` breaks ties at random for
    the cut only."""
    from sklearn.metrics import roc_auc_score
    keep = (rows["sample"].astype(str).str.startswith("C") | (rows["sample"] == "fog")).to_numpy()
    rows, n = rows[keep], np.asarray(n_grains, float)[keep]
    auc = float(roc_auc_score(rows["sample"].astype(str).str.startswith("C"), n))
    jitter = np.random.default_rng(seed).uniform(0.0, 0.5, len(rows))  # random order inside a grain count
    return {"validation AUC": round(auc, 3), **_fog_fraction(rows.assign(score=n + jitter), "score")}


def format_table(table: pd.DataFrame, profile: Profile | None = None, params: dict | None = None) -> pd.DataFrame:
    """The table as text: the fog fraction with its 68 % interval, blanks where a row has no value,
    and with ``profile`` and ``params`` a mark on the NEWSnet configuration the profile trains."""
    out = table.drop(columns=["fog low", "fog high"]).astype(object)
    for column in ("parameters", "train events/s", "inference events/s"):
        if column in out:
            out[column] = [f"{int(v):,}" if pd.notna(v) else v for v in table[column]]
    out = out.where(table.drop(columns=["fog low", "fog high"]).notna(), "")
    out["fog at 30% C100keV"] = [metrics.format_value(v, v - lo, hi - v) for v, lo, hi in
                                 zip(table["fog at 30% C100keV"], table["fog low"], table["fog high"])]
    if profile is not None:
        mine = newsnet_name(profile.network["width_scale"], (params or {}).get("n_identity"))
        out["profile's network"] = ["yes" if name == mine else "" for name in out.index]
    return out
