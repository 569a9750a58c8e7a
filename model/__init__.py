"""kube-sentiment: learn. Data, training, evaluation, registry and gate, drift."""
