"""``kube-sentiment drift``: compare a window of logged predictions with the training reference profile.

Modules: ``settings`` (``DriftSettings``), ``window`` (the window's columns, read with ``serving.eventlog.reader``,
and its groups), ``reference`` (reference profiles by model version, from MLflow or a local model directory),
``stats`` (PSI, tests, multiple-testing correction), ``signals`` (the drift signals of one group), ``report`` (JSON
and HTML), ``publish`` (Prometheus, MLflow), ``main`` (the job). See docs/monitoring.md for the report schema and
the exit codes.
"""
