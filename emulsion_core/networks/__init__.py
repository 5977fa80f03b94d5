"""The networks, and the only subpackage that imports TensorFlow and Keras (through ``tf_quiet``,
after the oneDNN guard): NEWSnet and the compact controls (``models``), batches (``sequences``),
training and the snapshot ensemble (``training``, ``batchnorm``), scores in log-odds
(``scoring``), the Bayesian search (``search``), scoring of scan files (``predict``), and the
machine-dependent choices (``onednn_guard``, ``selftest``, ``xla_choice``)."""
