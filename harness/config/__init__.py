"""Configuration as pure data: suites (:mod:`.suite`), their shared fields (:mod:`.fields`),
the gate's settings (:mod:`.gate`) and one formatter of validation errors (:mod:`.errors`).
Building a config touches no model, GPU or network; nothing here imports torch."""
