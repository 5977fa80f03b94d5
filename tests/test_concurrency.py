"""Several processes, one folder, nothing broken; an interrupted fit, the same network (issue 18,
item 5). Real processes: two simulations started into one folder, and a fit killed with SIGKILL
in its second epoch and resumed."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from given_scans import scan_contents

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3", "TQDM_DISABLE": "1"}

SIMULATE = textwrap.dedent("""
    import sys
    from emulsion_core.simulator.simulate import simulate_dataset
    simulate_dataset(sys.argv[1], {"C30keV": {"rot0": 2500, "rot45": 2500}, "fog": {"rot0": 2500}}, seed=3,
                     samples=("C30keV", "fog"), progress=False, workers=1, block_size=512)
""")



@pytest.mark.slow
def test_two_processes_simulating_into_one_folder_both_end_with_the_single_runs_files(tmp_path):
    single, shared = tmp_path / "single", tmp_path / "shared"
    subprocess.run([sys.executable, "-c", SIMULATE, str(single)], env=ENV, check=True, timeout=600)
    first = subprocess.Popen([sys.executable, "-c", SIMULATE, str(shared)], env=ENV, stderr=subprocess.PIPE, text=True)
    time.sleep(1.5)  # the first is writing its first scan
    second = subprocess.Popen([sys.executable, "-c", SIMULATE, str(shared)], env=ENV, stderr=subprocess.PIPE, text=True)
    errors = [p.communicate(timeout=600)[1] for p in (first, second)]
    assert first.returncode == 0 and second.returncode == 0, errors
    assert "Traceback" not in "".join(errors)
    assert scan_contents(shared) == scan_contents(single)
    assert not [p for p in shared.iterdir() if ".tmp" in p.name]


FIT = textwrap.dedent("""
    import sys
    import numpy as np
    from emulsion_core.config.paper import PAPER_PARAMETERS
    from emulsion_core.networks import training
    from emulsion_core.networks.models import keras
    from emulsion_core.networks.sequences import EventSequence
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 128)
    images = rng.integers(0, 40, (len(labels), 8, 40, 40)).astype(np.uint8)
    images[:, :, 18:22, 18:22] += (60 + 30 * labels)[:, None, None, None].astype(np.uint8)
    params = {**PAPER_PARAMETERS, "classes": ["C30keV", "C100keV", "fog"], "class_balance": "weights"}
    train = EventSequence(images, labels, 32, shuffle=True, augment=True, seed=5, camera_max=255,
                          n_classes=3, class_balance="weights")
    validation = EventSequence(images[::4], labels[::4], 32, camera_max=255, n_classes=3)
    keras.utils.set_random_seed(5)
    training.fit(params, train, validation, 3, sys.argv[1], width_scale=0.125, ensemble=2)
""")


def _weights(path: Path) -> list:
    from emulsion_core.networks.training import load_member
    return [np.asarray(w) for w in load_member(path).get_weights()]


@pytest.mark.slow
def test_a_fit_killed_in_its_second_epoch_and_resumed_gives_the_unbroken_weights(tmp_path):
    unbroken, broken = tmp_path / "unbroken", tmp_path / "broken"
    start = time.time()
    subprocess.run([sys.executable, "-c", FIT, str(unbroken)], env=ENV, check=True, timeout=600)
    whole = time.time() - start
    child = subprocess.Popen([sys.executable, "-c", FIT, str(broken)], env=ENV)
    epoch1 = broken / "epoch_001.keras"
    while not epoch1.exists() and child.poll() is None:
        time.sleep(0.02)
    t1 = time.time()
    time.sleep(min(2.0, whole / 10))  # into the second epoch
    killed_in = "epoch 2" if not (broken / "epoch_002.keras").exists() else "after epoch 2"
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert child.returncode == -signal.SIGKILL and not (broken / "epoch_003.keras").exists(), killed_in
    assert (broken / "backup").exists()
    subprocess.run([sys.executable, "-c", FIT, str(broken)], env=ENV, check=True, timeout=600)
    for e in (1, 2, 3):
        for a, b in zip(_weights(unbroken / f"epoch_{e:03d}.keras"), _weights(broken / f"epoch_{e:03d}.keras")):
            np.testing.assert_array_equal(a, b, err_msg=f"epoch {e} (killed {killed_in}, {time.time() - t1:.1f} s)")
