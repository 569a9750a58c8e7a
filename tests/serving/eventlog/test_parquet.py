"""The event log's storage layout: path-safe partition values, UTC hour partitions."""

from __future__ import annotations

import pyarrow as pa

from serving.eventlog.parquet import partitions, safe_partition_value


def test_partition_values_are_path_safe_and_time_is_utc() -> None:
    assert safe_partition_value("v1/../x y") == "v1_.._x_y"
    assert safe_partition_value("..") == "_"
    table = pa.table({"environment": ["prod", "a/b", "prod", None], "model_version": ["7", "7", "7", "7"],
                      "ts": [0.0, 25 * 3600.0, 1.0, 0.0]})
    assert {k: v.tolist() for k, v in partitions(table).items()} == {
        ("prod", "7", "1970-01-01", "00"): [0, 2], ("a_b", "7", "1970-01-02", "01"): [1],
        ("unknown", "7", "1970-01-01", "00"): [3]}
