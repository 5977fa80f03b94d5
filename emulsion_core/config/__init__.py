"""Configuration and constants, imported by everything and importing nothing else of the package:
the samples, scans and polariser angles (``samples``), the paper's numbers (``paper``: classes,
hyperparameters, search space, Table 1, Table 4), the simulator's configuration with its sources
(``simulator``), and the run profiles (``profiles``: the YAML files of ``emulsion_core/profiles``)."""
