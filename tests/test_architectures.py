"""The architecture table: NEWSnet widths by stem and residual stage, profile validation, the
grain-count ceiling (an analytic AUC) and a table that resumes instead of retraining."""

import numpy as np
import pandas as pd
import pytest

from emulsion_core.analyses import architectures
from emulsion_core.config import profiles
from emulsion_core.networks import training
from emulsion_core.config.paper import PAPER_PARAMETERS


def test_stem_and_residual_widths_scale_apart():
    one = training.scaled_widths(PAPER_PARAMETERS, 0.125)
    pair = training.scaled_widths(PAPER_PARAMETERS, [0.125, 0.25])
    assert one["stem_filters"] == pair["stem_filters"] == (4, 8)  # 32, 64 x 1/8
    assert (one["filters_1"], one["filters_2"]) == (8, 16)  # 64, 128 x 1/8
    assert (pair["filters_1"], pair["filters_2"]) == (16, 32)  # 64, 128 x 1/4
    wide = training.scaled_widths(PAPER_PARAMETERS, [0.25, 0.125])
    assert wide["stem_filters"] == (8, 16) and wide["filters_1"] == 8


def test_a_table_entry_builds_the_widths_it_names():
    config = {"name": "x", "kind": "newsnet", "width_scale": [0.125, 0.25], "n_identity": 1}
    model = architectures.build(config, PAPER_PARAMETERS)
    assert model.get_layer("stem1_conv").filters == 4
    assert model.get_layer("res1_conv_a_conv").filters == 16
    assert model.get_layer("res2_conv_a_conv").filters == 32
    names = [layer.name for layer in model.layers]
    assert "res1_id1_add" in names and "res1_id2_add" not in names  # n_identity 1 overrides the paper's 3
    assert architectures.newsnet_name([0.125, 0.25], 1) == "NEWSnet stem 1/8, residual 1/4, 1 id"


@pytest.mark.parametrize("section, key", [
    ({"newsnet": [{"width_scale": [0.125]}]}, "architectures.newsnet[0].width_scale"),
    ({"newsnet": [{"width_scale": [0.125, 2.0]}]}, "architectures.newsnet[0].width_scale"),
    ({"newsnet": [{"width_scale": 0.5, "filters": 3}]}, "architectures.newsnet[0]"),
    ({"compact": ["resnet50"]}, "architectures.compact"),
    ({"budget": {"epochs": 0, "train_fraction": 0.5}}, "architectures.budget.epochs"),
])
def test_a_bad_architecture_section_names_its_key(section, key):
    raw = {"profile": "x", "seed": 1, "dataset": "x", "samples": ["fog"],
           "events": {"rotated": {"fog": 10}, "test": {"fog": 10}}, "architectures": section}
    with pytest.raises(profiles.ProfileError, match=key.replace("[", r"\[").replace("]", r"\]")):
        profiles.from_dict(raw)


def test_network_width_scale_may_be_a_pair():
    raw = {"profile": "x", "seed": 1, "dataset": "x", "samples": ["fog"],
           "events": {"rotated": {"fog": 10}, "test": {"fog": 10}}, "network": {"width_scale": [0.125, 0.25]}}
    assert profiles.from_dict(raw).network["width_scale"] == [0.125, 0.25]
    raw["network"]["width_scale"] = [0.125, 0.0]
    with pytest.raises(profiles.ProfileError, match="network.width_scale"):
        profiles.from_dict(raw)


def test_grain_count_ceiling_is_the_analytic_auc():
    """Fog is one grain; a fraction f of carbon is one grain too, the rest 2-5 grains. A score that
    knows the grain count ranks every multi-grain event above fog and one-grain carbon like fog
    (AUC 1/2 among them): AUC = (1 - f) + f / 2."""
    rng = np.random.default_rng(3)
    n_fog, n_c30, n_c100, f30, f100 = 20000, 10000, 10000, 0.7, 0.1
    counts = np.concatenate([np.ones(n_fog), np.where(rng.random(n_c30) < f30, 1, rng.integers(2, 6, n_c30)),
                             np.where(rng.random(n_c100) < f100, 1, rng.integers(2, 6, n_c100))])
    rows = pd.DataFrame({"sample": ["fog"] * n_fog + ["C30keV"] * n_c30 + ["C100keV"] * n_c100,
                         "split": "validation"})
    got = architectures.ceiling(rows, counts, seed=1)
    carbon = counts[n_fog:]
    f = np.mean(carbon == 1)
    assert got["validation AUC"] == pytest.approx(1 - f / 2, abs=0.0006)  # exact up to rounding
    assert got["fog at 30% C100keV"] == 0.0  # 90 % of C100keV has >= 2 grains: the cut sits above every fog event


def test_the_table_resumes_instead_of_retraining(tmp_path, monkeypatch):
    """A finished entry is read back; only a new entry is trained, and the rows keep the profile's order."""
    from emulsion_core.analyses import network_analysis
    from emulsion_core.networks import scoring
    profile = profiles.from_dict({
        "profile": "arch", "seed": 5, "dataset": "arch", "samples": ["C30keV", "C100keV", "fog"],
        "events": {"rotated": {s: 10 for s in ("C30keV", "C100keV", "fog")}, "test": {s: 10 for s in ("C30keV", "C100keV", "fog")}},
        "network": {"batch_size": 8},
        "architectures": {"budget": {"epochs": 1, "train_fraction": 0.5}, "newsnet": [{"width_scale": 0.0625}],
                          "compact": []}})
    monkeypatch.setenv("EMULSION_DL_ROOT", str(tmp_path))
    n = 48
    table = pd.DataFrame({"sample": np.repeat(["C30keV", "C100keV", "fog"], n // 3), "split": "validation"})
    labels = np.repeat([0, 1, 2], n // 3)
    images = np.random.default_rng(0).integers(10, 40, (n, 8, 40, 40)).astype(np.uint8)
    monkeypatch.setattr(network_analysis, "split_data", lambda *a, **k: (table, images, labels))
    monkeypatch.setattr(network_analysis, "evaluation_splits", lambda profile: ("validation", "test"))
    monkeypatch.setattr(architectures.dataset, "camera_max", lambda folder: 255.0)
    monkeypatch.setattr(architectures, "inference_rate", lambda *a, **k: 2.0)
    fits = []
    monkeypatch.setattr(training, "fit_in_memory", lambda model, *a, **k: fits.append(model.name) or model)
    monkeypatch.setattr(scoring, "class_logits", lambda model, x: np.log(np.tile([0.25, 0.25, 0.5], (n, 1)))
                        + np.linspace(0, 1, n)[:, None] * [1, 1, 0])
    first = architectures.sweep(profile, PAPER_PARAMETERS, progress=False)
    assert fits == ["newsnet"] and list(first.index) == ["NEWSnet stem 1/16, residual 1/16, 3 id"]
    again = architectures.sweep(profile, PAPER_PARAMETERS, progress=False)
    assert fits == ["newsnet"]  # read back, not retrained
    pd.testing.assert_frame_equal(first, again)
    wider = profiles.from_dict({**_raw(profile), "architectures": {
        "budget": {"epochs": 1, "train_fraction": 0.5},
        "newsnet": [{"width_scale": 0.0625}, {"width_scale": [0.0625, 0.125]}], "compact": ["compact_3d"]}})
    both = architectures.sweep(wider, PAPER_PARAMETERS, progress=False)
    assert fits == ["newsnet", "newsnet", "compact_3d"]
    assert list(both.index) == ["NEWSnet stem 1/16, residual 1/16, 3 id", "NEWSnet stem 1/16, residual 1/8, 3 id",
                                "compact_3d"]
    table1 = pd.read_csv(tmp_path / "results" / "arch" / "table1.csv")  # the compact net's Table 1 rows
    assert set(table1["method"]) == {"compact_3d"}
    c100 = table1[(table1["sample"] == "C100keV") & (table1["split"] == "validation")]
    assert c100["value"].iloc[0] == pytest.approx(0.3, abs=1 / 16)  # the reference cut keeps 30 % of C100keV


def test_an_entry_without_identity_blocks_takes_the_searchs_and_is_not_repeated():
    raw = {"profile": "x", "seed": 1, "dataset": "x", "samples": ["fog"],
           "events": {"rotated": {"fog": 10}, "test": {"fog": 10}},
           "architectures": {"newsnet": [{"width_scale": [0.125, 0.25], "n_identity": 1},
                                         {"width_scale": [0.125, 0.25]}], "compact": ["compact_3d"]}}
    p = profiles.from_dict(raw)
    names = [c["name"] for c in architectures.configurations(p, {"n_identity": 1})]
    assert names == ["NEWSnet stem 1/8, residual 1/4, 1 id", "compact_3d"]
    names = [c["name"] for c in architectures.configurations(p, {"n_identity": 2})]
    assert names == ["NEWSnet stem 1/8, residual 1/4, 1 id", "NEWSnet stem 1/8, residual 1/4, 2 id", "compact_3d"]


def _raw(profile) -> dict:
    return {"profile": profile.name, "seed": profile.seed, "dataset": profile.dataset, "samples": list(profile.samples),
            "events": {"rotated": {s: 10 for s in profile.samples}, "test": {s: 10 for s in profile.samples}},
            "network": dict(profile.network)}
