"""The one record reader of every ingestion path: both ExampleGens, BEIR, SQuAD and CoNLL.

Lines of UTF-8 (a leading byte-order mark accepted, as Excel's "CSV UTF-8" writes; ``.gz``
read transparently), JSON Lines, and delimited files with a header row whose quoted fields may
span lines; every record carries the physical line it starts on. A bad record is skipped and
counted, or, with ``strict``, raises ``BadInputError`` naming file and line.
"""
from __future__ import annotations

import collections
import csv
import gzip
import json
from typing import Callable, Iterator

BOM = "\ufeff"
# The input formats of the two ExampleGens (config choices and executor checks use these).
CORPUS_FORMATS = ("bert_raw", "jsonl", "csv", "tsv", "tfrecord")  # TextExampleGen (pretraining corpora)
TASK_FORMATS = ("glue_tsv", "csv", "tsv", "jsonl", "conll", "squad", "beir", "msmarco_triples")  # TaskExampleGen


class BadInputError(ValueError):
    """Bad input that stops the run; the message names the file and line."""


def json_object(text: str) -> tuple[dict | None, str]:
    """The JSON object on one line, or (None, why it is not one)."""
    try:
        record = json.loads(text)
    except json.JSONDecodeError as e:
        return None, str(e)
    return (record, "") if isinstance(record, dict) else (None, "not an object")


def open_lines(path: str) -> Iterator[tuple[int, bytes]]:
    """(1-based line number, raw bytes with the line end) of a local, gs:// or .gz file."""
    import tensorflow as tf

    with tf.io.gfile.GFile(path, "rb") as raw:
        stream = gzip.GzipFile(fileobj=raw) if path.endswith(".gz") else raw
        for number, line in enumerate(stream, 1):
            yield number, line


def expand_files(pattern: str) -> list[str]:
    """The files (not directories) matching ``pattern``, sorted; none is a clear error."""
    import tensorflow as tf

    files = sorted(f for f in tf.io.gfile.glob(pattern) if not tf.io.gfile.isdir(f))
    if not files:
        raise FileNotFoundError(f"No input files match {pattern!r}; check input_base/input_pattern.")
    return files


class RecordReader:
    """Reads files into records, skipping and counting bad ones.

    ``count(name, n)`` receives the counts (``skipped_<kind>`` for bad records); give a
    ``collections.Counter`` instead to collect them in a dict. ``max_line_chars`` > 0 skips
    longer lines (``overlong_line``).
    """

    def __init__(self, count: Callable[[str, int], None] | collections.Counter | None = None, strict: bool = False,
                 max_line_chars: int = 0):
        if count is None or isinstance(count, collections.Counter):
            self.counters = count if count is not None else collections.Counter()
            self.count = lambda name, n=1: self.counters.update({name: n})
        else:
            self.counters, self.count = None, count
        self.strict, self.max_line_chars = bool(strict), int(max_line_chars or 0)

    def bad(self, kind: str, path: str, line: int | None, detail: str = "") -> None:
        self.count(f"skipped_{kind}", 1)
        if self.strict:
            where = f"{path}:{line}" if line else path
            raise BadInputError(f"{where}: {kind.replace('_', ' ')}{': ' + detail if detail else ''}"
                                " (strict mode; set strict=false to skip and count such records)")

    def lines(self, path: str, keep_ends: bool = False) -> Iterator[tuple[int, str]]:
        """(line number, text) of each decodable line; a BOM at the start is dropped."""
        for number, raw in open_lines(path):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                self.bad("invalid_utf8", path, number, str(e))
                continue
            if number == 1 and text.startswith(BOM):
                text = text[1:]
            stripped = text.rstrip("\r\n")
            if self.max_line_chars and len(stripped) > self.max_line_chars:
                self.bad("overlong_line", path, number, f"{len(stripped)} > {self.max_line_chars} chars")
                continue
            yield number, text if keep_ends else stripped

    def jsonl(self, path: str) -> Iterator[tuple[int, dict]]:
        """(line number, object) of each JSON object line; blank lines are ignored."""
        for number, line in self.lines(path):
            if not line.strip():
                continue
            row, error = json_object(line)
            if row is None:
                self.bad("invalid_json", path, number, error)
                continue
            yield number, row

    def delimited(self, path: str, delimiter: str = ",", quoting: int = csv.QUOTE_MINIMAL,
                  required: tuple = ()) -> Iterator[tuple[int, dict]]:
        """(line the record starts on, {column: value}) of a delimited file with a header row.

        Quoted fields may span lines (``quoting=csv.QUOTE_NONE`` for GLUE's TSVs, whose stray
        quote characters are text); a header without a ``required`` column raises, naming the
        columns it has; a row of another width is skipped and counted; blank lines are ignored.
        """
        starts: list[int] = []

        def source():
            for number, text in self.lines(path, keep_ends=True):
                starts.append(number)
                yield text

        reader = csv.reader(source(), delimiter=delimiter, quoting=quoting)
        header = None
        while True:
            starts.clear()
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as e:
                self.bad("malformed_row", path, starts[0] if starts else None, str(e))
                continue
            number = starts[0] if starts else 0
            if not row or row == [""]:
                continue
            if header is None:
                header = [column.strip() for column in row]
                missing = [f for f in required if f and f not in header]
                if missing:
                    raise BadInputError(f"{path}:{number}: header has no column(s) {missing} (columns: {header}); "
                                        "set the text / label field settings to the file's column names")
                continue
            if len(row) != len(header):
                self.bad("malformed_row", path, number, f"{len(row)} columns, header has {len(header)}")
                continue
            yield number, dict(zip(header, row))
