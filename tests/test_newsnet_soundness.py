"""NEWSnet trains and is evaluated with sound statistics (issue 10, items 2, 3 and 7):

- batch normalisation: after a search-length fit (~12 steps) the inference-mode outputs follow
  the training-mode ones and differ between events;
- augmentation: training images keep the pixel and noise statistics of evaluation images;
- the cut: one validation cut on the ensemble-mean score for every member, and a score that
  does not tie where p(fog) is tiny.
"""

import numpy as np
import pandas as pd
import pytest

from emulsion_core.data import preprocessing


def simulated_events(n_per_class: int, seed: int = 0):
    """Rendered events of the three classes, (3 n, 8, 40, 40) uint8 and labels (3 n,)."""
    from emulsion_core.config.simulator import SimulatorConfig
    from emulsion_core.simulator.simulate import render_events
    cfg, xs, ys = SimulatorConfig(), [], []
    for label, (sample, kind) in enumerate((("C30keV", "track"), ("C100keV", "track"), ("fog", "fog"))):
        images, _ = render_events(sample, "rot0", np.full(n_per_class, kind), np.zeros(n_per_class),
                                  np.random.default_rng([seed, label]), cfg)
        xs.append(images)
        ys.append(np.full(n_per_class, label))
    return np.concatenate(xs), np.concatenate(ys)


def border_ring_rms(x: np.ndarray, width: int = 4) -> np.ndarray:
    """Standard deviation of the pixels within ``width`` of the image edge, per image: the
    background noise away from the cluster. x : (N, D, H, W, 1) -> (N, D)."""
    img = x[..., 0]
    ring = np.ones(img.shape[-2:], bool)
    ring[width:-width, width:-width] = False
    return img[..., ring].std(axis=-1)


# ---- augmentation: the same image statistics in training and evaluation (item 3) ----

def test_augmented_training_batches_keep_the_border_noise_of_plain_events():
    from emulsion_core.networks.sequences import EventSequence
    images, labels = simulated_events(96)
    plain = EventSequence(images, labels, 64, shuffle=False, augment=False, camera_max=255)
    augmented = EventSequence(images, labels, 64, shuffle=False, augment=True, seed=3, camera_max=255)
    rms_plain = np.concatenate([border_ring_rms(plain[i][0]) for i in range(len(plain))])
    rms_aug = np.concatenate([border_ring_rms(augmented[i][0]) for i in range(len(augmented))])
    assert rms_plain.shape == rms_aug.shape == (288, 9)
    q = [10, 25, 50, 75, 90]
    ratio = np.percentile(rms_aug, q) / np.percentile(rms_plain, q)
    assert np.all(np.abs(ratio - 1) < 0.03), dict(zip(q, ratio.round(3)))
    assert rms_aug.mean() / rms_plain.mean() == pytest.approx(1, abs=0.03)


def test_grid_symmetries_move_pixels_without_changing_them(rng):
    x = rng.normal(size=(64, 9, 40, 40, 1)).astype(np.float32)
    y = preprocessing.random_symmetry(x, np.random.default_rng(2))
    np.testing.assert_array_equal(np.sort(y.reshape(64, 9, -1), axis=-1), np.sort(x.reshape(64, 9, -1), axis=-1))
    # one symmetry per event, shared by its 9 images: the 9th image is still a copy of the first
    x[:, 8] = x[:, 0]
    y = preprocessing.random_symmetry(x, np.random.default_rng(2))
    np.testing.assert_array_equal(y[:, 8], y[:, 0])


def test_grid_symmetries_show_every_orientation_equally_often():
    """Isotropy: a bright bar along x comes out along x and along y equally often, and each of
    the 8 symmetries is drawn about 1/8 of the time."""
    x = np.zeros((4000, 1, 40, 40, 1), np.float32)
    x[:, :, 20, 10:30] = 1.0  # a horizontal bar half a pixel below the centre (19.5)
    x[:, :, 20, 10] = 2.0  # one bright end: the 8 symmetries put it in 8 places
    y = preprocessing.random_symmetry(x, np.random.default_rng(7))
    horizontal = y[:, 0, 19:21, :, 0].sum(axis=(1, 2)) >= 20
    assert abs(horizontal.mean() - 0.5) < 0.03
    ends = pd.Series([tuple(np.argwhere(e[0, :, :, 0] == 2.0)[0]) for e in y]).value_counts()
    assert len(ends) == 8 and ends.min() > 400 and ends.max() < 600, ends  # 500 expected, sd 21
    np.testing.assert_array_equal(preprocessing.grid_symmetry(x[:2], 1, False)[:, :, :, :, 0],
                                  np.rot90(x[:2, :, :, :, 0], k=-1, axes=(2, 3)))


# ---- batch normalisation after a search-length fit (item 2) ----

@pytest.fixture(scope="module")
def keras():
    from emulsion_core.networks.models import keras
    return keras


def _inference_and_training_mode_scores(model, x, keras):
    """Log-odds from the moving statistics (inference) and from the batch's own statistics
    (training mode, dropout off), for one mixed batch ``x``."""
    from emulsion_core.networks import scoring
    inference = scoring.member_log_odds(scoring.class_logits(model, x))
    layer = model.get_layer(scoring.OUTPUT_LAYER)
    drops = [d for d in model.layers if isinstance(d, keras.layers.Dropout)]
    rates = [d.rate for d in drops]
    for d in drops:
        d.rate = 0.0
    features = keras.Model(model.input, layer.input)(x, training=True)
    for d, r in zip(drops, rates):
        d.rate = r
    kernel, bias = layer.get_weights()
    logits = np.asarray(features, np.float64) @ kernel + bias
    return inference, scoring.member_log_odds(logits)


@pytest.mark.parametrize("path", ["final fit", "search fold"])
def test_batch_norm_statistics_follow_the_weights_after_a_search_length_fit(tmp_path, keras, path):
    """12 optimiser steps (the search's folds on ``default`` take about 12), paper parameters at
    width x 1/8: inference-mode outputs correlate with training-mode ones and vary over events
    (with Keras' moving averages alone they are nearly one value for every event)."""
    from emulsion_core.networks import sequences, training
    from emulsion_core.config.paper import PAPER_PARAMETERS
    images, labels = simulated_events(128)  # 384 events = 12 batches of 32
    params = dict(PAPER_PARAMETERS)
    keras.utils.set_random_seed(5)
    if path == "search fold":
        model = training.fit_in_memory(training.build(params, 0.125), params, images, labels, 1, 32, seed=5, camera_max=255)
    else:
        seq = sequences.EventSequence(images, labels, 32, shuffle=True, augment=True, seed=5, camera_max=255)
        model, _, _ = training.fit(params, seq, None, 1, tmp_path, width_scale=0.125)
    test_images, _ = simulated_events(64, seed=9)
    x = preprocessing.preprocess(test_images, 255)
    inference, train_mode = _inference_and_training_mode_scores(model, x, keras)
    corr = np.corrcoef(inference, train_mode)[0, 1]
    assert corr >= 0.9, corr
    assert inference.std() > 0.5 * train_mode.std() > 0, (inference.std(), train_mode.std())
    assert inference.std() < 2.0 * train_mode.std()


def test_recalibration_sets_the_average_of_the_batch_statistics(keras, rng):
    """A lone batch-normalisation layer: the recalibrated moving mean and variance are the
    averages of the batches' means and variances; dropout is off while they are measured."""
    from emulsion_core.networks import batchnorm
    inp = keras.Input((4,))
    out = keras.layers.BatchNormalization(name="bn")(keras.layers.Dropout(0.9)(inp))
    model = keras.Model(inp, out)
    batches = [rng.normal(loc=[0, 1, 2, 3], scale=[1, 2, 3, 4], size=(256, 4)).astype(np.float32) for _ in range(5)]
    assert batchnorm.recalibrate(model, batches) == 5
    bn = model.get_layer("bn")
    np.testing.assert_allclose(bn.moving_mean.numpy(), np.mean([b.mean(axis=0) for b in batches], axis=0), rtol=1e-5)
    np.testing.assert_allclose(bn.moving_variance.numpy(), np.mean([b.var(axis=0) for b in batches], axis=0), rtol=1e-4)
    assert bn.momentum == 0.99 and model.layers[1].rate == 0.9  # settings restored


# ---- the paper's cut and errors (item 7) ----

def _scored_table(rng, n_members=5):
    """Validation and test events of the three classes with members' logits that differ."""
    rows, logits = [], []
    for split in ("validation", "test"):
        for sample, mu in (("C30keV", 1.0), ("C100keV", 1.5), ("fog", -1.0)):
            n = 400
            rows.append(pd.DataFrame({"sample": sample, "split": split, "event": np.arange(n)}))
            common = rng.normal(mu, 1.5, n)
            z = np.zeros((n_members, n, 3))
            z[..., 1] = common + rng.normal(0, 0.7, (n_members, n))  # each member its own noise
            logits.append(z)
    table = pd.concat(rows, ignore_index=True)
    return table, np.concatenate(logits, axis=1)


def test_one_validation_cut_on_the_ensemble_score_for_every_member(rng):
    from emulsion_core.analyses import network_analysis
    from emulsion_core.networks import scoring
    table, logits = _scored_table(rng)
    table["score"] = scoring.ensemble_log_odds(logits)
    rows, cut = network_analysis.table1_rows(table, logits)
    c100 = rows[(rows["sample"] == "C100keV") & (rows["split"] == "validation")].iloc[0]
    assert c100["value"] == pytest.approx(0.30, abs=0.01)  # the ensemble is cut at 30 % C100keV
    members = scoring.member_log_odds(logits)
    sel = ((table["sample"] == "C100keV") & (table["split"] == "validation")).to_numpy()
    at_cut = (members[:, sel] > cut[0]).mean(axis=1)  # every member at the ensemble's cut
    assert c100["member_mean"] == pytest.approx(at_cut.mean())
    assert c100["ensemble_spread"] == pytest.approx(at_cut.std(ddof=1))
    assert c100["ensemble_spread"] > 0.005  # not zero by construction (each member re-cut)
    assert c100["member_ci95"] == pytest.approx(2.776 * at_cut.std(ddof=1) / np.sqrt(5), rel=1e-3)
    text = network_analysis.format_table1_rows(rows)
    assert "±" in text.loc[("C100keV", "validation"), "members: mean ± spread"]


def test_scores_do_not_tie_where_the_fog_probability_is_tiny(keras, rng):
    """A network whose p(fog) is 1e-12 to 1e-9 for every event: the float32 summed carbon
    probability is exactly 1 for all (ties at any paper-like cut); the log-odds is not."""
    from emulsion_core.networks import scoring, training
    from emulsion_core.config.paper import INPUT_SHAPE
    inp = keras.Input(INPUT_SHAPE)
    feature = keras.layers.GlobalAveragePooling3D()(inp)
    out = keras.layers.Dense(3, activation="softmax", name=scoring.OUTPUT_LAYER)(feature)
    net = keras.Model(inp, out)
    # logits (0, 0, -21 - 2000 * mean pixel): p(fog) from ~1e-9 down to ~1e-12
    net.get_layer(scoring.OUTPUT_LAYER).set_weights([np.array([[0.0, 0.0, -2000.0]], np.float32),
                                                      np.array([0.0, 0.0, -21.0], np.float32)])
    images = rng.integers(20, 40, (200, 8, 40, 40), dtype=np.uint8)
    images[:, :, 10:30, 10:30] += rng.integers(0, 5, (200, 1, 1, 1), dtype=np.uint8)
    probs = training.predict([net], images, camera_max=255)
    p_fog = probs[0, :, 2]
    assert np.all(p_fog < 1e-8)
    assert len(np.unique(scoring.signal_probability(probs)[0])) == 1  # float32: every event ties at 1.0
    logits = scoring.predict_logits([net, net], images, camera_max=255)
    score = scoring.ensemble_log_odds(logits)
    order = np.argsort(score)
    assert len(np.unique(score)) == len(images)
    np.testing.assert_allclose(score, -np.log(p_fog.astype(np.float64)), rtol=1e-3)  # ln(1 / p_fog)
    assert np.all(np.diff(p_fog[order]) <= 0)  # ranked by fog probability, as the paper's score would be
    np.testing.assert_allclose(scoring.probability_from_log_odds(-3.0), 1 / (1 + np.exp(3.0)))


# ---- one traced network for every fold of a search call (issue 19) ----

def test_a_traced_network_reset_to_a_fresh_one_trains_as_the_fresh_one(keras):
    """A network trained on one fold and reset (:func:`search.reset_to`) to a freshly built network
    of another seed ends a second fit with the weights that fresh network reaches itself, bit for
    bit (weights, batch-norm statistics, dropout masks, optimiser moments). (On a `default` run the
    search with it gave the history of the search without it, every AUC to the fifth decimal.)"""
    from emulsion_core.config.paper import PAPER_PARAMETERS
    from emulsion_core.networks import search, training
    images, labels = simulated_events(32)
    params = {**PAPER_PARAMETERS, "dropout_1": 0.3}
    keras.utils.set_random_seed(1)
    reused = training.fit_in_memory(training.build(params, 0.125), params, images, labels, 1, 32, seed=1, camera_max=255)
    keras.utils.set_random_seed(2)
    search.reset_to(reused, training.build(params, 0.125))
    training.fit_in_memory(reused, params, images, labels, 1, 32, seed=2, camera_max=255)
    keras.utils.set_random_seed(2)
    fresh = training.fit_in_memory(training.build(params, 0.125), params, images, labels, 1, 32, seed=2, camera_max=255)
    assert len(reused.variables) == len(fresh.variables)
    for a, b in zip(reused.variables, fresh.variables):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b), err_msg=a.path)
    with pytest.raises(ValueError, match="not the same architecture"):
        search.reset_to(reused, training.build({**params, "n_identity": 1}, 0.125))


@pytest.mark.parametrize("balance", ["weights", "none"])
def test_the_validation_pass_gives_keras_loss_and_the_auc(keras, balance):
    """``batchnorm.validation_metrics`` (one prediction pass) gives the loss ``model.evaluate``
    computes, class weights included, and the AUC of the summed carbon probability."""
    from sklearn.metrics import roc_auc_score

    from emulsion_core.config.paper import PAPER_PARAMETERS
    from emulsion_core.networks import batchnorm, sequences, training
    images, labels = simulated_events(24)
    keras.utils.set_random_seed(3)
    model = training.build(dict(PAPER_PARAMETERS), 0.125)
    val = sequences.EventSequence(images, labels, 32, camera_max=255, class_balance=balance)  # a partial last batch
    got = batchnorm.validation_metrics(model, val, signal=[0, 1])
    assert got["val_loss"] == pytest.approx(model.evaluate(val, verbose=0, return_dict=True)["loss"], rel=1e-5)
    p = model.predict(val, verbose=0)
    assert got["val_auc"] == pytest.approx(roc_auc_score(labels < 2, p[:, :2].sum(axis=1)), abs=1e-12)
