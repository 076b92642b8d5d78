"""Reading a TFX Examples artifact's splits in Beam."""
from __future__ import annotations

import os

import apache_beam as beam
import tensorflow as tf
from tfx.types import artifact_utils


def split_pattern(examples, split: str) -> str:
    """Glob of the record files of one split of an Examples artifact."""
    return os.path.join(artifact_utils.get_split_uri([examples], split), "*")


def split_names(examples) -> list[str]:
    return artifact_utils.decode_split_names(examples.split_names)


@beam.ptransform_fn
def ReadTextFeature(pipeline, examples, split: str, feature: str):  # noqa: N802 (Beam style)
    """PCollection of (doc_id, text) from an Examples split written as gzip TFRecords."""

    def parse(record: bytes):
        example = tf.train.Example.FromString(record)
        f = example.features.feature
        doc_id = f["doc_id"].bytes_list.value[0].decode("utf-8") if "doc_id" in f else ""
        values = f[feature].bytes_list.value if feature in f else []
        if values:
            yield doc_id, values[0].decode("utf-8")

    return (
        pipeline
        | f"Read[{split}]" >> beam.io.ReadFromTFRecord(
            split_pattern(examples, split), compression_type=beam.io.filesystem.CompressionTypes.AUTO
        )
        | f"Parse[{split}]" >> beam.FlatMap(parse)
    )


def write_examples(records, examples, split: str):
    """Writes a PCollection of tf.Examples as one split of ``examples`` (gzip TFRecords, as TFX's
    own ExampleGens write them)."""
    from tfx.components.example_gen import write_split

    return records | f"Write[{split}]" >> write_split.WriteSplit(
        artifact_utils.get_split_uri([examples], split), "FORMAT_TFRECORDS_GZIP")


def resolve_spans(examples, patterns: dict[str, str], span_range: str) -> tuple[dict[str, list[str]], list[int]]:
    """The files of each split's pattern, ``{SPAN}``-style specs resolved now for ``span_range``
    (``tfx_bert/spans.py``), and the spans selected (none: no specs). They are recorded on
    ``examples`` (TFX's ``span`` and ``version`` properties: the newest; custom ``spans``: all)."""
    from tfx_bert import spans
    from tfx_bert.records import expand_files

    resolved = spans.resolve(patterns, span_range or "latest")
    if resolved.spans:
        examples.span = resolved.spans[-1]
        if resolved.version is not None:
            examples.version = resolved.version
        examples.set_json_value_custom_property("spans", resolved.spans)
        print(f"  [data] span range {span_range or 'latest'}: span(s) {', '.join(map(str, resolved.spans))}"
              + (f", version {resolved.version}" if resolved.version is not None else ""), flush=True)
    files = {split: [f for p in found for f in expand_files(p)] for split, found in resolved.patterns.items()}
    return files, resolved.spans


def finish_ingestion(pipeline, examples, namespace: str, report: dict) -> dict:
    """Runs an ExampleGen's Beam ``pipeline``, writes ``ingestion_report.json`` (``report`` plus
    the counts) into the artifact and records the counts on it; returns the counts."""
    from tfx_bert_app.components import beam_utils

    counts = beam_utils.read_counters(beam_utils.run_and_wait(pipeline), namespace)
    beam_utils.write_json(examples.uri, "ingestion_report.json", {**report, "counts": counts})
    examples.set_string_custom_property("payload_format", "FORMAT_TF_EXAMPLE")
    examples.set_json_value_custom_property("ingestion_counts", counts)
    return counts
