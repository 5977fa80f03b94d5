"""XLA for a long fit only where it was measured to be faster on this machine."""

import pytest

from emulsion_core.networks import xla_choice


def test_decision_needs_faster_steps_and_a_fit_long_enough_to_repay_the_compilation():
    assert xla_choice.decide(plain_s=0.10, xla_s=0.05, compile_s=15.0, steps=1000)  # saves 50 s > 15 s
    assert not xla_choice.decide(plain_s=0.10, xla_s=0.05, compile_s=15.0, steps=200)  # saves 10 s < 15 s
    assert not xla_choice.decide(plain_s=0.10, xla_s=0.095, compile_s=0.0, steps=10**6)  # within the margin
    assert not xla_choice.decide(plain_s=0.10, xla_s=0.20, compile_s=0.0, steps=10**6)  # XLA slower (AMX case)


def test_measured_once_per_machine_and_network_then_read_from_the_cache(tmp_path, monkeypatch):
    monkeypatch.delenv(xla_choice.OVERRIDE_ENV, raising=False)
    calls = []

    def fake_time_steps(factory, batch_size, jit_compile, **kw):
        calls.append(jit_compile)
        return (0.05, 20.0) if jit_compile else (0.10, 2.0)  # XLA halves the step, 18 s to compile

    monkeypatch.setattr(xla_choice, "time_steps", fake_time_steps)
    config = {"network": "test"}
    assert not xla_choice.choose(None, config, 64, 10_000, cache_dir=tmp_path)  # short fit: not measured
    assert calls == []
    assert xla_choice.choose(None, config, 64, 64 * 1000, cache_dir=tmp_path)  # 1000 steps save 50 s > 18 s
    assert calls == [False, True]
    assert not xla_choice.choose(None, config, 64, 64 * 300, cache_dir=tmp_path)  # 15 s < 18 s; cached timings
    assert calls == [False, True]
    xla_choice.choose(None, {"network": "other"}, 64, 64 * 1000, cache_dir=tmp_path)  # another network: measured
    assert calls == [False, True, False, True]


@pytest.mark.parametrize("value, expected", [("on", True), ("off", False)])
def test_the_environment_overrides_the_measurement(monkeypatch, value, expected):
    monkeypatch.setenv(xla_choice.OVERRIDE_ENV, value)
    monkeypatch.setattr(xla_choice, "time_steps", lambda *a, **k: pytest.fail("measured despite the override"))
    assert xla_choice.choose(None, {}, 64, 10**7) is expected


def test_real_timing_of_a_tiny_network():
    """The timer runs a real compiled network both ways and gives positive step times."""
    from emulsion_core.networks import models, training
    from emulsion_core.config.paper import PAPER_PARAMETERS
    factory = lambda jit: training.compile_model(models.compact_3d(filters=(4, 4, 4)), PAPER_PARAMETERS, jit)  # noqa: E731
    step, first = xla_choice.time_steps(factory, 8, False, steps=2)
    assert 0 < step < first


def test_a_fit_starts_from_the_same_weights_whether_the_timing_ran_or_was_cached(tmp_path, monkeypatch):
    """The XLA timing builds networks (it draws initial weights from Keras' global seed); a fit given
    its seed sets it after that decision, so a fit on a machine without the cached timing starts
    where one with it does (a default run once differed in its final fit by this alone)."""
    import numpy as np

    from emulsion_core.config.paper import PAPER_PARAMETERS
    from emulsion_core.networks import sequences, training
    from emulsion_core.networks.models import keras
    monkeypatch.delenv(xla_choice.OVERRIDE_ENV, raising=False)
    monkeypatch.setattr(xla_choice, "MIN_EVENT_PASSES", 0)
    params = {**PAPER_PARAMETERS, "cache_marker": str(tmp_path)}  # a network this machine's cache has not seen

    timed = []

    def drawing_time_steps(factory, batch_size, jit_compile, **kw):
        timed.append(jit_compile)
        keras.initializers.GlorotUniform()((64, 64))  # what building a network draws
        return (0.10, 1.0)

    monkeypatch.setattr(xla_choice, "time_steps", drawing_time_steps)
    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 255, (32, 8, 40, 40), dtype=np.uint8), np.arange(32) % 3
    built = training.build

    class Built(Exception):  # the initial weights are what is compared: no training needed
        pass

    def build_and_stop(*a, **kw):
        model = built(*a, **kw)
        weights.append([keras.ops.convert_to_numpy(v) for v in model.weights])
        raise Built

    monkeypatch.setattr(training, "build", build_and_stop)
    weights = []
    for run in ("measured", "cached"):
        keras.utils.set_random_seed(11)
        seq = sequences.EventSequence(images, labels, 16, shuffle=True, seed=1, camera_max=255)
        with pytest.raises(Built):
            training.fit(params, seq, None, 1, tmp_path / run, width_scale=0.0625, seed=11)
    assert timed == [False, True]  # timed for the first fit only
    for a, b in zip(*weights):
        np.testing.assert_array_equal(a, b)
