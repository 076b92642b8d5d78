"""The one record reader: UTF-8 with a BOM, JSONL, delimited files whose quoted fields span
lines (errors name the physical line), bad records counted or, strict, raised."""
import collections
import csv

import pytest

from tfx_bert.records import BadInputError, RecordReader


def test_a_bom_is_accepted_and_the_header_read(tmp_path):
    path = tmp_path / "excel.csv"
    path.write_bytes("text,label\r\nhello,1\r\n".encode("utf-8-sig"))  # Excel's "CSV UTF-8"
    rows = list(RecordReader().delimited(str(path), required=("text", "label")))
    assert rows == [(2, {"text": "hello", "label": "1"})]


def test_quoted_fields_spanning_lines_keep_the_physical_line_numbers(tmp_path):
    path = tmp_path / "multi.csv"
    path.write_text('text,label\n"first line\nsecond line",1\n\nlast,2,extra\nok,3\n', encoding="utf-8")
    counts = collections.Counter()
    rows = list(RecordReader(counts).delimited(str(path)))
    assert rows == [(2, {"text": "first line\nsecond line", "label": "1"}), (6, {"text": "ok", "label": "3"})]
    assert counts == {"skipped_malformed_row": 1}  # the blank line 4 is not a record
    with pytest.raises(BadInputError, match=r"multi.csv:5: malformed row: 3 columns, header has 2 \(strict mode"):
        list(RecordReader(strict=True).delimited(str(path)))


def test_glue_tsv_keeps_stray_quotes_as_text(tmp_path):
    path = tmp_path / "dev.tsv"
    path.write_text('sentence\tlabel\nhe said "hi\t1\n', encoding="utf-8")
    rows = list(RecordReader().delimited(str(path), "\t", csv.QUOTE_NONE))
    assert rows == [(2, {"sentence": 'he said "hi', "label": "1"})]


def test_missing_header_column_names_the_columns(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("sentence,label\nx,1\n")
    with pytest.raises(BadInputError, match=r"a.csv:1: header has no column\(s\) \['text'\] \(columns: \['sentence', 'label'\]\)"):
        list(RecordReader().delimited(str(path), required=("text",)))


def test_bad_utf8_and_json_are_counted_with_nothing_else_lost(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_bytes(b'{"text": "a"}\n\xff\xfe\n[1, 2]\n{broken\n\n{"text": "b"}\n')
    counts = collections.Counter()
    rows = list(RecordReader(counts).jsonl(str(path)))
    assert [(n, r["text"]) for n, r in rows] == [(1, "a"), (6, "b")]
    assert counts == {"skipped_invalid_utf8": 1, "skipped_invalid_json": 2}
    with pytest.raises(BadInputError, match=r"a.jsonl:2: invalid utf8"):
        list(RecordReader(strict=True).jsonl(str(path)))


def test_counts_go_to_a_callback(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("short\n" + "x" * 50 + "\n")
    seen = []
    lines = list(RecordReader(lambda name, n: seen.append((name, n)), max_line_chars=10).lines(str(path)))
    assert lines == [(1, "short")] and seen == [("skipped_overlong_line", 1)]
