"""Guard against a crash of TensorFlow's oneDNN convolution kernels: a self-test in a
subprocess before TensorFlow is imported, and oneDNN switched off where the self-test dies.

The fault (issue 10): TensorFlow 2.21's oneDNN convolution backward-filter kernel
(``MklConvCustomBackpropFilterOp``) corrupts the heap when the batch shape changes during a fit
(a partial last batch), and the process aborts ("double free or corruption", "free(): invalid
pointer") or segfaults. Seen on an Intel Xeon with AMX (NEWSnet at width x 1/8 with searched
widths 5 and 8, or 7 and 12; ``ONEDNN_MAX_CPU_ISA=AVX512_CORE`` still crashes) and on an AMD
EPYC with AVX-512 (no AMX): the smallest reproduction there is one ``Conv2D(8, 1, strides=2)``
on 8 (or 1) input channels fitted with batches 64, 64, 64, 23; 16 or 32 input channels, stride
1, a 3x3 kernel, or no partial batch run; ``TF_ENABLE_ONEDNN_OPTS=0`` always runs. In NEWSnet
the 1x1x1 stride-2 convolution that opens the first residual stage reads the stem's output, 8
channels at width x 1/8.

Avoided where we can (``training``: training batches all of one shape, searched residual widths
rounded up to multiples of 8); guarded for what we cannot foresee. ``ensure`` (called by ``tf_quiet``
before it imports TensorFlow, and by ``run_all.sh`` through ``python -m emulsion_core onednn``
before any notebook starts) runs two tiny fits in child processes with oneDNN on:

- ``workload``: NEWSnet with odd channel counts (widths 4, 7, 5, 7) on a dataset with a partial
  last batch, trained as this suite trains (``training.fit_in_memory``: full batches, batch-norm
  recalibration), twice with different batch sizes, then inference with a partial batch. If it
  dies, ``TF_ENABLE_ONEDNN_OPTS=0`` is set in this process's environment before TensorFlow is
  imported (kernels and subprocesses inherit it) and a line says so on stderr.
- ``fault``: the same network fitted by plain Keras on arrays with a partial last batch: tells
  whether this CPU has the fault at all (reported; oneDNN is switched off only by ``workload``,
  because oneDNN trains NEWSnet ~7x faster than TensorFlow's own kernels on a 2-core AMD EPYC).

The outcome is cached per machine (CPU model and flags, TensorFlow, Keras and Python versions)
in ``~/.cache/emulsion-dl/`` (``EMULSION_DL_CACHE`` or ``XDG_CACHE_HOME`` move it), so the
self-test runs once (~40 s). The report index shows it (``describe``).

Environment: a ``TF_ENABLE_ONEDNN_OPTS`` the user set is respected (no self-test);
``EMULSION_ONEDNN_SELFTEST_FAIL=1`` makes the children abort like the fault (to test the guard).

This module must not import TensorFlow.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from emulsion_core.storage import atomic

ONEDNN_ENV = "TF_ENABLE_ONEDNN_OPTS"
FAIL_ENV = "EMULSION_ONEDNN_SELFTEST_FAIL"  # "1": the self-test's child aborts (tests of the guard)
CHILD_ENV = "EMULSION_ONEDNN_SELFTEST_CHILD"  # set in the child: its own TensorFlow import is not guarded
SET_BY_GUARD_ENV = "EMULSION_ONEDNN_GUARD"  # the guard's decision, "on" or "off", inherited by child processes
SELFTEST_TIMEOUT_S = 600  # per child; a 2-core machine under load needs ~30 s


@dataclass(frozen=True)
class Status:
    """What applies to this process: ``onednn`` on or off, and why (``reason``, one line)."""
    onednn: bool
    reason: str


def _cpu() -> tuple[str, str]:
    """(CPU model name, CPU flags) of this machine's first processor, from /proc/cpuinfo where
    there is one (elsewhere the platform's processor name and no flags)."""
    info = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().split("\n\n")[0].splitlines():
            key, _, value = line.partition(":")
            info.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    flags = info.get("flags", info.get("Features", ""))
    return info.get("model name", platform.processor() or platform.machine()), " ".join(sorted(flags.split()))


def _version(*names: str) -> str:
    for name in names:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return "none"


def machine_key() -> dict:
    """What the self-test's outcome depends on: CPU model and flags, TensorFlow, Keras, Python."""
    model, flags = _cpu()
    return {"cpu": model, "cpu_flags": flags, "machine": platform.machine(),
            "tensorflow": _version("tensorflow", "tensorflow-cpu"), "keras": _version("keras"),
            "python": platform.python_version()}


def cache_file(cache_dir=None) -> Path:
    """The cache file of this machine's self-test outcome."""
    if cache_dir is None:
        from emulsion_core.storage import paths
        cache_dir = paths.machine_cache()
    digest = hashlib.sha256(json.dumps(machine_key(), sort_keys=True).encode()).hexdigest()[:16]
    return Path(cache_dir) / f"onednn-selftest-{digest}.json"


def read_cache(cache_dir=None) -> dict | None:
    path = cache_file(cache_dir)
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def run_selftest(mode: str = "workload", timeout_s: float = SELFTEST_TIMEOUT_S) -> dict:
    """Run one self-test (``workload`` or ``fault``, see the module) in a child process with
    oneDNN on.

    Returns ``passed`` (True: finished; False: died by a signal or timed out; None: could not
    run, e.g. an import error), ``returncode``, ``signal`` (name), ``seconds`` and ``detail``
    (the end of the child's stderr)."""
    env = {**os.environ, ONEDNN_ENV: "1", CHILD_ENV: "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop(SET_BY_GUARD_ENV, None)
    root = str(Path(__file__).resolve().parents[2])  # the child imports this copy of the package
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    t0 = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, "-X", "faulthandler", "-m", "emulsion_core.networks.selftest", mode],
                              capture_output=True, text=True, env=env, timeout=timeout_s)
    except subprocess.TimeoutExpired as err:
        tail = err.stderr or b""
        tail = tail.decode(errors="replace") if isinstance(tail, bytes) else tail
        return {"passed": False, "returncode": None, "signal": None, "seconds": round(time.perf_counter() - t0, 1),
                "detail": f"timed out after {timeout_s:.0f} s\n" + tail[-2000:]}
    rc = proc.returncode
    sig = signal.Signals(-rc).name if rc < 0 and -rc in {s.value for s in signal.Signals} else None
    ok = rc == 0 and f"oneDNN self-test {mode} passed" in proc.stdout
    return {"passed": True if ok else (False if rc < 0 else None), "returncode": rc, "signal": sig,
            "seconds": round(time.perf_counter() - t0, 1), "detail": proc.stderr[-2000:]}


def _say(message: str) -> None:
    print(f"emulsion-dl: {message}", file=sys.stderr, flush=True)


def _failure_text(result: dict) -> str:
    how = f"died with {result['signal']}" if result.get("signal") else (
        "timed out" if result.get("returncode") is None else f"exited with {result['returncode']}")
    return f"the oneDNN self-test {how}"


def _write_cache(record: dict, cache_dir=None) -> None:
    try:
        path = cache_file(cache_dir)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic.write_json(path, record, indent=1)
    except OSError as err:
        _say(f"could not cache the oneDNN self-test's outcome ({err})")


def ensure(cache_dir=None, retest: bool = False) -> Status:
    """Decide whether TensorFlow may use oneDNN in this process, before it is imported.

    Runs the self-tests (or reads their cached outcome); where the ``workload`` test died, sets
    ``TF_ENABLE_ONEDNN_OPTS=0`` in ``os.environ`` and says so on stderr. Respects a
    ``TF_ENABLE_ONEDNN_OPTS`` the user set, and does nothing once TensorFlow is imported
    (``require_safe`` then stops training where it matters). Returns the ``Status``."""
    if os.environ.get(CHILD_ENV):
        return Status(True, "the self-test's own process")
    if os.environ.get(SET_BY_GUARD_ENV) in ("on", "off") and not retest:  # a parent process decided
        if os.environ[SET_BY_GUARD_ENV] == "off":
            os.environ[ONEDNN_ENV] = "0"
        return status(cache_dir)
    if (ONEDNN_ENV in os.environ and not retest) or "tensorflow" in sys.modules:
        return status(cache_dir)
    cached = None if retest else read_cache(cache_dir)
    if cached is None:
        _say("testing TensorFlow's oneDNN convolutions in subprocesses (once per machine, ~1 min) ...")
        workload = run_selftest("workload")
        if workload["passed"] is None:
            _say(f"the oneDNN self-test could not run (exit {workload['returncode']}); oneDNN stays on. "
                 f"Its error:\n{workload['detail'][-800:]}")
            return Status(True, "self-test could not run")
        fault = run_selftest("fault") if workload["passed"] else {"passed": None, "returncode": None, "signal": None,
                                                                   "seconds": 0.0}  # not needed: oneDNN goes off
        cached = {"passed": workload["passed"],
                  **{k: workload[k] for k in ("returncode", "signal", "seconds", "detail")},
                  "fault": {k: fault[k] for k in ("passed", "returncode", "signal", "seconds")},
                  **machine_key(), "date": time.strftime("%Y-%m-%d %H:%M:%S")}
        if workload["returncode"] is not None:  # a definitive outcome (not a timeout): keep it
            _write_cache(cached, cache_dir)
        _say(f"oneDNN self-test {'passed' if workload['passed'] else 'FAILED'} ({workload['seconds']:.0f} s); "
             + ("this CPU has the oneDNN fault when a batch shape changes during a fit, which this suite's "
                "training avoids" if fault["passed"] is False else "the known fault did not occur"))
    os.environ[SET_BY_GUARD_ENV] = "on" if cached["passed"] else "off"  # kernels and workers need not look again
    if not cached["passed"]:
        os.environ[ONEDNN_ENV] = "0"
        _say(f"{_failure_text(cached)} on this CPU ({cached.get('cpu', '?')}); TensorFlow runs with "
             f"{ONEDNN_ENV}=0 (slower, but it does not crash)")
    return status(cache_dir)


def status(cache_dir=None) -> Status:
    """What applies to this process, from the environment and the cached self-test (no test)."""
    value = os.environ.get(ONEDNN_ENV)
    cached = read_cache(cache_dir)
    tested = ""
    if cached is not None:
        tested = (f"self-test passed on this machine ({cached.get('date', '?')})" if cached["passed"] else
                  f"{_failure_text(cached)} on this machine ({cached.get('date', '?')})")
        if cached.get("fault", {}).get("passed") is False:
            tested += ("; this CPU has TensorFlow's oneDNN fault when a batch shape changes during a fit "
                       f"({cached['fault'].get('signal') or 'crash'}), which this suite's training avoids")
    if value is None:
        return Status(True, tested or "default (not tested)")
    on = value.strip().lower() not in ("0", "false", "off", "no")
    if not on and (os.environ.get(SET_BY_GUARD_ENV) == "off" or (cached is not None and not cached["passed"])):
        return Status(False, f"{ONEDNN_ENV}=0 because {tested or 'the self-test failed'}")
    return Status(on, f"{ONEDNN_ENV}={value} set by the environment" + (f"; {tested}" if tested else ""))


def describe(cache_dir=None) -> str:
    """One line for logs and the report index."""
    s = status(cache_dir)
    return f"oneDNN {'on' if s.onednn else 'OFF'}: {s.reason}"


def require_safe(cache_dir=None) -> None:
    """Raise before training when this process's TensorFlow uses oneDNN although the self-test
    died on this machine (TensorFlow was imported before the guard could switch it off)."""
    if os.environ.get(CHILD_ENV) or "tensorflow" not in sys.modules:
        return
    cached = read_cache(cache_dir)
    if cached is None or cached["passed"]:
        return
    from tensorflow.python.util import _pywrap_util_port
    if _pywrap_util_port.IsMklEnabled():
        raise RuntimeError(f"{_failure_text(cached)} on this machine, but TensorFlow was imported with oneDNN on "
                           f"before emulsion_core could switch it off: restart the kernel or process (or set "
                           f"{ONEDNN_ENV}=0) and import emulsion_core before TensorFlow")


if __name__ == "__main__":
    print(describe())
