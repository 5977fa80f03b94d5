"""NEWSnet building blocks: architecture size, the combined loss, preprocessing, rotations, a
tiny training run whose loss must fall."""

import numpy as np
import pytest

from emulsion_core.config import paper
from emulsion_core.data import preprocessing


def test_preprocess_scales_subtracts_median_and_appends_the_first_polarisation(rng):
    images = rng.integers(20, 40, (3, 8, 40, 40)).astype(np.uint8)
    images[:, :, 18:22, 18:22] = 200
    x = preprocessing.preprocess(images, 255)
    assert x.shape == (3, 9, 40, 40, 1) and x.dtype == np.float32
    np.testing.assert_allclose(np.median(x[..., 0].reshape(3, 9, -1), axis=-1), 0.0, atol=1e-6)
    np.testing.assert_array_equal(x[:, 8], x[:, 0])
    assert x.max() == pytest.approx((200 - np.median(images[0, 0])) / 255, rel=0.05)


def test_missing_polarisation_is_zero_filled_with_a_warning(rng):
    images = rng.integers(1, 50, (2, 7, 40, 40)).astype(np.uint8)
    angles = [a for a in preprocessing.POLARISATIONS_DEG if a != 90.0]
    with pytest.warns(UserWarning, match="90.0"):
        full = preprocessing.standard_polarisations(images, angles, "scan.h5")
    assert full.shape == (2, 8, 40, 40)
    assert (full[:, 4] == 0).all() and (full[:, 5] == images[:, 4]).all()


def test_rotation_by_90_degrees_is_exact_and_shared_by_all_nine_images(rng):
    x = rng.random((4, 9, 40, 40, 1)).astype(np.float32)
    rot = preprocessing.rotate_events(x, np.full(4, 90.0))
    # image coordinates x = column, y = row: +90 deg maps (x, y) -> (-y, x) about the centre
    expected = np.rot90(x, k=-1, axes=(2, 3))
    np.testing.assert_allclose(rot, expected, atol=1e-5)


def test_random_symmetry_keeps_correlations_across_the_nine_images(rng):
    base = rng.random((16, 1, 40, 40, 1)).astype(np.float32)
    gains = np.linspace(0.5, 2.0, 9).astype(np.float32)[None, :, None, None, None]
    x = base * gains  # the 9 images are the same picture with different brightness
    out = preprocessing.random_symmetry(x, np.random.default_rng(1))
    np.testing.assert_allclose(out / out[:, :1], np.broadcast_to(gains / gains[:, :1], out.shape), rtol=1e-6)
    # and different events got different symmetries
    same = [np.array_equal(out[i, 0], x[i, 0]) for i in range(16)]
    assert 0 < sum(same) < 16


@pytest.fixture(scope="module")
def models():
    from emulsion_core.networks import models
    return models


def test_newsnet_at_the_paper_values_has_the_paper_size(models):
    net = models.newsnet()
    n = models.trainable_parameters(net)
    assert abs(n - paper.PAPER_TRAINABLE_PARAMETERS) / paper.PAPER_TRAINABLE_PARAMETERS < 0.01
    assert n == 6_889_859  # the DESIGN.md reading of Tables 2 and 3
    assert net.output_shape == (None, 3)


def test_compact_nets_are_ten_times_smaller(models):
    for build in (models.compact_3d, models.polarisation_channels_2d):
        assert models.trainable_parameters(build()) < paper.PAPER_TRAINABLE_PARAMETERS / 10


def test_combined_loss_matches_a_hand_computation(models):
    y_true = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=np.float32)
    y_pred = np.array([[0.7, 0.2, 0.1], [0.1, 0.6, 0.3], [0.25, 0.25, 0.5]], dtype=np.float32)
    lam = 0.53
    cce = -np.log([0.7, 0.6, 0.5])
    p_sig = np.array([0.9, 0.7, 0.5])
    bce = -np.array([np.log(p_sig[0]), np.log(p_sig[1]), np.log(1 - p_sig[2])])
    expected = np.mean(cce + lam * bce)
    got = float(models.CombinedLoss(lam)(y_true, y_pred))
    assert got == pytest.approx(expected, rel=1e-5)


def test_tiny_network_learns(models):
    """A compact net trained for a few steps on simulated events: the loss falls."""
    from emulsion_core.config.simulator import SimulatorConfig
    from emulsion_core.simulator.simulate import render_events
    keras = models.keras
    keras.utils.set_random_seed(4)
    cfg, n = SimulatorConfig(), 96
    xs, ys = [], []
    for label, (sample, kind) in enumerate((("C30keV", "track"), ("C100keV", "track"), ("fog", "fog"))):
        images, _ = render_events(sample, "rot0", np.full(n, kind), np.zeros(n), np.random.default_rng(label), cfg)
        xs.append(preprocessing.preprocess(images, 255))
        ys.append(np.full(n, label))
    x = np.concatenate(xs)
    y = keras.utils.to_categorical(np.concatenate(ys), 3)
    net = models.compact_3d(filters=(8, 16), dropout=0.0)
    net.compile(optimizer=keras.optimizers.Adam(3e-3), loss=models.CombinedLoss(0.5))
    history = net.fit(x, y, batch_size=32, epochs=12, verbose=0, shuffle=True)
    losses = history.history["loss"]
    assert losses[-1] < 0.9 * losses[0], losses


def _traced_steps_and_weights(prebuild: bool, monkeypatch) -> tuple:
    """A tiny NEWSnet fitted for one epoch: how often its training step was traced, and its weights."""
    from emulsion_core.config.paper import PAPER_PARAMETERS
    from emulsion_core.networks import training
    from emulsion_core.networks.models import keras
    if not prebuild:
        monkeypatch.setattr(training, "prebuild_optimizer", lambda model: None)
    rng = np.random.default_rng(0)
    images, labels = rng.integers(20, 60, (64, 8, 40, 40), dtype=np.uint8), np.arange(64) % 3
    params = {**PAPER_PARAMETERS, "n_identity": 0, "classes": ["C30keV", "C100keV", "fog"]}
    keras.utils.set_random_seed(0)
    model = training.build(params, [0.125, 0.125])
    traced, step = [], model.train_step
    model.train_step = lambda data: traced.append(1) or step(data)  # runs once per trace, not per batch
    training.fit_in_memory(model, params, images, labels, 1, 32, 0, camera_max=255)
    return len(traced), model.get_weights()


def test_epoch_timer_leaves_the_tracing_epoch_out():
    from emulsion_core.networks import training
    timer = training.EpochTimer()
    timer.seconds = [5.0, 2.0, 2.0]
    assert timer.events_per_s(100) == pytest.approx(50.0)  # 2 epochs of 100 events in 4 s
    timer.seconds = [4.0]
    assert timer.events_per_s(100) == pytest.approx(25.0)  # one epoch: all there is


def test_the_training_step_is_traced_once_and_trains_as_before(monkeypatch):
    """Adam's moments created at compile time: the step is traced once (twice when they are created
    inside the first trace), and the fit ends at the same weights bit for bit."""
    n_new, new = _traced_steps_and_weights(True, monkeypatch)
    n_old, old = _traced_steps_and_weights(False, monkeypatch)
    assert (n_new, n_old) == (1, 2)
    assert all(np.array_equal(a, b) for a, b in zip(new, old))


def test_scan_sequence_streams_every_wanted_event_once_with_mixed_classes(tmp_path):
    import pandas as pd
    from emulsion_core.formats import hdf5
    from emulsion_core.simulator.simulate import simulate_scan
    from emulsion_core.networks.sequences import ScanSequence
    files = {"C30keV": 0, "C100keV": 1, "fog": 2}
    wanted = []
    for sample, label in files.items():
        path = simulate_scan(tmp_path / f"{sample}_rot0.h5", sample, "rot0", 300, seed=label)
        ids = hdf5.read_events(path)["event_id"].to_numpy()[::2]  # every other event
        wanted.append(pd.DataFrame({"file": path.name, "event_id": ids, "label": label}))
    table = pd.concat(wanted, ignore_index=True)
    seq = ScanSequence(tmp_path, table, batch_size=32, block_events=64, window_blocks=4, seed=1, full_batches=False)
    seen = [seq[i] for i in range(len(seq))]
    y = np.concatenate([b[1] for b in seen]).argmax(axis=1)
    assert len(y) == len(table) and np.bincount(y).tolist() == [150, 150, 150]
    assert np.mean([len(np.unique(b[1].argmax(axis=1))) > 1 for b in seen]) >= 0.7  # most batches mix classes
    # the streamed inputs are the preprocessed images of exactly the wanted events
    x_all = np.concatenate([b[0] for b in seen])
    assert x_all.shape == (450, 9, 40, 40, 1)
    first_epoch = y.copy()
    seq.on_epoch_end()
    y2 = np.concatenate([seq[i][1] for i in range(len(seq))]).argmax(axis=1)
    assert sorted(y2) == sorted(first_epoch) and not np.array_equal(y2, first_epoch)


def test_training_batches_all_have_the_batch_size(tmp_path):
    """Training sequences fill a last, partial batch up (oneDNN crashed when the batch shape
    changed); every event is still served, and evaluation sequences serve each event once."""
    import pandas as pd
    from emulsion_core.formats import hdf5
    from emulsion_core.simulator.simulate import simulate_scan
    from emulsion_core.networks.sequences import EventSequence, ScanSequence
    images = np.zeros((70, 8, 40, 40), np.uint8)
    images[:, 0, 0, 0] = np.arange(70)  # the event index, readable after preprocessing
    train = EventSequence(images, np.arange(70) % 3, 32, shuffle=True, augment=False, seed=1, camera_max=255)
    batches = [train[i][0] for i in range(len(train))]
    assert [len(b) for b in batches] == [32, 32, 32]
    ids = np.round(np.concatenate(batches)[:, 0].max(axis=(1, 2, 3)) * 255).astype(int)
    assert set(ids) == set(range(70))
    evaluation = EventSequence(images, None, 32, camera_max=255)
    assert [len(evaluation[i][0]) for i in range(len(evaluation))] == [32, 32, 6]
    wanted = []
    for label, sample in enumerate(("C30keV", "fog")):
        path = simulate_scan(tmp_path / f"{sample}_rot0.h5", sample, "rot0", 100, seed=label)
        wanted.append(pd.DataFrame({"file": path.name, "event_id": hdf5.read_events(path)["event_id"], "label": label}))
    seq = ScanSequence(tmp_path, pd.concat(wanted, ignore_index=True), batch_size=32, block_events=64, window_blocks=2)
    assert {len(seq[i][0]) for i in range(len(seq))} == {32}
    assert sum(len(seq[i][0]) for i in range(len(seq))) >= 200


def test_scan_sequence_windows_hold_every_class_in_its_overall_proportion(tmp_path):
    """Per-sample files cut into a few large blocks: every window must hold each class in about
    its share of the epoch (a plain block shuffle gives windows of mostly one class)."""
    import pandas as pd
    from emulsion_core.formats import hdf5
    from emulsion_core.simulator.simulate import simulate_scan
    from emulsion_core.networks.sequences import ScanSequence
    counts = {"C30keV": 256, "C100keV": 256, "fog": 768}
    wanted = []
    for label, (sample, n) in enumerate(counts.items()):
        path = simulate_scan(tmp_path / f"{sample}_rot0.h5", sample, "rot0", n, seed=label)
        wanted.append(pd.DataFrame({"file": path.name, "event_id": hdf5.read_events(path)["event_id"], "label": label}))
    seq = ScanSequence(tmp_path, pd.concat(wanted, ignore_index=True), batch_size=32, block_events=64,
                       window_blocks=5, seed=3)
    share = np.array(list(counts.values())) / sum(counts.values())  # 0.2, 0.2, 0.6
    for epoch in range(20):
        for window in seq.windows[:-1]:  # the last window holds the remainder
            labels = np.concatenate([seq.files[name][1][a:a + 64] for name, a in window])
            fraction = np.bincount(labels, minlength=3) / len(labels)
            assert np.all(np.abs(fraction - share) <= 0.2 + 1e-9), (epoch, fraction)
        seq.on_epoch_end()


def test_interrupted_training_resumes_to_the_same_weights(tmp_path, models):
    """Kill the fit after epoch 2 of 3, resume: the final weights equal an unbroken fit's."""
    from emulsion_core.networks import sequences, training
    keras = models.keras
    rng = np.random.default_rng(0)
    images = rng.integers(20, 60, (64, 8, 40, 40), dtype=np.uint8)
    labels = np.arange(64) % 3
    params = {**paper.PAPER_PARAMETERS, "n_identity": 0, "dropout_1": 0.0, "dropout_2": 0.0}

    def run(workdir, stop_after=None):
        keras.utils.set_random_seed(1)
        seq = sequences.EventSequence(images, labels, 16, shuffle=True, augment=True, seed=2, camera_max=255)
        if stop_after is not None:
            class Stop(keras.callbacks.Callback):
                def on_epoch_end(self, epoch, logs=None):
                    if epoch + 1 == stop_after:
                        raise KeyboardInterrupt
            original = training.keras.callbacks.CSVLogger
            training.keras.callbacks.CSVLogger = lambda *a, **k: _Chain(original(*a, **k), Stop())
            try:
                with pytest.raises(KeyboardInterrupt):
                    training.fit(params, seq, None, 3, workdir, width_scale=0.0625)
            finally:
                training.keras.callbacks.CSVLogger = original
            keras.utils.set_random_seed(1)
            seq = sequences.EventSequence(images, labels, 16, shuffle=True, augment=True, seed=2, camera_max=255)
        model, history, _ = training.fit(params, seq, None, 3, workdir, width_scale=0.0625)
        return model, history

    class _Chain(keras.callbacks.Callback):
        def __init__(self, *cbs):
            super().__init__()
            self.cbs = cbs

        def set_model(self, model):
            for c in self.cbs:
                c.set_model(model)

        def on_train_begin(self, logs=None):
            for c in self.cbs:
                c.on_train_begin(logs)

        def on_epoch_end(self, epoch, logs=None):
            try:
                for c in self.cbs:
                    c.on_epoch_end(epoch, logs)
            except KeyboardInterrupt:
                self.cbs[0].on_train_end()  # close the CSV log as a killed process would
                raise

        def on_train_end(self, logs=None):
            for c in self.cbs:
                c.on_train_end(logs)

    full, _ = run(tmp_path / "full")
    resumed, history = run(tmp_path / "resumed", stop_after=2)
    assert list(history["epoch"]) == [0, 1, 2]
    for v, a, b in zip(full.weights, full.get_weights(), resumed.get_weights()):
        # equal up to float round-off (oneDNN reduction order); a restart from scratch differs by O(1).
        # Moving statistics are re-estimated from the weights at every epoch's end, so they carry
        # the weights' round-off amplified through the layers: compared to their own scale.
        atol = max(2e-3, 0.03 * np.abs(a).max()) if "moving_" in v.path else 2e-3
        np.testing.assert_allclose(a, b, rtol=0, atol=atol, err_msg=v.path)
    # a finished fit is loaded, not trained again: same weights, no new epoch in its history
    again, history = run(tmp_path / "full")
    assert list(history["epoch"]) == [0, 1, 2]
    for a, b in zip(full.get_weights(), again.get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("shape, filters, kernel, strides", [
    ((9, 40, 40, 1), 4, 3, 1), ((9, 40, 40, 3), 5, 3, 2), ((5, 20, 20, 8), 6, 1, 2), ((4, 10, 10, 2), 3, 3, 2),
    ((5, 10, 10, 20), 4, 3, 1), ((4, 10, 10, 24), 3, 3, 2)])  # the last two: wider than BANDED_MAX_CHANNELS
def test_depth_folded_convolution_is_keras_conv3d(models, rng, shape, filters, kernel, strides):
    """Same weights, same output as keras.layers.Conv3D ('same' padding), odd and even depths, strides,
    narrow inputs (the banded kernel) and wide ones (the shifted copies)."""
    keras = models.keras
    x = rng.normal(size=(2,) + shape).astype(np.float32)
    reference = keras.layers.Conv3D(filters, kernel, strides=strides, padding="same")
    reference.build((None,) + shape)
    reference.bias.assign(rng.normal(size=filters).astype(np.float32))
    folded = models.DepthFoldedConv3D(filters, kernel, strides=strides)
    folded.build((None,) + shape)
    folded.set_weights(reference.get_weights())
    expected, result = np.asarray(reference(x)), np.asarray(folded(x))
    assert result.shape == expected.shape
    np.testing.assert_allclose(result, expected, atol=1e-5)


@pytest.mark.parametrize("strides", [1, 2])
def test_banded_and_shifted_depth_folds_give_the_same_outputs_and_gradients(models, rng, strides):
    """The two computations of DepthFoldedConv3D (banded kernel for narrow inputs, shifted copies)
    agree in output and in the gradients of the kernel, the bias and the input."""
    from emulsion_core.networks.tf_quiet import tf
    layer = models.DepthFoldedConv3D(6, 3, strides=strides)
    x = tf.constant(rng.normal(size=(3, 9, 12, 12, 4)).astype(np.float32))
    layer.build(x.shape)
    layer.bias.assign(rng.normal(size=6).astype(np.float32))
    out = {}
    for path in ("_banded", "_shifted"):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = getattr(layer, path)(x)
            loss = tf.reduce_sum(tf.sin(y))
        out[path] = [np.asarray(y)] + [np.asarray(g) for g in tape.gradient(loss, [x, layer.kernel, layer.bias])]
    for a, b in zip(out["_banded"], out["_shifted"]):
        np.testing.assert_allclose(a, b, rtol=0, atol=2e-5 * max(1.0, np.abs(b).max()))


def test_learning_rate_decays_per_batch_to_the_decay_rate_at_the_end(models):
    """lr0 * d ** (t / T) before every batch t of T, also within a one-epoch fit; logged per epoch."""
    from emulsion_core.networks import training
    keras = models.keras
    rates = []

    class Record(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            rates.append(float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)))

    x = np.zeros((40, 3), np.float32)
    y = np.zeros((40, 1), np.float32)
    for epochs in (1, 2):
        rates.clear()
        net = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
        net.compile(optimizer=keras.optimizers.Adam(1.0), loss="mse")
        history = net.fit(x, y, batch_size=10, epochs=epochs, verbose=0,
                          callbacks=[training.schedule_callback({"learning_rate": 1e-3, "decay_rate": 0.01}, epochs), Record()])
        steps = 4 * epochs
        np.testing.assert_allclose(rates, 1e-3 * 0.01 ** (np.arange(steps) / steps), rtol=1e-5)
        np.testing.assert_allclose(history.history["learning_rate"][-1], 1e-3 * 0.01 ** ((steps - 1) / steps), rtol=1e-5)


def test_fits_read_scan_batches_in_the_sequences_own_order(tmp_path, models):
    """Keras would shuffle the order of batches on top of the sequence's own shuffle; a
    ScanSequence then re-reads a window of scan blocks for every other batch (3x slower on the
    default profile). Every fit must ask for batches 0, 1, 2, ... in turn."""
    import pandas as pd
    from emulsion_core.formats import hdf5
    from emulsion_core.networks import sequences, training
    from emulsion_core.config.paper import PAPER_PARAMETERS
    from emulsion_core.simulator.simulate import simulate_scan
    wanted = []
    for label, sample in enumerate(("C30keV", "C100keV", "fog")):
        path = simulate_scan(tmp_path / f"{sample}_rot0.h5", sample, "rot0", 60, seed=label)
        wanted.append(pd.DataFrame({"file": path.name, "event_id": hdf5.read_events(path)["event_id"], "label": label}))
    asked = []

    class Recording(sequences.ScanSequence):
        def __getitem__(self, idx):
            asked.append(idx)
            return super().__getitem__(idx)

    seq = Recording(tmp_path, pd.concat(wanted, ignore_index=True), batch_size=16, block_events=32, window_blocks=2,
                    shuffle=True, n_classes=3)
    training.fit(PAPER_PARAMETERS, seq, None, 1, tmp_path / "fit", width_scale=0.0625)
    training_calls = asked[asked.index(0, 1):] if asked.count(0) > 1 else asked  # after Keras' signature peek
    assert training_calls[:len(seq)] == list(range(len(seq)))
