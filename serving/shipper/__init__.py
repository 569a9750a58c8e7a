"""``kube-sentiment ship``: the monitoring sidecar that writes prediction events to a sink and loses none.

Modules: ``settings`` (``ShipSettings``), ``wire`` (the spool's line format: ingest parsing, quarantine records),
``cloudevents`` (the KServe payload-logger join), ``spool`` (the fsync'ed write-ahead spool), ``objects`` (a
segment → Parquet and quarantine objects, in the layout of ``serving.eventlog.parquet``), ``sinks`` (local
directory, S3), ``flusher`` (ships sealed segments), ``app`` (the HTTP app factory), ``main`` (process entry point).
See docs/monitoring.md.
"""
