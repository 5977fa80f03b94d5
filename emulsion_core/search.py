"""Bayesian hyper-parameter search for NEWSnet ([P21] sec. 3.2.3, Appendix A).

scikit-optimize's Gaussian-process optimizer (ask/tell) over the whole Appendix A space; the
objective is the binary ROC AUC (summed carbon probability, carbon against fog) from k-fold
cross-validation on a fraction of the training data with few epochs. The history is written
after every call; a killed search restarts by replaying it into a fresh optimizer with the same
seed (initial points from a Sobol sequence, so the replay consumes no randomness the original
did not), and continues exactly where the uninterrupted search would have.
"""

from __future__ import annotations


import numpy as np
import pandas as pd

from . import history as history_file

# name: (kind, low, high, prior) -- [P21] Appendix A ranges
SPACE = {
    "dropout_1": ("real", 0.1, 0.4, "uniform"),
    "dropout_2": ("real", 0.3, 0.8, "uniform"),
    "dropout_3": ("real", 0.0, 0.4, "uniform"),
    "filters_1": ("int", 32, 64, "uniform"),
    "filters_2": ("int", 64, 128, "uniform"),
    "n_identity": ("int", 0, 3, "uniform"),
    "loss_lambda": ("real", 0.01, 2.0, "uniform"),
    "learning_rate": ("real", 1e-5, 3e-3, "log-uniform"),
    "beta_1_inv": ("real", 10.0, 100.0, "uniform"),  # beta_1 = 1 - 1/beta_1_inv
    "beta_2_inv": ("real", 100.0, 1500.0, "uniform"),
    "decay_rate": ("real", 1e-4, 1e-1, "log-uniform"),
}


def skopt_space():
    from skopt.space import Integer, Real
    return [Integer(lo, hi, name=k) if kind == "int" else Real(lo, hi, prior=prior, name=k)
            for k, (kind, lo, hi, prior) in SPACE.items()]


def as_params(x) -> dict:
    return {k: (int(v) if SPACE[k][0] == "int" else float(v)) for k, v in zip(SPACE, x)}


def run(objective, n_calls: int, n_initial_points: int, seed: int, checkpoint=None, progress: bool = True) -> pd.DataFrame:
    """Maximise ``objective`` over SPACE in ``n_calls`` calls; resumable from ``checkpoint``.

    objective : params dict -> score to maximise (the cross-validated AUC).
    Returns the history: one row per call with the parameters, ``score`` and ``call``.
    """
    from skopt import Optimizer
    from tqdm import tqdm

    opt = Optimizer(skopt_space(), base_estimator="GP", n_initial_points=n_initial_points,
                    initial_point_generator="sobol", acq_func="EI", random_state=seed)
    history = history_file.load(checkpoint)
    for row in history:  # replay
        opt.tell([row[k] for k in SPACE], -row["score"])
    bar = tqdm(total=n_calls, initial=len(history), desc="search", **({} if progress else {"disable": True}))
    while len(history) < n_calls:
        x = opt.ask()
        params = as_params(x)
        score = float(objective(params))
        opt.tell(x, -score)
        history.append({**params, "score": score, "call": len(history)})
        if checkpoint:
            history_file.save(checkpoint, history)
        bar.update(1)
    bar.close()
    return pd.DataFrame(history)


def best(history: pd.DataFrame) -> dict:
    """Parameters of the best call."""
    return as_params(history.loc[history["score"].idxmax(), list(SPACE)])


def cross_validated_auc(params: dict, images: np.ndarray, labels: np.ndarray, folds: int, epochs: int,
                        width_scale: float, batch_size: int, seed: int, camera_max: float) -> float:
    """Mean binary ROC AUC (carbon vs fog) over stratified ``folds``-fold cross-validation;
    camera_max : the range of ``images`` (ADU).

    Each fold's network is trained with ``training.fit_in_memory`` (which re-estimates its
    batch-normalisation statistics on the fold's training events) and scored with the
    log-odds of carbon against fog (``scoring``)."""
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold

    from . import scoring
    from .models import keras
    from .training import EventSequence, build, fit_in_memory

    aucs = []
    for k, (tr, va) in enumerate(StratifiedKFold(folds, shuffle=True, random_state=seed).split(labels, labels)):
        keras.utils.set_random_seed(seed + k)
        model = fit_in_memory(build(params, width_scale), params, images[tr], labels[tr], epochs, batch_size, seed + k,
                              camera_max=camera_max)
        score = scoring.member_log_odds(scoring.class_logits(
            model, EventSequence(images[va], None, batch_size, camera_max=camera_max)))
        keras.backend.clear_session()
        if not np.all(np.isfinite(score)):
            return 0.5  # a diverged fit: no separation
        aucs.append(roc_auc_score(labels[va] != 2, score))
    return float(np.mean(aucs))


def result(history: pd.DataFrame, n_initial_points: int, seed: int):
    """The scikit-optimize result of a finished search (replayed), for skopt's plots."""
    from skopt import Optimizer
    opt = Optimizer(skopt_space(), base_estimator="GP", n_initial_points=n_initial_points,
                    initial_point_generator="sobol", acq_func="EI", random_state=seed)
    res = None
    for _, row in history.iterrows():
        res = opt.tell([as_params(row[list(SPACE)].to_numpy())[k] for k in SPACE], -float(row["score"]))
    return res


def comparison_table(history: pd.DataFrame) -> pd.DataFrame:
    """The best parameters next to the paper's (Appendix A)."""
    from .models import PAPER_PARAMETERS
    b = best(history)
    rows = [{"parameter": k, "range": f"[{v[1]:g}, {v[2]:g}]", "this search": _fmt(b[k]),
             "paper": _fmt(PAPER_PARAMETERS[k])} for k, v in SPACE.items()]
    return pd.DataFrame(rows).set_index("parameter")


def _fmt(v) -> str:
    return f"{v:d}" if isinstance(v, int) else f"{v:.3g}"
