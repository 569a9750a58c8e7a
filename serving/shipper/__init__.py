"""``kube-sentiment ship``: the monitoring sidecar that writes prediction events to a sink and loses none.

Modules: ``settings`` (``ShipSettings``), ``records`` (event parsing, KServe CloudEvent join, partitioning,
Parquet encoding), ``spool`` (the fsync'ed write-ahead spool), ``sinks`` (local directory, S3), ``flusher`` (spool
segments to sink objects), ``app`` (the HTTP app factory), ``main`` (process entry point). See docs/monitoring.md.
"""
