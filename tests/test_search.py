"""The hyper-parameter search: Appendix A space, and a killed search resumes to the same result."""

import json

import numpy as np
import pytest

from emulsion_core.networks import search
from emulsion_core.config.paper import PAPER_PARAMETERS


def toy_objective(params):
    """A smooth function of every parameter with its maximum inside the space."""
    x = np.array([params[k] for k in search.SPACE], dtype=float)
    lo = np.array([v[1] for v in search.SPACE.values()])
    hi = np.array([v[2] for v in search.SPACE.values()])
    u = (x - lo) / (hi - lo)
    return float(1.0 - np.sum((u - 0.3) ** 2))


def test_space_is_appendix_a_and_contains_the_papers_choice():
    assert set(search.SPACE) == set(PAPER_PARAMETERS)
    for k, v in PAPER_PARAMETERS.items():
        assert search.SPACE[k][1] <= v <= search.SPACE[k][2], k


def test_killed_search_resumes_to_the_uninterrupted_result(tmp_path):
    full = search.run(toy_objective, n_calls=8, n_initial_points=4, seed=3, checkpoint=tmp_path / "a.json",
                      progress=False)

    class Killed(Exception):
        pass

    calls = {"n": 0}

    def dies_after_five(params):
        calls["n"] += 1
        if calls["n"] > 5:
            raise Killed
        return toy_objective(params)

    with pytest.raises(Killed):
        search.run(dies_after_five, n_calls=8, n_initial_points=4, seed=3, checkpoint=tmp_path / "b.json",
                   progress=False)
    assert len(json.loads((tmp_path / "b.json").read_text())) == 5
    resumed = search.run(toy_objective, n_calls=8, n_initial_points=4, seed=3, checkpoint=tmp_path / "b.json",
                         progress=False)
    assert len(resumed) == 8
    np.testing.assert_allclose(resumed[list(search.SPACE)].to_numpy(dtype=float),
                               full[list(search.SPACE)].to_numpy(dtype=float), rtol=1e-9)
    assert search.best(resumed) == search.best(full)
    assert full["score"].iloc[4:].max() >= full["score"].iloc[:4].max()  # the GP phase improves on the start


def test_search_history_of_other_settings_is_set_aside_not_resumed(tmp_path):
    from emulsion_core.analyses import network_analysis
    history = tmp_path / "search_history.json"
    network_analysis.resume_or_restart(history, {"search": {"n_calls": 6}}, "the search history")
    history.write_text("[]")  # the first calls of a search that was then killed
    network_analysis.resume_or_restart(history, {"search": {"n_calls": 6}}, "the search history")
    assert history.exists()  # same settings: kept for resumption
    with pytest.warns(UserWarning, match="other settings"):
        network_analysis.resume_or_restart(history, {"search": {"n_calls": 10}}, "the search history")
    assert not history.exists() and (tmp_path / "search_history.json.superseded").read_text() == "[]"
    assert json.loads((tmp_path / "search_history.stamp.json").read_text()) == {"search": {"n_calls": 10}}


# ---- issue 10, item 5: a search that informs ----

SEARCHED = ["learning_rate", "dropout_1", "dropout_2", "dropout_3", "loss_lambda", "n_identity"]


def noisy_toy(params, replica=0):
    """toy_objective plus a known seed effect: replica r adds 0.01 r (the noise floor's answer)."""
    return toy_objective(params) + 0.01 * replica


def _points(history, columns):
    return history[columns].to_numpy(dtype=float)


def test_fixed_dimensions_stay_at_the_papers_values_and_the_optimiser_sees_only_the_searched(tmp_path):
    seen = []

    def objective(params, replica=0):
        seen.append(dict(params))
        return noisy_toy(params, replica)

    history = search.run(objective, n_calls=6, n_initial_points=4, seed=5, checkpoint=tmp_path / "h.json",
                         progress=False, dimensions=SEARCHED, repeats=1)
    fixed = [k for k in search.SPACE if k not in SEARCHED]
    assert len(fixed) == 5 and len(seen) == 7
    for row in seen + json.loads((tmp_path / "h.json").read_text()):
        assert set(search.SPACE) <= set(row)
        for k in fixed:
            assert row[k] == PAPER_PARAMETERS[k] and type(row[k]) is type(PAPER_PARAMETERS[k]), k
    # the searched ones do move (every Sobol point differs from the paper's choice)
    for k in SEARCHED:
        assert history[k].nunique() >= 4, k
    result = search.result(history, 4, 5, SEARCHED)
    assert result.space.dimension_names == [k for k in search.SPACE if k in SEARCHED]  # SPACE's order
    assert len(result.x_iters) == 6 and all(len(x) == len(SEARCHED) for x in result.x_iters)
    table = search.comparison_table(history, SEARCHED)
    assert (table.loc[fixed, "this search"] == "fixed (paper)").all()
    assert not (table.loc[SEARCHED, "this search"] == "fixed (paper)").any()
    best = search.best(history)
    assert {k: best[k] for k in fixed} == {k: PAPER_PARAMETERS[k] for k in fixed}


def test_repeats_are_not_told_to_the_optimiser_and_never_chosen(tmp_path):
    checkpoint = tmp_path / "h.json"
    first = search.run(noisy_toy, n_calls=5, n_initial_points=4, seed=7, checkpoint=checkpoint, progress=False,
                       dimensions=SEARCHED, repeats=2)
    plain = search.run(toy_objective, n_calls=5, n_initial_points=4, seed=7, progress=False, dimensions=SEARCHED)
    calls = search.calls_of(first)
    assert len(first) == 7 and len(calls) == 5
    np.testing.assert_array_equal(_points(calls, list(search.SPACE)), _points(plain, list(search.SPACE)))
    top = calls.loc[calls["score"].idxmax()]
    repeats = first[first["repeat"].eq(True)]
    assert list(repeats["replica"]) == [1, 2] and (repeats["call"] == top["call"]).all()
    np.testing.assert_allclose(repeats["score"], top["score"] + np.array([0.01, 0.02]), rtol=0, atol=1e-12)
    np.testing.assert_array_equal(_points(repeats, list(search.SPACE)),
                                  np.repeat(_points(top.to_frame().T, list(search.SPACE)), 2, axis=0))
    # continuing after the repeats: the new calls are those of a search that never had them
    longer = search.run(noisy_toy, n_calls=7, n_initial_points=4, seed=7, checkpoint=checkpoint, progress=False,
                        dimensions=SEARCHED, repeats=2)
    uninterrupted = search.run(toy_objective, n_calls=7, n_initial_points=4, seed=7, progress=False,
                               dimensions=SEARCHED)
    np.testing.assert_array_equal(_points(search.calls_of(longer), SEARCHED), _points(uninterrupted, SEARCHED))
    assert len(search.result(longer, 4, 7, SEARCHED).x_iters) == 7
    # best() ignores a repeat row even when it scores highest at another point
    rogue = longer.iloc[[0]].assign(score=2.0, repeat=True, replica=1)
    import pandas as pd
    assert search.best(pd.concat([longer, rogue], ignore_index=True)) == search.best(uninterrupted)


def test_killed_batched_search_resumes_to_the_uninterrupted_result(tmp_path):
    """Batches of 2: two of Sobol points, then two of the GP's; killed inside the third."""
    import warnings
    kill_after = 5
    kwargs = dict(n_calls=8, n_initial_points=4, seed=3, progress=False, dimensions=SEARCHED, batch_size=2)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="the replay")  # the replay asks the saved points again
        full = search.run(toy_objective, checkpoint=tmp_path / "a.json", **kwargs)

        class Killed(Exception):
            pass

        calls = {"n": 0}

        def dies(params):
            calls["n"] += 1
            if calls["n"] > kill_after:
                raise Killed
            return toy_objective(params)

        with pytest.raises(Killed):
            search.run(dies, checkpoint=tmp_path / "b.json", **kwargs)
        assert len(json.loads((tmp_path / "b.json").read_text())) == kill_after
        resumed = search.run(toy_objective, checkpoint=tmp_path / "b.json", **kwargs)
    assert calls["n"] == kill_after + 1  # nothing evaluated twice
    assert list(full["batch"]) == [0, 0, 1, 1, 2, 2, 3, 3]
    pd_cols = list(search.SPACE) + ["score", "call", "batch"]
    np.testing.assert_array_equal(resumed[pd_cols].to_numpy(dtype=float), full[pd_cols].to_numpy(dtype=float))
    # the Sobol points come in order whatever the batch size; the GP points are the constant liar's
    single = search.run(toy_objective, **{**kwargs, "batch_size": 1})
    np.testing.assert_array_equal(_points(full, SEARCHED)[:4], _points(single, SEARCHED)[:4])
    assert not np.allclose(_points(full, SEARCHED)[4:], _points(single, SEARCHED)[4:])


def test_noise_floor_of_a_synthetic_history():
    import pandas as pd
    point = dict(PAPER_PARAMETERS)
    calls = [{**point, "dropout_1": 0.1 + 0.05 * i, "score": s, "call": i, "batch": i, "repeat": False}
             for i, s in enumerate([0.60, 0.70, 0.65, 0.72])]
    again = [{**calls[3], "score": s, "repeat": True, "replica": r} for r, s in ((1, 0.75), (2, 0.69))]
    history = pd.DataFrame(calls + again)
    floor = search.noise_floor(history)
    assert floor["call"] == 3 and floor["replica"] == [0, 1, 2]
    np.testing.assert_allclose(floor["scores"], [0.72, 0.75, 0.69])
    np.testing.assert_allclose(floor["spread"], 0.03, atol=1e-12)  # std (ddof 1) of 0.72, 0.75, 0.69
    np.testing.assert_allclose(floor["range"], 0.06, atol=1e-12)
    np.testing.assert_allclose(floor["lead"], 0.0, atol=1e-12)  # 0.72 - mean(0.75, 0.69)
    np.testing.assert_allclose(floor["calls_spread"], np.std([0.60, 0.70, 0.65, 0.72], ddof=1), atol=1e-12)
    np.testing.assert_allclose(floor["calls_range"], 0.12, atol=1e-12)
    assert floor["n_calls"] == 4
    assert search.best(history)["dropout_1"] == 0.25  # call 3; the repeat scoring 0.75 is not a call
    table = search.noise_floor_table(floor)
    assert table.shape == (6, 1) and table.iloc[3, 0] == 0.03
    with pytest.raises(ValueError, match="repeats"):
        search.noise_floor(pd.DataFrame(calls))


def test_profiles_choose_the_searched_dimensions_and_the_stamp_follows(tmp_path, monkeypatch):
    from emulsion_core.analyses import network_analysis
    from emulsion_core.config import profiles
    for name in ("smoke", "default"):
        cfg = profiles.load(name).search
        assert set(cfg["dimensions"]) == set(SEARCHED) and cfg["mode"] == "batch"
    # default measures its noise floor; smoke left its repeat out for its 3-minute budget (issue 19)
    assert profiles.load("default").search["repeats"] >= 1 and profiles.load("smoke").search["repeats"] == 0
    assert profiles.load("smoke").search["parallel"] == 2 and profiles.load("default").search["parallel"] == 1
    assert profiles.load("paper").search["dimensions"] == list(search.SPACE)
    monkeypatch.setenv("EMULSION_DL_ROOT", str(tmp_path))
    base = {"profile": "tiny", "seed": 3, "dataset": "tiny", "samples": ["C100keV", "fog"],
            "events": {"rotated": {"C100keV": 60, "fog": 60}, "test": {"C100keV": 60, "fog": 60}}}
    a = profiles.from_dict({**base, "search": {"dimensions": ["n_identity", "learning_rate"]}})
    b = profiles.from_dict({**base, "search": {"dimensions": ["learning_rate", "n_identity"]}})
    c = profiles.from_dict({**base, "search": {"dimensions": ["learning_rate"]}})
    assert a.search["dimensions"] == ["n_identity", "learning_rate"]  # SPACE's order, whatever the listing
    assert network_analysis.search_stamp(a) == network_analysis.search_stamp(b)
    assert network_analysis.search_stamp(a) != network_analysis.search_stamp(c)
    assert network_analysis.search_stamp(a) != network_analysis.search_stamp(profiles.from_dict(base))
    for bad in (["learning_rate", "momentum"], [], ["learning_rate", "learning_rate"], "learning_rate"):
        with pytest.raises(profiles.ProfileError, match="search.dimensions"):
            profiles.from_dict({**base, "search": {"dimensions": bad}})
