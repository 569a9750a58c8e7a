"""``kube-sentiment console``: the control room, a web app for the people who run the models.

One page per question: Overview (what serves where, healthy or not), Models (the registry and its gate), Rollouts
(canary and shadow decisions), Drift (reports over time), Try it (a prediction, and feedback when it is wrong).

Modules: ``settings`` (:class:`~control.console.settings.ConsoleSettings`, ``KS_CONSOLE_*``), ``main`` (the process),
``app`` (the Starlette app factory: pages, JSON data endpoints, assets, security headers), ``auth`` (the token,
sessions and CSRF), ``sources/`` (one small adapter per data source: MLflow registry, drift reports, predictor
``/metrics`` or Prometheus, Kubernetes API or local processes, rollout decisions, the prediction log, the
predictor's V1 and feedback endpoints), ``pages`` (the HTML shells), ``static/`` (one hand-written CSS and JS file:
tables and inline SVG charts drawn from the JSON endpoints; no CDN, no build step). docs/console.md explains the
pages.
"""
