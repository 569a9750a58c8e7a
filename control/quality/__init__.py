"""Live quality: ground-truth feedback joined to the predictions it labels, scored per model version and track.

Modules: ``join`` (the join rules: unknown ids, lateness, corrections, conflicts; one home for every consumer),
``metrics`` (accuracy, macro-F1 with a bootstrap interval, confusion matrix), ``live`` (a group's verdict against
its holdout macro-F1, and :func:`control.quality.live.live_macro_f1`, the one call for other consumers such as the
rollout analysis), ``report`` (the drift job's ``quality`` section: JSON, HTML, Prometheus, MLflow), ``settings``.
See docs/monitoring.md, "Live quality".
"""
