"""Inference CLI: streams files, reports a bad file by name, keeps what was written, resumes."""

import numpy as np
import pandas as pd
import pytest

from emulsion_core.simulator.simulate import simulate_scan


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    from emulsion_core.networks import models
    path = tmp_path_factory.mktemp("m") / "tiny.keras"
    net = models.compact_3d(filters=(4, 8))
    net.compile(optimizer="adam", loss=models.CombinedLoss(0.5))
    net.save(path)
    return path


def test_predict_streams_skips_a_bad_file_and_resumes(tmp_path, model_path):
    from emulsion_core.app.cli import main
    good1 = simulate_scan(tmp_path / "C30keV_test.h5", "C30keV", "test", 150, seed=1)
    good2 = simulate_scan(tmp_path / "fog_test.h5", "fog", "test", 100, seed=1)
    bad = tmp_path / "broken.h5"
    bad.write_text("not hdf5")
    out = tmp_path / "scores.csv"
    rc = main(["predict", "--model", str(model_path), "--input", str(good1), str(bad), str(good2),
               "--output", str(out), "--on-error", "skip"])
    assert rc == 1  # a file failed
    table = pd.read_csv(out)
    assert len(table) == 250 and set(table["file"]) == {str(good1), str(good2)}
    assert table["score"].between(0, 1).all()
    # log_odds (the scale of notebook 04's cut) ranks the events as the summed probability does
    assert np.all(np.diff(table.sort_values("log_odds")["score"].to_numpy()) >= -2e-6)  # CSV: 6 digits
    np.testing.assert_allclose(table[["p_C30keV", "p_C100keV", "p_fog"]].sum(axis=1), 1.0, atol=1e-5)
    # stop mode: the bad file stops the run, the rows of the file before it stay
    out2 = tmp_path / "stop.csv"
    assert main(["predict", "--model", str(model_path), "--input", str(good1), str(bad), str(good2),
                 "--output", str(out2)]) == 1
    assert set(pd.read_csv(out2)["file"]) == {str(good1)}
    # rerun without the bad file: resumes, scoring only what is missing
    assert main(["predict", "--model", str(model_path), "--input", str(good1), str(good2), "--output", str(out2)]) == 0
    again = pd.read_csv(out2)
    assert len(again) == 250 and again.duplicated(["file", "event_id"]).sum() == 0


def test_bad_file_error_names_it(tmp_path, model_path, capsys):
    from emulsion_core.app.cli import main
    bad = tmp_path / "missing.h5"
    assert main(["predict", "--model", str(model_path), "--input", str(bad), "--output", str(tmp_path / "o.csv")]) == 1
    assert "missing.h5" in capsys.readouterr().err
