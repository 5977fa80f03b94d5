"""The analyses the notebooks call, one module per question: Table 1 (``table1``), the
conventional variables (``conventional``), NEWSnet's search, fit and scores
(``network_analysis``), the architecture table (``architectures``), the angular distributions
(``angular``) and the acquisition-artefact audit (``audit``)."""
