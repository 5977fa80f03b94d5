"""Bayesian hyper-parameter search for NEWSnet ([P21] sec. 3.2.3, Appendix A).

scikit-optimize's Gaussian-process optimizer (ask/tell) over the profile's ``search.dimensions``
of the Appendix A space (:data:`SPACE`); the parameters not searched stay at the paper's final
values (``models.PAPER_PARAMETERS``). The objective is the binary ROC AUC (summed carbon
probability, carbon against fog) from k-fold cross-validation on a fraction of the training data
with few epochs.

The optimizer is asked for ``batch_size`` points at a time (more than one: the constant-liar
strategy, ``cl_min``), which are evaluated in turn and told together. The history is written after
every call; a killed search restarts by replaying it into a fresh optimizer with the same seed,
asking exactly as the original did (the Sobol initial points come in order and every ask draws
the same random numbers), so it continues where the uninterrupted search would have. After the
calls, the best call is evaluated ``repeats`` more times with other seeds (another fold split and
initialisation): rows flagged ``repeat``, never told to the optimizer and never chosen as best,
that measure the noise floor of the AUC (:func:`noise_floor`).
"""

from __future__ import annotations

from concurrent.futures import Executor, as_completed

import numpy as np
import pandas as pd

from emulsion_core.config.paper import SEARCH_SPACE
from emulsion_core.networks.trials import SerialExecutor, drive_async, drive_batch, sobol_quiet, trial
from emulsion_core.storage import history as history_file

SPACE = SEARCH_SPACE  # [P21] Appendix A ranges: name -> (kind, low, high, prior)
REPLICA_SEED_STEP = 1000  # a repeat r of the best call uses seed + r * REPLICA_SEED_STEP


def searched(dimensions=None) -> list:
    """The searched parameter names in :data:`SPACE`'s order (all of SPACE when None)."""
    if dimensions is None:
        return list(SPACE)
    unknown = set(dimensions) - set(SPACE)
    if unknown or not dimensions:
        raise ValueError(f"search dimensions {sorted(unknown) or dimensions!r}: expected names of SPACE ({', '.join(SPACE)})")
    return [k for k in SPACE if k in dimensions]


def replica_seed(seed: int, replica: int) -> int:
    """Seed of repeat ``replica`` (0: the search's own) of a point: fold split and initialisation."""
    return int(seed) + REPLICA_SEED_STEP * int(replica)


def skopt_space(dimensions=None):
    """scikit-optimize dimensions of the searched parameters (:func:`searched`)."""
    from skopt.space import Integer, Real
    out = []
    for k in searched(dimensions):
        kind, lo, hi, prior = SPACE[k]
        out.append(Integer(lo, hi, name=k) if kind == "int" else Real(lo, hi, prior=prior, name=k))
    return out


def _typed(values: dict) -> dict:
    """Every parameter of SPACE from ``values``, as int or float."""
    return {k: (int(values[k]) if SPACE[k][0] == "int" else float(values[k])) for k in SPACE}


def as_params(x, dimensions=None, fixed=None) -> dict:
    """All parameters of SPACE: ``x`` gives the searched ones (in :func:`searched` order), ``fixed``
    the others (default: the paper's final values, ``models.PAPER_PARAMETERS``)."""
    dims = searched(dimensions)
    if len(x) != len(dims):
        raise ValueError(f"{len(x)} values for {len(dims)} searched dimensions ({', '.join(dims)})")
    values = dict(_fixed(fixed) if len(dims) < len(SPACE) else {})
    values.update(zip(dims, x))
    return _typed(values)


def _fixed(fixed) -> dict:
    if fixed is None:
        from emulsion_core.config.paper import PAPER_PARAMETERS
        fixed = PAPER_PARAMETERS
    return _typed(fixed)


def optimizer(n_initial_points: int, seed: int, dimensions=None):
    """A fresh GP optimizer (expected improvement, Sobol initial points) over the searched dimensions."""
    from skopt import Optimizer
    return Optimizer(skopt_space(dimensions), base_estimator="GP", n_initial_points=n_initial_points,
                     initial_point_generator="sobol", acq_func="EI", random_state=seed)


def _is_repeat(row) -> bool:
    return bool(row.get("repeat", False) == True)  # noqa: E712 (NaN and missing: a call)


MODES = ("batch", "async")


def run(objective, n_calls: int, n_initial_points: int, seed: int, checkpoint=None, progress: bool = True, *,
        dimensions=None, fixed=None, batch_size: int = 1, repeats: int = 0, mode: str = "batch",
        executor: Executor | None = None) -> pd.DataFrame:
    """Maximise ``objective`` over the searched ``dimensions`` in ``n_calls`` calls, then evaluate
    the best call ``repeats`` more times; resumable from ``checkpoint`` (a JSON history).

    objective : ``objective(params) -> score`` to maximise (the cross-validated AUC), params a
        dict of every parameter of SPACE; with ``repeats`` it is also called as
        ``objective(params, replica=r)``, r = 1..repeats: the same point with another seed
        (:func:`replica_seed`: another fold split and initialisation). With an ``executor`` it
        must pickle (a module-level function or a ``functools.partial`` of one).
    dimensions : names of SPACE to search (None: all); the others are held at ``fixed``
        (None: ``models.PAPER_PARAMETERS``).
    batch_size : trials at once: points asked together (``batch``) or slots kept busy (``async``).
    mode : ``batch``: ``ask(n_points=batch_size)`` (constant liar), the batch evaluated (in
        parallel on an ``executor``) and told together: the same seed and batch size give the same
        history, and a search killed anywhere resumes to the unbroken one's (worker and time
        columns aside; a killed batch is asked again and only its unsaved calls evaluated).
        ``async``: a slot is refilled as soon as a trial ends (:func:`drive_async`); the history
        records the order trials finished in, replays exactly, and a resumed search repeats no
        finished trial.
    executor : where trials run (a Dask cluster's ``client.get_executor()``; a lost worker's
        trial is retried on another by Dask); default: in turn, in this process.
    Returns the history: one row per call (every parameter, ``score`` (AUC), ``call``, ``batch``
    or ``asked_after``/``told``, ``worker``, ``start``, ``end``, ``repeat`` False), then one per
    repeat (``repeat`` True, ``replica`` r, ``call`` the call repeated).
    Long: the history is loaded, driven in either mode, repeated and saved in one place, so the
    resume rules (what is replayed, what runs again) read top to bottom.
    """
    from functools import partial

    from tqdm import tqdm

    if mode not in MODES:
        raise ValueError(f"search mode {mode!r}: expected one of {', '.join(MODES)}")
    dims = searched(dimensions)
    held = _fixed(fixed) if len(dims) < len(SPACE) else {}
    executor = executor or SerialExecutor()
    rows = history_file.load(checkpoint)
    calls = {int(r["call"]): r for r in rows if not _is_repeat(r)}
    again = [r for r in rows if _is_repeat(r)]
    finished = sum(1 for r in calls.values() if _finished(r))
    bar = tqdm(total=max(n_calls, len(calls)) + repeats, initial=finished + len(again), desc="search",
               **({} if progress else {"disable": True}))

    def save(step: bool = False):
        if checkpoint:
            history_file.save(checkpoint, [calls[i] for i in sorted(calls)] + again)
        bar.update(int(step))

    def submit(x, replica=0):
        return executor.submit(trial, objective, as_params(x, dims, held), replica)

    def record(future, i, x, b):
        calls[i] = {**as_params(x, dims, held), **future.result(), "call": i, "batch": b, "repeat": False}
        save(step=True)

    def launch(todo: dict):
        futures = {}
        for i, (x, b) in todo.items():
            future = submit(x)
            if future.done():  # run here (no cluster): saved before the next is evaluated
                record(future, i, x, b)
            else:
                futures[future] = (i, x, b)
        for future in as_completed(futures):
            record(future, *futures[future])

    total = max(n_calls, len(calls))
    where = f" {checkpoint}" if checkpoint else ""
    opt = optimizer(n_initial_points, seed, dims)
    if mode == "batch":
        drive_batch(opt, calls, total, int(batch_size), dims, launch, where)
    else:
        for r in calls.values():
            r.setdefault("repeat", False)
        drive_async(opt, calls, total, int(batch_size), dims, submit, partial(save, True),
                     lambda x: as_params(x, dims, held), where)
    done = [r for r in calls.values() if _finished(r)]
    if repeats and done:
        top = max(sorted(done, key=lambda r: r["call"]), key=lambda r: r["score"])  # the first of ties, as best()
        params = _typed(top)
        have = {int(r["replica"]) for r in again if r["call"] == top["call"]}
        futures = {executor.submit(trial, objective, dict(params), r): r for r in range(1, repeats + 1) if r not in have}
        for future in as_completed(futures):
            again.append({**params, **future.result(), "call": top["call"], "repeat": True,
                          "replica": futures[future]})
            save(step=True)
        again.sort(key=lambda r: (r["call"], int(r["replica"])))
        save()
    bar.close()
    return pd.DataFrame([calls[i] for i in sorted(calls)] + again)


def _finished(row) -> bool:
    return row.get("score") is not None and np.isfinite(float(row["score"]))


def calls_of(history: pd.DataFrame) -> pd.DataFrame:
    """The search's own finished calls (the rows not flagged ``repeat``, with a score: an async
    history also lists the calls still running when it was saved)."""
    calls = history if "repeat" not in history else history[~history["repeat"].eq(True)]
    return calls[pd.to_numeric(calls["score"], errors="coerce").notna()]


def best(history: pd.DataFrame) -> dict:
    """Parameters of the best call (repeats of a call are never chosen)."""
    calls = calls_of(history)
    return _typed(calls.loc[calls["score"].idxmax(), list(SPACE)])


def noise_floor(history: pd.DataFrame) -> dict:
    """How much the cross-validated AUC of one point moves with the seed, next to how much the
    calls differ.

    history : a :func:`run` history with repeat rows (``search.repeats`` > 0).
    Returns a dict: ``call`` (the call repeated: the best), ``replica`` (0 = the call itself, then
    the repeats) and ``scores`` (its AUCs, in that order), ``spread`` (their standard deviation,
    ddof 1; for two scores |difference| / sqrt 2), ``range`` (max - min), ``lead`` (the call's
    own AUC minus the mean of its repeats: the part of the best call's lead that was luck),
    ``n_calls``, ``calls_spread`` (standard deviation, ddof 1, of the calls' AUCs) and
    ``calls_range``. All in AUC units. Differences between calls smaller than ``spread`` are noise.
    """
    calls = calls_of(history)
    again = history[history["repeat"].eq(True)] if "repeat" in history else history.iloc[:0]
    if again.empty:
        raise ValueError("the search history has no repeated evaluations (set search.repeats > 0)")
    call = int(calls.loc[calls["score"].idxmax(), "call"])
    if not (again["call"] == call).any():  # the history grew after the repeats: the point they repeated
        call = int(again["call"].iloc[-1])
    again = again[again["call"] == call].sort_values("replica")
    scores = [float(calls.loc[calls["call"] == call, "score"].iloc[0])] + again["score"].astype(float).tolist()
    own = calls["score"].astype(float).to_numpy()
    return {"call": call, "replica": [0] + again["replica"].astype(int).tolist(), "scores": scores,
            "spread": float(np.std(scores, ddof=1)), "range": float(np.ptp(scores)),
            "lead": scores[0] - float(np.mean(scores[1:])), "n_calls": len(own),
            "calls_spread": float(np.std(own, ddof=1)) if len(own) > 1 else float("nan"),
            "calls_range": float(np.ptp(own))}


def noise_floor_table(floor: dict) -> pd.DataFrame:
    """:func:`noise_floor` as a small table: the repeated call's AUC per seed, its spread and the
    calls' spread (AUC, 4 decimals)."""
    c = floor["call"]
    rows = [(f"call {c} (the best), the search's seed" if r == 0 else f"call {c} again, seed + {r * REPLICA_SEED_STEP}", s)
            for r, s in zip(floor["replica"], floor["scores"])]
    rows += [(f"spread of call {c}'s {len(floor['scores'])} evaluations (std)", floor["spread"]),
             (f"spread of the {floor['n_calls']} calls (std)", floor["calls_spread"]),
             (f"call {c}'s own AUC minus its repeats' mean", floor["lead"])]
    return pd.DataFrame(rows, columns=["", "cross-validated AUC"]).set_index("").round(4)


def cross_validated_auc(params: dict, images: np.ndarray, labels: np.ndarray, folds: int, epochs: int,
                        width_scale, batch_size: int, seed: int, camera_max: float, classes=None,
                        log_dir=None, reuse_traced: bool = True) -> float:
    """Mean binary ROC AUC (carbon against the background classes) over stratified ``folds``-fold
    cross-validation; camera_max : the range of ``images`` (ADU); classes : the class list the
    ``labels`` index (the paper's when None); log_dir : TensorBoard logs of each fold's fit under
    ``<log_dir>/fold<k>``; reuse_traced : one network traced for all folds, reset exactly to each
    fold's fresh initialisation (:func:`reset_to`; False builds and traces one per fold: the same AUC).

    Each fold's network is trained with ``training.fit_in_memory`` (which re-estimates its
    batch-normalisation statistics on the fold's training events) and scored with the
    log-odds of carbon against fog (``scoring``)."""
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold

    from emulsion_core.networks import scoring
    from emulsion_core.config.paper import PAPER_CLASSES
    from emulsion_core.networks.models import keras, signal_indices
    from emulsion_core.networks.sequences import EventSequence
    from emulsion_core.networks.training import build, fit_in_memory

    classes = tuple(classes) if classes is not None else PAPER_CLASSES
    aucs, model = [], None
    try:
        for k, (tr, va) in enumerate(StratifiedKFold(folds, shuffle=True, random_state=seed).split(labels, labels)):
            keras.utils.set_random_seed(seed + k)
            fresh = build(params, width_scale, classes=classes)
            model = fresh if model is None or not reuse_traced else reset_to(model, fresh)
            fit_in_memory(model, params, images[tr], labels[tr], epochs, batch_size, seed + k,
                          camera_max=camera_max, log_dir=f"{log_dir}/fold{k}" if log_dir else None)
            score = scoring.member_log_odds(scoring.class_logits(
                model, EventSequence(images[va], None, scoring.INFERENCE_BATCH, camera_max=camera_max)), classes)
            if not np.all(np.isfinite(score)):
                return 0.5  # a diverged fit: no separation
            aucs.append(roc_auc_score(np.isin(labels[va], signal_indices(classes)), score))
    finally:
        keras.backend.clear_session()
    return float(np.mean(aucs))


def reset_to(model, fresh):
    """``model`` (compiled, trained, its training step traced) set exactly to the state of the
    freshly built, never trained network ``fresh`` of the same architecture: every variable
    (weights, batch-norm statistics, the dropout layers' seed-generator states) copied from it, the
    optimiser's step count and moments zeroed. The traced training, recalibration and prediction
    functions are kept, so a search call traces its network once for all its folds instead of once
    per fold (~15 s each). The next fit trains exactly as ``fresh`` would (a test). Returns ``model``."""
    import re

    def layout(variables):  # seed generators are numbered per session: their order and shape identify them
        return [(re.sub(r"seed_generator_\d+", "seed_generator", v.path), tuple(v.shape)) for v in variables]

    mine, theirs = model.variables, fresh.variables
    if layout(mine) != layout(theirs):
        raise ValueError(f"reset_to: {model.name} and {fresh.name} are not the same architecture")
    for v, w in zip(mine, theirs):
        v.assign(w)
    optimizer = model.optimizer
    for v in optimizer.variables:
        if v is not getattr(optimizer, "_learning_rate", None):
            v.assign(np.zeros(v.shape, v.dtype))
    optimizer.learning_rate = fresh.optimizer.learning_rate
    return model


def result(history: pd.DataFrame, n_initial_points: int, seed: int, dimensions=None, batch_size: int = 1):
    """The scikit-optimize result of a finished search (its calls replayed, as :func:`run` asked
    them; repeats left out), over the searched dimensions, for skopt's plots. An async history is
    told in the order its trials finished."""
    dims = searched(dimensions)
    rows = calls_of(history)
    opt = optimizer(n_initial_points, seed, dims)
    if "told" in rows and rows["told"].notna().any():
        rows = rows.sort_values("told")
        with sobol_quiet():
            opt.tell([[_typed(r)[k] for k in dims] for r in rows.to_dict("records")], (-rows["score"].astype(float)).tolist())
        return opt.get_result()
    calls = {int(r["call"]): _typed(r) | {"score": float(r["score"])} for r in rows.to_dict("records")}
    drive_batch(opt, calls, len(calls), int(batch_size), dims)
    return opt.get_result()


def comparison_table(history: pd.DataFrame, dimensions=None) -> pd.DataFrame:
    """The best parameters next to the paper's (Appendix A); a parameter the search did not vary
    reads "fixed (paper)"."""
    from emulsion_core.config.paper import PAPER_PARAMETERS
    b, dims = best(history), searched(dimensions)
    rows = [{"parameter": k, "range": f"[{v[1]:g}, {v[2]:g}]",
             "this search": _fmt(b[k]) if k in dims else "fixed (paper)", "paper": _fmt(PAPER_PARAMETERS[k])}
            for k, v in SPACE.items()]
    return pd.DataFrame(rows).set_index("parameter")


def _fmt(v) -> str:
    return f"{v:d}" if isinstance(v, int) else f"{v:.3g}"
