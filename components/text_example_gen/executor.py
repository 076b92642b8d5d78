"""TextExampleGen executor: raw text files -> tf.Example per document, hashed train/eval split.

Formats:
* ``bert_raw``: one sentence per line, a blank line between documents (BERT's format);
* ``jsonl``: one JSON object a line, text in ``text_field`` (id in ``id_field`` if set);
* ``csv`` / ``tsv``: a header row, text in ``text_field``;
* ``tfrecord``: tf.Example records with a bytes feature ``text_field``.
Files may be gzip-compressed (``.gz``). A document never spans files.

Bad input is skipped and counted (Beam counters, also in ``ingestion_report.json`` in the output
artifact); with ``strict`` on, the first bad record fails the run with its file and line.
"""
from __future__ import annotations

import hashlib
import os
from typing import Any, Iterator

import apache_beam as beam
import tensorflow as tf
from tfx.dsl.components.base import base_beam_executor
from tfx.types import artifact_utils

from tfx_bert_app.components import beam_utils, examples_io
from tfx_bert import features
from tfx_bert.records import CORPUS_FORMATS, BadInputError, RecordReader  # noqa: F401 (BadInputError: re-exported)

NAMESPACE = "tfx_bert.ingest"
FORMATS = CORPUS_FORMATS
SPLITS = ("train", "eval")

# Keys of the component's exec properties.
INPUT_PATTERN = "input_pattern"
SPAN_RANGE = "span_range"  # latest | rolling:N | static:A-B, for a {SPAN}-style input_pattern (tfx_bert/spans.py)
INPUT_FORMAT = "input_format"
TEXT_FIELD = "text_field"
ID_FIELD = "id_field"
EVAL_PERCENT = "eval_percent"
MAX_LINE_CHARS = "max_line_chars"
STRICT = "strict"
PER_LINE = "per_line"


def split_for(doc_id: str, eval_percent: int) -> str:
    """Deterministic split from a hash of the document id (stable across runs and workers)."""
    bucket = int.from_bytes(hashlib.md5(doc_id.encode("utf-8")).digest()[:8], "big") % 100
    return "eval" if bucket < eval_percent else "train"


class _Parser:
    """Parses one file into documents, counting (or, strict, raising on) bad records."""

    def __init__(self, props: dict[str, Any]):
        self.format = props[INPUT_FORMAT]
        self.text_field = props[TEXT_FIELD]
        self.id_field = props[ID_FIELD]
        self.per_line = bool(props[PER_LINE])
        self.reader = RecordReader(lambda name, n: beam_utils.counter(NAMESPACE, name).inc(n),
                                   strict=bool(props[STRICT]), max_line_chars=props[MAX_LINE_CHARS])
        self.bad = self.reader.bad

    def documents(self, path: str) -> Iterator[tuple[str, list[str]]]:
        """Yields (doc_id, sentences) for one file."""
        name = os.path.basename(path)
        if self.format == "bert_raw":
            yield from self._bert_raw(path, name)
        elif self.format == "jsonl":
            yield from self._jsonl(path, name)
        elif self.format in ("csv", "tsv"):
            yield from self._csv(path, name)
        else:
            yield from self._tfrecord(path, name)

    def _emit(self, doc_id: str, lines: list[str], path: str, line: int):
        lines = [s for s in (l.strip() for l in lines) if s]
        if not lines:
            self.bad("empty_document", path, line)
            return
        if self.per_line:
            for i, sentence in enumerate(lines):
                yield f"{doc_id}.{i}", [sentence]
        else:
            yield doc_id, lines

    def _bert_raw(self, path: str, name: str):
        sentences: list[str] = []
        index, start, had_lines, last = 0, 1, False, 0
        for number, text in self.reader.lines(path):
            if number > last + 1 and not had_lines:  # skipped (bad) lines open a document too
                start, had_lines = last + 1, True
            last = number
            if not text.strip():  # a blank line ends the document
                if sentences:
                    yield from self._emit(f"{name}:{index}", sentences, path, start)
                    index += 1
                elif had_lines:  # every line of the document was bad
                    self.bad("empty_document", path, start)
                sentences, had_lines = [], False
                continue
            if not had_lines:
                start, had_lines = number, True
            sentences.append(text)
        if sentences:
            yield from self._emit(f"{name}:{index}", sentences, path, start)
        elif had_lines:
            self.bad("empty_document", path, start)

    def _record(self, record: dict, path: str, number: int, name: str):
        text = record.get(self.text_field)
        if not isinstance(text, str):
            self.bad("missing_field", path, number, f"no string field {self.text_field!r}")
            return
        doc_id = str(record.get(self.id_field)) if self.id_field and record.get(self.id_field) is not None else f"{name}:{number}"
        yield from self._emit(doc_id, text.split("\n"), path, number)

    def _jsonl(self, path: str, name: str):
        for number, record in self.reader.jsonl(path):
            yield from self._record(record, path, number, name)

    def _csv(self, path: str, name: str):
        rows = self.reader.delimited(path, "\t" if self.format == "tsv" else ",", required=(self.text_field,))
        for number, row in rows:
            yield from self._record(row, path, number, name)

    def _tfrecord(self, path: str, name: str):
        compression = "GZIP" if path.endswith(".gz") else ""
        for number, raw in enumerate(tf.compat.v1.io.tf_record_iterator(path, tf.compat.v1.io.TFRecordOptions(compression)), 1):
            example = tf.train.Example.FromString(raw)
            feature = example.features.feature.get(self.text_field)
            if feature is None or not feature.bytes_list.value:
                self.bad("missing_field", path, number, f"no bytes feature {self.text_field!r}")
                continue
            try:
                text = feature.bytes_list.value[0].decode("utf-8")
            except UnicodeDecodeError as e:
                self.bad("invalid_utf8", path, number, str(e))
                continue
            record = {self.text_field: text}
            if self.id_field and self.id_field in example.features.feature:
                record[self.id_field] = example.features.feature[self.id_field].bytes_list.value[0].decode("utf-8", "replace")
            yield from self._record(record, path, number, name)


class _ParseFile(beam.DoFn):
    def __init__(self, props: dict[str, Any]):
        self._props = props

    def setup(self):
        self._parser = _Parser(self._props)

    def process(self, path: str):
        try:
            for doc_id, sentences in self._parser.documents(path):
                example = tf.train.Example()
                f = example.features.feature
                f[features.TEXT].bytes_list.value.append("\n".join(sentences).encode("utf-8"))
                f[features.DOC_ID].bytes_list.value.append(doc_id.encode("utf-8"))
                f["num_sentences"].int64_list.value.append(len(sentences))
                beam_utils.counter(NAMESPACE, "documents").inc()
                beam_utils.counter(NAMESPACE, "sentences").inc(len(sentences))
                yield doc_id, example
        except (OSError, tf.errors.OpError) as e:
            raise BadInputError(f"{path}: unreadable input file ({e})") from e


class Executor(base_beam_executor.BaseBeamExecutor):
    """Reads the corpus with Beam, writes Split-train / Split-eval TFRecords of tf.Example."""

    def Do(self, input_dict, output_dict, exec_properties):
        props = dict(exec_properties)
        if props[INPUT_FORMAT] not in FORMATS:
            raise ValueError(f"input_format {props[INPUT_FORMAT]!r} is not one of {FORMATS}.")
        examples = artifact_utils.get_single_instance(output_dict["examples"])
        examples.split_names = artifact_utils.encode_split_names(list(SPLITS))
        files = examples_io.resolve_spans(examples, {"corpus": props[INPUT_PATTERN]},
                                          props.get(SPAN_RANGE) or "latest")[0]["corpus"]
        eval_percent = int(props[EVAL_PERCENT])

        pipeline = self._make_beam_pipeline()
        docs = (
            pipeline
            | "Files" >> beam.Create(files)
            | "Spread" >> beam.Reshuffle()
            | "Parse" >> beam.ParDo(_ParseFile(props))
        )
        parts = docs | "Split" >> beam.Partition(
            lambda kv, _n: SPLITS.index(split_for(kv[0], eval_percent)), len(SPLITS)
        )
        for split, part in zip(SPLITS, parts):
            _ = examples_io.write_examples(part | f"Count[{split}]" >> beam.Map(_count_split, split), examples, split)
        counts = examples_io.finish_ingestion(pipeline, examples, NAMESPACE, {
            "input_pattern": props[INPUT_PATTERN], "input_format": props[INPUT_FORMAT], "files": len(files)})
        if counts.get("documents", 0) == 0:
            raise ValueError(
                f"No documents were read from {props[INPUT_PATTERN]} "
                f"(format {props[INPUT_FORMAT]}); skipped: {counts}."
            )


def _count_split(kv, split: str):
    beam_utils.counter(NAMESPACE, f"{split}_documents").inc()
    return kv[1]
