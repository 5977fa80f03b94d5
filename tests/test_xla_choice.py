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
