"""The application: the command line (``cli``, ``python -m emulsion_core``), making a profile's
dataset ready (``prepare``: the one place that decides to simulate), the report index
(``report``) and the named-number references of the notebooks' results (``references``)."""
