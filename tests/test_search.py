"""The hyper-parameter search: Appendix A space, and a killed search resumes to the same result."""

import json

import numpy as np
import pytest

from emulsion_core import search
from emulsion_core.models import PAPER_PARAMETERS


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
    from emulsion_core import network_analysis
    history = tmp_path / "search_history.json"
    network_analysis.resume_or_restart(history, {"search": {"n_calls": 6}}, "the search history")
    history.write_text("[]")  # the first calls of a search that was then killed
    network_analysis.resume_or_restart(history, {"search": {"n_calls": 6}}, "the search history")
    assert history.exists()  # same settings: kept for resumption
    with pytest.warns(UserWarning, match="other settings"):
        network_analysis.resume_or_restart(history, {"search": {"n_calls": 10}}, "the search history")
    assert not history.exists() and (tmp_path / "search_history.json.superseded").read_text() == "[]"
    assert json.loads((tmp_path / "search_history.stamp.json").read_text()) == {"search": {"n_calls": 10}}
