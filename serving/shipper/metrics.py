"""Prometheus metrics of one shipper, in a registry of its own (no process-global state)."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge


@dataclass
class ShipMetrics:
    """The shipper's counters and gauges."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.events_in = Counter("ks_ship_events_received", "Prediction events accepted (spooled).",
                                 ["source"], registry=r)
        self.events_written = Counter("ks_ship_events_written", "Prediction events written to the sink.",
                                      registry=r)
        self.quarantined = Counter("ks_ship_events_quarantined", "Malformed input records quarantined.",
                                   registry=r)
        self.duplicates = Counter("ks_ship_events_duplicate", "Events dropped as repeats of an id in a segment.",
                                  registry=r)
        self.rejected = Counter("ks_ship_requests_rejected", "Requests refused, by reason.", ["reason"], registry=r)
        self.sink_errors = Counter("ks_ship_sink_errors", "Failed attempts to write a segment to the sink.",
                                   registry=r)
        self.segments_shipped = Counter("ks_ship_segments_shipped", "Spool segments fully written to the sink.",
                                        registry=r)
        self.pending = Gauge("ks_ship_events_pending", "Spool lines not yet in the sink.", registry=r)
        self.spool_bytes = Gauge("ks_ship_spool_bytes", "Bytes held by the spool on disk.", registry=r)
        self.pending_halves = Gauge("ks_ship_cloudevent_halves_pending", "KServe CloudEvents waiting for their "
                                    "other half.", registry=r)
        self.journal_pending = Gauge("ks_ship_journal_pending_bytes", "Bytes in predictor journal files not yet "
                                     "read into the spool.", registry=r)
        self.journal_files_done = Counter("ks_ship_journal_files_done", "Predictor journal files read completely "
                                          "and deleted.", registry=r)
        self.journal_torn = Counter("ks_ship_journal_torn_lines", "Journal files whose writer died in the middle "
                                    "of a line (the torn line is quarantined).", registry=r)
        self.last_flush = Gauge("ks_ship_last_flush_timestamp_seconds", "Unix time of the last successful write "
                                "to the sink.", registry=r)
