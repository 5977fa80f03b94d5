"""Figures styled for a paper (``plots``); every figure is written once, under its registered
name (:data:`emulsion_core.storage.results.FIGURES`), as PNG and PDF."""
