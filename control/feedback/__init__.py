"""``kube-sentiment feedback``: ground-truth labels in and labelled production data out.

``import FILE`` stores the labels of a CSV/Parquet file (``id``, ``label``, optionally ``source`` and ``at``) in the
sink as feedback events (the contract of :mod:`serving.eventlog.feedback`), through the shipper's own object writer;
``snapshot`` writes the labelled production data of a window (logged texts joined to their feedback with
:mod:`control.quality.join`) to a Parquet file that ``kube-sentiment train --production-data`` reads.
Modules: ``settings``, ``importer``, ``snapshot``, ``main`` (the subcommand dispatch).
"""
