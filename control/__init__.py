"""Watch, decide and show, outside the request path: the drift job, the local loop and the ``kube-sentiment``
dispatch table. Imports ``model`` and the public contracts of ``serving`` (``serving.eventlog``) only."""
