"""The training practice of issue 10, item 6: the class list from the profile (4 classes with
C60keV, gamma as a second background), class balance, early stopping on a smoothed validation
loss, the spread over training seeds, the gallery of misclassified events."""

import json

import numpy as np
import pandas as pd
import pytest

from emulsion_core.config import profiles

FOUR = ("C30keV", "C60keV", "C100keV", "fog")  # the authors' 4-class notebooks
GAMMA = ("C30keV", "C100keV", "fog", "gamma")  # gamma as a second background
PAPER = ("C30keV", "C100keV", "fog")
TINY = {"n_identity": 0, "dropout_1": 0.0, "dropout_2": 0.0}


def _profile(**sections):
    return profiles.from_dict({"profile": "tiny", "seed": 3, "dataset": "tiny", "samples": ["C100keV", "fog"],
                               "events": {"rotated": {"C100keV": 60, "fog": 60}, "test": {"C100keV": 60, "fog": 60}},
                               **sections})


# ---- the class list ----

@pytest.fixture(scope="module", params=[FOUR, GAMMA], ids=["C60keV", "gamma"])
def fitted(request, tmp_path_factory):
    """One epoch of NEWSnet (width x 1/16) on 32 random events for a class list."""
    from emulsion_core.networks import sequences, training
    from emulsion_core.config.paper import PAPER_PARAMETERS
    from emulsion_core.networks.models import keras
    classes = request.param
    keras.utils.set_random_seed(1)
    rng = np.random.default_rng(0)
    images = rng.integers(20, 60, (32, 8, 40, 40), dtype=np.uint8)
    labels = np.arange(32) % len(classes)
    params = {**PAPER_PARAMETERS, **TINY}
    train = sequences.EventSequence(images, labels, 16, shuffle=True, seed=2, camera_max=255, n_classes=len(classes),
                                   class_balance="weights")
    val = sequences.EventSequence(images, labels, 16, camera_max=255, n_classes=len(classes))
    workdir = tmp_path_factory.mktemp("fit")
    model, history, members = training.fit(params, train, val, 1, workdir, width_scale=0.0625, ensemble=1,
                                           classes=classes)
    return classes, model, images, workdir, members, params


def test_a_class_list_sets_the_output_the_loss_and_the_saved_metadata(fitted):
    from emulsion_core.networks import scoring, training
    from emulsion_core.networks.models import signal_indices
    classes, model, images, workdir, members, _ = fitted
    assert model.output_shape == (None, len(classes))
    assert model.loss.signal_classes == signal_indices(classes)
    assert signal_indices(FOUR) == (0, 1, 2) and signal_indices(GAMMA) == (0, 1)
    info = json.loads((workdir / "network.json").read_text())
    assert info["classes"] == list(classes) and info["last_epoch"] == 1
    assert info["background"] == [c for c in classes if not c.startswith("C")]
    logits = scoring.predict_logits([training.load_member(members[0], classes)], images[:8], camera_max=255)
    assert logits.shape == (1, 8, len(classes))
    p = np.exp(scoring.log_probabilities(logits[0]))
    sig = [i for i, c in enumerate(classes) if c.startswith("C")]
    expected = np.log(p[:, sig].sum(axis=1) / np.delete(p, sig, axis=1).sum(axis=1))
    np.testing.assert_allclose(scoring.member_log_odds(logits, classes)[0], expected, rtol=1e-9, atol=1e-12)


def test_a_network_read_with_another_class_list_fails_clearly(fitted):
    from emulsion_core.networks import scoring, training
    from emulsion_core.networks.models import ClassListError
    classes, _, images, workdir, members, params = fitted
    other = PAPER if len(classes) == 4 else ("C30keV", "C60keV", "C100keV", "fog", "gamma")
    with pytest.raises(ClassListError, match="trained with the classes"):
        training.load_member(members[0], other)
    swapped = tuple(reversed(classes))  # same size, other list: only the saved list can tell
    with pytest.raises(ClassListError, match="trained with the classes"):
        training.load_member(members[0], swapped)
    with pytest.raises(ClassListError, match="trained with the classes"):
        training.fit(params, None, None, 1, workdir, classes=other)
    with pytest.raises(ClassListError, match="cannot be read with the class list"):
        scoring.member_log_odds(np.zeros((1, 3, len(classes))), other if len(other) != len(classes) else PAPER)


def test_predict_writes_one_column_per_class_and_refuses_another_list(fitted, tmp_path):
    from emulsion_core.networks.models import ClassListError
    from emulsion_core.networks.predict import predict_files
    from emulsion_core.simulator.simulate import simulate_scan
    classes, _, _, _, members, _ = fitted
    scan = simulate_scan(tmp_path / "fog_test.h5", "fog", "test", 40, seed=1)
    predict_files(members, [scan], tmp_path / "s.csv", progress=False)
    table = pd.read_csv(tmp_path / "s.csv")
    assert list(table.columns[5:]) == [f"p_{c}" for c in classes]
    np.testing.assert_allclose(table[[f"p_{c}" for c in classes]].sum(axis=1), 1.0, atol=1e-5)
    with pytest.raises(ClassListError):
        predict_files(members, [scan], tmp_path / "t.csv", progress=False, classes=PAPER)


def test_log_odds_sums_signal_against_every_background_class():
    from emulsion_core.networks import scoring
    logits = np.log(np.array([[[0.1, 0.2, 0.3, 0.4]]]))
    assert scoring.member_log_odds(logits, GAMMA)[0, 0] == pytest.approx(np.log(0.3 / 0.7))  # C30 + C100 vs fog + gamma
    assert scoring.member_log_odds(logits, FOUR)[0, 0] == pytest.approx(np.log(0.6 / 0.4))  # three carbons vs fog
    assert scoring.ensemble_log_odds(logits, FOUR)[0] == pytest.approx(np.log(0.6 / 0.4))


def test_table1_has_a_row_for_every_background_class(rng):
    from emulsion_core.analyses import network_analysis
    from emulsion_core.networks import scoring
    rows, logits = [], []
    for split in ("validation", "test"):
        for k, sample in enumerate(GAMMA):
            rows.append(pd.DataFrame({"sample": sample, "split": split, "event": np.arange(300)}))
            z = np.zeros((2, 300, 4))
            z[..., k] = 2.0 + rng.normal(0, 1, (2, 300))
            logits.append(z)
    table, logits = pd.concat(rows, ignore_index=True), np.concatenate(logits, axis=1)
    table["score"] = scoring.ensemble_log_odds(logits, GAMMA)
    out, _ = network_analysis.table1_rows(table, logits, GAMMA)
    assert set(out["sample"]) == set(GAMMA) and len(out) == 8
    c100 = out[(out["sample"] == "C100keV") & (out["split"] == "validation")]["value"].iloc[0]
    gamma = out[(out["sample"] == "gamma") & (out["split"] == "validation")]["value"].iloc[0]
    assert c100 == pytest.approx(0.30, abs=0.01) and gamma < 0.2  # the reference cut; gamma rejected like fog


def test_profile_class_list_is_checked_and_keys_the_fits():
    from emulsion_core.analyses import network_analysis
    assert _profile().network["classes"] == list(PAPER)
    for bad in (["C30keV", "C100keV"], ["C30keV", "fog"], ["C30keV", "C100keV", "fog", "fog"], ["C100keV", "dust"]):
        with pytest.raises(profiles.ProfileError, match="network.classes"):
            _profile(network={"classes": bad})
    with pytest.raises(profiles.ProfileError, match="training.class_balance"):
        _profile(training={"class_balance": "smote"})
    paper, four = _profile(), _profile(network={"classes": list(FOUR)})
    assert network_analysis.fit_stamp(paper, {}) != network_analysis.fit_stamp(four, {})
    assert network_analysis.search_stamp(paper) != network_analysis.search_stamp(four)
    seeds = _profile(training={"seeds": [7]})
    assert network_analysis.fit_stamp(seeds, {}) == network_analysis.fit_stamp(paper, {})  # extra seeds: a fit apart
    assert network_analysis.fit_stamp(seeds, {}, seed=7) != network_analysis.fit_stamp(seeds, {})
    assert network_analysis.fit_dir(seeds, 7).name == "seed7"


# ---- class balance ----

def test_class_weights_give_every_class_the_same_total_on_a_10_to_1_set():
    from emulsion_core.networks import sequences
    labels = np.r_[np.zeros(100, int), np.full(1000, 2), np.ones(50, int)]
    w = sequences.class_weights(labels, 3)
    totals = np.bincount(labels) * w
    np.testing.assert_allclose(totals, totals[0])  # equal effective totals
    assert w[labels].mean() == pytest.approx(1.0)  # normalised: mean weight over events 1
    assert w[1] / w[2] == pytest.approx(20.0)
    seq = sequences.EventSequence(np.zeros((1150, 8, 4, 4), np.uint8), labels, 64, shuffle=True, camera_max=255,
                                 full_batches=False, class_balance="weights")
    served = np.zeros(3)
    for i in range(len(seq)):
        _, y, sw = seq[i]
        served += (y * sw[:, None]).sum(axis=0)
    np.testing.assert_allclose(served, served[0], rtol=1e-5)
    with pytest.raises(ValueError, match="no training events"):
        sequences.class_weights(np.zeros(10, int), 2)


def test_oversampling_draws_the_classes_equally():
    from emulsion_core.networks import sequences
    labels = np.r_[np.zeros(500, int), np.full(50, 1)]
    seq = sequences.EventSequence(np.zeros((550, 8, 4, 4), np.uint8), labels, 50, shuffle=True, camera_max=255,
                                 n_classes=2, class_balance="oversample", full_batches=False)
    y = np.concatenate([seq[i][1] for i in range(len(seq))]).argmax(axis=1)
    assert np.bincount(y).tolist() == [500, 500]
    assert len(np.unique(seq.order[labels[seq.order] == 1])) == 50  # every small-class event, ten times


def test_oversampled_scan_windows_hold_equal_shares(tmp_path):
    from emulsion_core.formats import hdf5
    from emulsion_core.simulator.simulate import simulate_scan
    from emulsion_core.networks.sequences import ScanSequence
    wanted = []
    for label, (sample, n) in enumerate((("C30keV", 64), ("fog", 640))):  # 10:1
        path = simulate_scan(tmp_path / f"{sample}_rot0.h5", sample, "rot0", n, seed=label)
        wanted.append(pd.DataFrame({"file": path.name, "event_id": hdf5.read_events(path)["event_id"], "label": label}))
    events = pd.concat(wanted, ignore_index=True)
    plain = ScanSequence(tmp_path, events, 32, block_events=32, window_blocks=4, seed=1, n_classes=2)
    over = ScanSequence(tmp_path, events, 32, block_events=32, window_blocks=4, seed=1, n_classes=2,
                        class_balance="oversample")
    for seq, share in ((plain, 64 / 704), (over, 0.5)):
        for window in seq.windows[:-1]:
            labels = np.concatenate([seq.files[name][1][a:a + 32] for name, a in window])
            assert abs((labels == 0).mean() - share) <= 0.25 + 1e-9, (share, (labels == 0).mean())
    y = np.concatenate([over[i][1] for i in range(len(over))]).argmax(axis=1)
    assert np.bincount(y)[0] == np.bincount(y)[1] == 640


# ---- early stopping ----

@pytest.mark.parametrize("losses, smoothing, patience, min_epochs, expected", [
    ([1.0, 0.8, 0.7, 0.72, 0.75, 0.8, 0.9], 1, 2, 1, 5),  # best at 3, no better at 4 and 5
    ([1.0, 0.8, 0.7, 0.72, 0.75, 0.8, 0.9], 2, 2, 1, 6),  # smoothed 1, .9, .75, .71, .735, .775: best at 4
    ([1.0, 0.8, 0.85, 0.7, 0.65, 0.6], 1, 1, 1, 3),  # one noisy epoch stops an unsmoothed fit
    ([1.0, 0.8, 0.85, 0.7, 0.65, 0.6], 2, 1, 1, None),  # smoothed .9, .825, .775, .675, .625: never
    ([1.0, 1.1, 1.2, 1.3], 1, 1, 3, 3),  # not before the ensemble's epochs exist
    ([1.0, 0.9, 0.8, 0.7, 0.6], 2, 2, 3, None),  # the default profile: a falling 5-epoch fit runs to the end
    ([1.0, 1.1, 1.2], 1, 0, 1, None),  # patience 0: off
    ([1.0, float("nan"), float("nan")], 1, 2, 1, 3),  # a diverged fit counts as no improvement
])
def test_stop_epoch_on_synthetic_loss_curves(losses, smoothing, patience, min_epochs, expected):
    from emulsion_core.networks.training import stop_epoch
    assert stop_epoch(losses, smoothing, patience, min_epochs) == expected


def test_an_early_stopped_fit_keeps_its_epochs_and_is_not_redone(tmp_path, monkeypatch):
    """The stop rule says 'stop' from epoch 2 on: a 4-epoch fit ends after epoch 2, the ensemble is
    epochs 1-2, and a rerun (also one killed between the stop and the end) trains nothing."""
    from emulsion_core.networks import callbacks, sequences, training
    from emulsion_core.config.paper import PAPER_PARAMETERS
    from emulsion_core.networks.models import keras
    for module in (training, callbacks):  # the fit's resumption reads it, the early-stopping callback applies it
        monkeypatch.setattr(module, "stop_epoch", lambda v, *a, **k: 2 if len(v) >= 2 else None)
    rng = np.random.default_rng(0)
    images, labels = rng.integers(20, 60, (32, 8, 40, 40), dtype=np.uint8), np.arange(32) % 3

    def run():
        keras.utils.set_random_seed(1)
        train = sequences.EventSequence(images, labels, 16, shuffle=True, seed=2, camera_max=255)
        val = sequences.EventSequence(images, labels, 16, camera_max=255)
        return training.fit({**PAPER_PARAMETERS, **TINY}, train, val, 4, tmp_path, width_scale=0.0625, ensemble=2,
                            early_stopping={"smoothing": 2, "patience": 1})

    _, history, members = run()
    assert list(history["epoch"]) == [0, 1] and [m.name for m in members] == ["epoch_001.keras", "epoch_002.keras"]
    assert json.loads((tmp_path / "network.json").read_text())["last_epoch"] == 2
    assert not (tmp_path / "backup").exists() and not (tmp_path / "epoch_003.keras").exists()
    (tmp_path / "network.json").write_text(json.dumps({"classes": list(PAPER)}))  # killed before it was recorded
    _, history, members = run()
    assert list(history["epoch"]) == [0, 1] and len(members) == 2
    assert json.loads((tmp_path / "network.json").read_text())["last_epoch"] == 2


# ---- seeds and the gallery ----

def test_spread_comparison_puts_members_and_seeds_side_by_side():
    from emulsion_core.analyses import network_analysis
    rows = pd.DataFrame({"sample": ["fog", "C100keV"], "split": "validation", "member_mean": [0.01, 0.3],
                         "ensemble_spread": [0.002, 0.01]})
    per_seed = pd.DataFrame({"seed": [1, 2, 3], "fog": [0.010, 0.014, 0.006], "C100keV": [0.30, 0.33, 0.27]})
    out = network_analysis.spread_comparison(per_seed, rows)
    assert out.loc["fog", "seed sd / member sd"] == pytest.approx(2.0)
    assert out.loc["C100keV", "seed sd / member sd"] == pytest.approx(3.0)


def test_misclassified_gallery_draws_one_strip_per_event(rng):
    from emulsion_core.figures import plots
    events = pd.DataFrame({"group": ["fog called carbon"] * 3 + ["carbon called fog"] * 2,
                           "sample": ["fog"] * 3 + ["C30keV", "C100keV"], "score": [3.0, 2.5, 2.0, -4.0, -3.5],
                           "npx": [20, 25, 30, 12, 15], "barshift_nm": [30.0, np.nan, 45.0, 10.0, 12.0],
                           "brightness_max": [200, 180, 170, 120, 130]})
    images = rng.integers(0, 255, (5, 8, 40, 40)).astype(np.uint8)
    fig = plots.misclassified_gallery(events, images, cut=1.5)
    image_axes = [ax for ax in fig.axes if ax.images]
    assert len(image_axes) == 5 * 8
    strips = [image_axes[8 * r:8 * r + 8] for r in range(5)]
    for r, strip in enumerate(strips):  # one colour scale per strip, its own
        assert len({ax.images[0].get_clim() for ax in strip}) == 1
        assert strip[0].images[0].get_clim()[1] == images[r].max()
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert len(texts) == 5 and "barshift 30.0 nm" in texts[0] and "barshift" not in texts[1]
    plots.plt.close(fig)


def test_seed_spread_trains_every_seed_and_cuts_each_at_the_same_log_odds(monkeypatch):
    """Every seed of training.seeds (after the profile's) gets its own fit, and every fit's
    validation events are cut at the one given log-odds: the fractions follow the scores."""
    from emulsion_core.analyses import network_analysis
    profile = _profile(network={"classes": list(PAPER)}, training={"seeds": [7, 9]})
    trained = []

    def fake_fit(prof, params, verbose=0, seed=None):
        trained.append(seed)
        return pd.DataFrame({"epoch": range(seed % 4)}), [f"seed{seed}"]

    def fake_score(prof, members, splits=("validation",), save=True):
        seed = int(members[0][4:])
        n = 100
        # fog: `seed` of 100 events above the cut at 0; carbon: 50 of 100 per class
        rows = [("fog", 1.0 if i < seed else -1.0) for i in range(n)]
        rows += [(s, 1.0 if i < 50 else -1.0) for s in ("C30keV", "C100keV") for i in range(n)]
        return pd.DataFrame(rows, columns=["sample", "score"]).assign(split="validation"), None

    monkeypatch.setattr(network_analysis, "train_final", fake_fit)
    monkeypatch.setattr(network_analysis, "score", fake_score)
    out = network_analysis.seed_spread(profile, {}, cut=0.0)
    assert trained == [3, 7, 9] and list(out["seed"]) == [3, 7, 9]
    assert list(out["last_epoch"]) == [3, 3, 1]
    np.testing.assert_allclose(out["fog"], [0.03, 0.07, 0.09])
    np.testing.assert_allclose(out["C100keV"], 0.5)
    assert out.loc[1, "fog passed"] == "7 / 100"
