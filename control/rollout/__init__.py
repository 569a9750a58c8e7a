"""``kube-sentiment rollout``: progressive delivery of a model version, judged on the model's own behaviour.

Modules: ``policy`` (the steps and the analysis thresholds: the chart's ``rollout`` values), ``checks`` (the pure
decision: each check's value, threshold and p-value, and advance / hold / roll back), ``sources`` (what the checks
are computed from: the prediction logs per track and version, Prometheus, live labels), ``analyze`` (``rollout
analyze``: one decision for one window), ``driver`` (the step logic of ``rollout run``, over an injectable
:class:`~control.rollout.driver.Target` and analysis), ``helm`` (the Kubernetes target: ``scripts/canary.sh``, the
lock annotation, Events, the in-cluster analysis Job), ``record`` (every decision in MLflow, as an Event and a log
line), ``main`` (the ``rollout`` command). docs/deploy.md explains the policy and how to read a decision.
"""
