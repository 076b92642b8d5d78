"""Small helpers shared by this project's Beam executors."""
from __future__ import annotations

import json
import os

import apache_beam as beam
from apache_beam.metrics.metric import MetricsFilter


def counter(namespace: str, name: str):
    """A Beam counter; counts are also read back into each component's report."""
    return beam.metrics.Metrics.counter(namespace, name)


def gauge(namespace: str, name: str):
    """A Beam gauge, for a count that several workers or splits observe whole (the same corpus
    read by each split): read back as its largest value, not a sum."""
    return beam.metrics.Metrics.gauge(namespace, name)


def read_counters(result, namespace: str) -> dict[str, int]:
    """Committed counter values of a finished pipeline, by name (counters summed, gauges at
    their largest value)."""
    query = result.metrics().query(MetricsFilter().with_namespace(namespace))
    counts: dict[str, int] = {}
    for item in query["counters"]:
        value = item.committed if item.committed is not None else item.attempted
        counts[item.key.metric.name] = counts.get(item.key.metric.name, 0) + int(value or 0)
    for item in query["gauges"]:
        result_value = item.committed if item.committed is not None else item.attempted
        value = int(getattr(result_value, "value", 0) or 0)
        counts[item.key.metric.name] = max(counts.get(item.key.metric.name, 0), value)
    return dict(sorted(counts.items()))


def run_and_wait(pipeline) -> object:
    """Runs a Beam pipeline to completion and returns its result."""
    result = pipeline.run()
    result.wait_until_finish()
    return result


def write_json(directory: str, name: str, data: dict) -> str:
    """Writes ``data`` as pretty JSON into ``directory/name``; returns the path."""
    import tensorflow as tf

    path = os.path.join(directory, name)
    with tf.io.gfile.GFile(path, "w") as f:
        f.write(json.dumps(data, indent=2, sort_keys=True))
    return path
