"""The samples, scans and polariser angles of the experiment's calibration runs: every name and
number that the file formats, the simulator, the analyses and the profiles share, defined once.
Sources: [P21] (the paper, ``shared/seeds``), sections given per line."""

from __future__ import annotations

SAMPLES = ("C30keV", "C60keV", "C100keV", "fog", "gamma")  # [P21] 2.1, plus the gamma run of the authors' notebooks
SIGNAL_SAMPLES = ("C30keV", "C60keV", "C100keV")  # carbon-ion implantations
ENERGY_KEV = {"C30keV": 30, "C60keV": 60, "C100keV": 100, "fog": 0, "gamma": 0}  # ion energy, keV
ROTATED_SCANS = {"rot0": 0.0, "rot45": 45.0, "rot90": 90.0, "rot0_repeat": 0.0}  # [P21] 2.1: rotation, deg
TEST_SCAN = "test"  # the independent test area, scanned unrotated
# carbon tracks of the test area rendered at the bulk samples' depths: what recoils spread through the
# detector's volume look like, which no calibration sample shows (simulation only; split test_bulk)
BULK_SCAN = "test_bulk"
TEST_SCANS = (TEST_SCAN, BULK_SCAN)  # the scans of the independent test area
SCANS = tuple(ROTATED_SCANS) + TEST_SCANS  # the order scans are listed, simulated and read in
SPLITS = ("train", "validation", "test", "test_bulk")  # a scan's events: the rotated scans' two, one per test scan
EVALUATION_SPLITS = ("validation", "test", "test_bulk")  # what Table 1 reports (test_bulk where simulated)
POLARISATIONS_DEG = tuple(22.5 * i for i in range(8))  # [P21] sec. 2: 8 polariser angles over 180 deg, deg
TABLE1_SAMPLES = ("C30keV", "C100keV", "fog")  # [P21] Table 1's rows (and the paper's 3 network classes)
# what a sample's events are made of (simulator truth, the ``true_kind`` column)
PRIMARY_KIND = {"C30keV": "track", "C60keV": "track", "C100keV": "track", "fog": "fog", "gamma": "electron"}
