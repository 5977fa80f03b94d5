"""Pure statistics on arrays: efficiencies and reduction factors with Clopper-Pearson intervals,
cuts at a fixed efficiency, ROC points, and numbers formatted with their errors (``metrics``)."""
