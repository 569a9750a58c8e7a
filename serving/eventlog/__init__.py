"""The prediction log contract, one owner for everything that writes or reads logged events.

``events`` (the event every classified text becomes, and the predictor's request record that expands into events),
``parquet`` (how events are stored in a sink: schema, partitioning, object names; one ``EventLog`` per kind of
log), ``reader`` (``read_window``: a time window of any event log from a local or ``s3://`` sink). The shipper
writes with it; the drift job, and later live quality and rollout analysis, read with it. Import the submodules
(this package imports nothing, so the predictor does not load pyarrow through it).
"""
