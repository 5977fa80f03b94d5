"""How search trials run and in which order: in turn here (:class:`SerialExecutor`) or on any
``concurrent.futures`` executor (a Dask cluster's), asked of scikit-optimize's GP in batches that
are told together (:func:`drive_batch`) or one slot at a time with the running points tracked
(:func:`drive_async`). :mod:`emulsion_core.networks.search` drives them.
"""

from __future__ import annotations

import os
import socket
import time
import warnings
from concurrent.futures import FIRST_COMPLETED, Executor, Future, wait
from contextlib import contextmanager

import numpy as np


class SerialExecutor(Executor):
    """Runs each submitted call at once, in this process (no cluster): a done Future, or the
    call's exception raised at submit (an interrupted search stops where it was)."""

    def submit(self, fn, /, *args, **kwargs):
        future = Future()
        future.set_result(fn(*args, **kwargs))
        return future


def trial(objective, params: dict, replica: int = 0) -> dict:
    """One evaluation of ``objective`` (``objective(params)``, or with ``replica=r`` for a repeat)
    where it runs: its ``score`` and the ``worker`` (host:pid), ``start`` and ``end`` (Unix s)."""
    start = time.time()
    score = objective(params) if replica == 0 else objective(params, replica=replica)
    return {"score": float(score), "worker": f"{socket.gethostname()}:{os.getpid()}", "start": start,
            "end": time.time()}


@contextmanager
def sobol_quiet():
    """Silence skopt's "balance properties of Sobol' points" notice: a copied or re-told optimizer
    draws (and discards) another set of initial points and warns about their number."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The balance properties of Sobol")
        yield


def _ask(opt, size: int, batch_size: int):
    if batch_size == 1:
        return [opt.ask()]
    with sobol_quiet():  # ask(n_points) copies the optimizer
        return opt.ask(n_points=size)


class _Replay:
    """Checks that a replayed ask gives the saved point; warns once when it does not (another
    scikit-optimize or scikit-learn) and the saved point is used all the same."""

    def __init__(self, where: str):
        self.where, self.faithful = where, True

    def check(self, x, saved, i: int) -> None:
        if self.faithful and not np.allclose(np.asarray(x, float), np.asarray(saved, float), rtol=1e-12, atol=1e-15):
            warnings.warn(f"the replay of the search history{self.where} does not ask call {i}'s point again "
                          "(another scikit-optimize or scikit-learn?); its saved calls are kept and the "
                          "search goes on from them, not exactly as an uninterrupted one would", stacklevel=4)
            self.faithful = False


def drive_batch(opt, calls: dict, total: int, batch_size: int, dims: list, launch=None, where: str = "") -> None:
    """Batch mode: ask ``opt`` for ``batch_size`` points at a time until ``total`` calls are told,
    all points of a batch told together (in call order) once all are evaluated. ``calls`` ({call:
    row}, the history so far) are replayed; ``launch(xs)`` ({call: (x, batch)} of the batch's calls
    not yet in ``calls``) evaluates the others, adding their rows to ``calls``. The same seed and
    batch size give the same history whatever order the calls of a batch finish in."""
    replay = _Replay(where)
    start, batch = 0, 0
    while start < total:
        size = min(batch_size, total - start)
        xs = _ask(opt, size, batch_size)
        todo = {start + j: (x, batch) for j, x in enumerate(xs) if start + j not in calls}
        if todo:
            launch(todo)
        told = []
        for j, x in enumerate(xs):
            saved = [calls[start + j][k] for k in dims]
            replay.check(x, saved, start + j)
            told.append(saved)
        opt.tell(told, [-float(calls[start + j]["score"]) for j in range(size)])
        start, batch = start + size, batch + 1


def ask_with_pending(opt, pending: list):
    """The next point of ``opt`` while the points ``pending`` are still being evaluated: asked of a
    copy told the constant liar's value (the best score so far, ``cl_min``) at each pending point,
    so a slot refilled early does not ask a running point again (``ask(n_points)`` does not track
    trials still running)."""
    if not pending:
        return opt.ask()
    lie = float(np.min(opt.yi)) if opt.yi else 0.0
    with sobol_quiet():
        copy = opt.copy(random_state=opt.rng.randint(0, np.iinfo(np.int32).max))
        copy.tell([list(x) for x in pending], [lie] * len(pending))
        return copy.ask()


def drive_async(opt, calls: dict, total: int, slots: int, dims: list, submit, save, params_of, where: str = "") -> None:
    """Async mode: keep ``slots`` trials running, refilling a slot as soon as one ends (its score
    told at once, pending points tracked by :func:`ask_with_pending`). Each row records the tells
    made before it was asked (``asked_after``) and its own rank among the tells (``told``): the
    history replays exactly, and a resumed search re-runs only the calls that had not finished."""
    replay = _Replay(where)
    told_rows = sorted((r for r in calls.values() if r.get("told") is not None), key=lambda r: int(r["told"]))
    n_told, pending = 0, {}

    def tell(row):
        nonlocal n_told
        opt.tell([row[k] for k in dims], -float(row["score"]))
        pending.pop(int(row["call"]), None)
        n_told += 1

    for i in sorted(calls):
        while n_told < int(calls[i]["asked_after"]):
            tell(told_rows[n_told])
        saved = [calls[i][k] for k in dims]
        replay.check(ask_with_pending(opt, list(pending.values())), saved, i)
        pending[i] = saved
    while n_told < len(told_rows):
        tell(told_rows[n_told])
    running = {submit(pending[i]): i for i in sorted(pending)}  # asked, not finished: run again
    next_call = max(calls, default=-1) + 1
    while next_call < total or running:
        while len(running) < slots and next_call < total:
            x = ask_with_pending(opt, list(pending.values()))
            calls[next_call] = {**params_of(x), "call": next_call, "asked_after": n_told, "told": None,
                                "score": None, "repeat": False}
            save()
            pending[next_call] = list(x)
            running[submit(list(x))] = next_call
            next_call += 1
        done, _ = wait(list(running), return_when=FIRST_COMPLETED)
        for future in sorted(done, key=lambda f: running[f]):
            i = running.pop(future)
            calls[i].update(future.result(), told=n_told)
            tell(calls[i])
            save()


