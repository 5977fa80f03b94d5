"""The paper's numbers ([P21], ``shared/seeds/newsdm_deep_learning_paper.txt``): NEWSnet's classes,
hyperparameters and search space (Appendix A), the Table 1 working point, Table 1 and Table 4.
Our results are printed beside these; none of them is a target the code is tuned to."""

from __future__ import annotations

import math

from emulsion_core.config.samples import TABLE1_SAMPLES

PAPER_CLASSES = TABLE1_SAMPLES  # [P21]; the authors' notebooks also train with C60keV
INPUT_SHAPE = (9, 40, 40, 1)  # 8 polarisations + the first again (180 deg = 0 deg), 40 x 40 px, one channel
PAPER_TRAINABLE_PARAMETERS = 6_925_910
# [P21] Appendix A: the final values
PAPER_PARAMETERS = {"dropout_1": 0.4, "dropout_2": 0.3, "dropout_3": 0.0, "filters_1": 64, "filters_2": 128,
                    "n_identity": 3, "loss_lambda": 0.53, "learning_rate": 6.5e-4, "beta_1_inv": 10.0,
                    "beta_2_inv": 100.0, "decay_rate": 0.1}
# name: (kind, low, high, prior) -- [P21] Appendix A ranges
SEARCH_SPACE = {
    "dropout_1": ("real", 0.1, 0.4, "uniform"),
    "dropout_2": ("real", 0.3, 0.8, "uniform"),
    "dropout_3": ("real", 0.0, 0.4, "uniform"),
    "filters_1": ("int", 32, 64, "uniform"),
    "filters_2": ("int", 64, 128, "uniform"),
    "n_identity": ("int", 0, 3, "uniform"),
    "loss_lambda": ("real", 0.01, 2.0, "uniform"),
    "learning_rate": ("real", 1e-5, 3e-3, "log-uniform"),
    "beta_1_inv": ("real", 10.0, 100.0, "uniform"),  # beta_1 = 1 - 1/beta_1_inv
    "beta_2_inv": ("real", 100.0, 1500.0, "uniform"),
    "decay_rate": ("real", 1e-4, 1e-1, "log-uniform"),
}
REFERENCE_SAMPLE = "C100keV"
REFERENCE_EFFICIENCY = 0.30  # [P21] sec. 3.1: every Table 1 cut keeps 30 % of C100keV validation events
# [P21] Table 1 (fractions passing the cut): barshift, NEWSnet, shape analysis ([11], another sample);
# (method, sample, split, value, error)
TABLE1 = (
    ("barshift", "C30keV", "validation", 0.189, 0.004), ("barshift", "C30keV", "test", 0.193, 0.004),
    ("barshift", "C100keV", "validation", 0.300, 0.004), ("barshift", "C100keV", "test", 0.303, 0.005),
    ("barshift", "fog", "validation", 0.25, 0.01), ("barshift", "fog", "test", 0.25, 0.01),
    ("newsnet", "C30keV", "validation", 0.231, 0.037), ("newsnet", "C30keV", "test", 0.122, 0.028),
    ("newsnet", "C100keV", "validation", 0.300, 0.034), ("newsnet", "C100keV", "test", 0.311, 0.033),
    ("newsnet", "fog", "validation", 1.4e-3, 0.45e-3), ("newsnet", "fog", "test", 2.7e-4, 0.81e-4),
    ("shape", "C30keV", "other sample", 0.017, 0.001), ("shape", "C100keV", "other sample", 0.297, 0.007),
    ("shape", "fog", "other sample", 0.01, math.nan),
)
# [P21] Table 4: events after cleaning, {split: (C30keV, C100keV, fog)}
TABLE4 = {"train": (39000, 39000, 51300), "validation": (26000, 26000, 34200), "test": (50000, 50000, 50000)}
# the authors' 4-class ensemble at a fog validation fraction of 1.43e-3 (cut 0.99299 on the summed
# carbon probability): validation efficiency per class (NEWSdm/NewsNet70nm/article_NEWSnet_bayes.ipynb
# cell 32; physics.md e), and the per-class ROC AUC against fog (validation, test; cells 32, 89)
AUTHORS_FOG_FRACTION = 1.43e-3
AUTHORS_EFFICIENCY = {"C30keV": 0.313, "C60keV": 0.512, "C100keV": 0.381}
# fraction of isolated events (tr_flag = -1: one optical peak, not in a microtrack) in the authors'
# datasets, NEWSdm/NewsNet70nm/data_sandbox.ipynb cell 22 (physics.md e): a validation, never fitted
AUTHORS_ISOLATED_FRACTION = {"C30keV": 0.71, "C60keV": 0.30, "C100keV": 0.55, "fog": 0.77}
AUTHORS_AUC = {"C30keV": (0.967, 0.978), "C60keV": (0.979, 0.995), "C100keV": (0.968, 0.990)}
