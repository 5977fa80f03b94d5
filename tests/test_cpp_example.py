"""The C++ example (examples/cpp): built with ONNX Runtime's C++ API and the HDF5 C library, it scores
a scan file with the exported ensemble as Python does (issue 19, item 3).

ONNX Runtime's C++ headers are not installable from this project's registries (PyPI's onnxruntime
wheel and npm's onnxruntime-node ship the library without them; Debian 12 has no package): the test
runs where ``ORT_ROOT`` names an ONNX Runtime release (include/, lib/), and skips with that reason
elsewhere."""

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
ORT_ROOT = os.environ.get("ORT_ROOT")
REASON = ("ONNX Runtime's C++ headers are not installable from PyPI, npm or Debian 12 (the onnxruntime wheel and "
          "onnxruntime-node ship the library only): set ORT_ROOT to an ONNX Runtime release to build examples/cpp")


def _headers() -> bool:
    return bool(ORT_ROOT) and any(Path(ORT_ROOT).rglob("onnxruntime_cxx_api.h"))


@pytest.mark.skipif(not _headers() or not shutil.which("cmake") or not shutil.which("h5cc"),
                    reason=REASON + " (and cmake and the HDF5 C library: Debian's libhdf5-dev)")
def test_cpp_example_scores_as_python(tmp_path):
    CLASSES = ("C30keV", "C100keV", "fog")
    from emulsion_core.networks import export
    from emulsion_core.networks.predict import predict_files
    from emulsion_core.simulator.simulate import simulate_scan
    from emulsion_core.networks import training
    from emulsion_core.config.paper import PAPER_PARAMETERS
    from emulsion_core.networks.models import keras
    keras.utils.set_random_seed(3)
    member = tmp_path / "fit" / "epoch_001.keras"
    member.parent.mkdir()
    training.build({**PAPER_PARAMETERS, "classes": list(CLASSES)}, 0.125).save(member)
    onnx_path = export.export([member], tmp_path / "newsnet.onnx", CLASSES)
    scan = simulate_scan(tmp_path / "fog_test.h5", "fog", "test", 100, seed=6)
    build = tmp_path / "build"
    subprocess.run(["cmake", "-S", str(REPO / "examples" / "cpp"), "-B", str(build), f"-DORT_ROOT={ORT_ROOT}"], check=True)
    subprocess.run(["cmake", "--build", str(build)], check=True)
    out = subprocess.run([str(build / "score_events"), str(onnx_path), str(scan)], check=True, capture_output=True,
                         text=True).stdout.split()
    cpp = pd.DataFrame({"event_id": np.array(out[0::2], int), "log_odds": np.array(out[1::2], float)})
    predict_files([member], [scan], tmp_path / "py.csv", progress=False, classes=CLASSES)
    py = pd.read_csv(tmp_path / "py.csv")
    assert (cpp["event_id"].to_numpy() == py["event_id"].to_numpy()).all()
    np.testing.assert_allclose(cpp["log_odds"], py["log_odds"], atol=1e-4)
