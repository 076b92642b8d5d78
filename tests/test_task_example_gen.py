"""TaskExampleGen: GLUE TSV (SST-2 and MRPC layouts), CSV and JSONL task data, bad records."""
import json
import os

import pytest
from tfx.types import standard_artifacts

from tfx_bert_app.components.task_example_gen import executor as ex
from tfx_bert_app.components.text_example_gen.executor import BadInputError
from tests.helpers import new_artifact, read_examples, run_executor


def _props(base, fmt, train="train*", eval_="dev*", text="text", text_b="", label="label", names="",
           num_classes=2, strict=0):
    return {ex.INPUT_BASE: str(base), ex.TRAIN_PATTERN: train, ex.EVAL_PATTERN: eval_, ex.INPUT_FORMAT: fmt,
            ex.TEXT_FIELD: text, ex.TEXT_B_FIELD: text_b, ex.LABEL_FIELD: label, ex.LABEL_NAMES: names,
            ex.NUM_CLASSES: num_classes, ex.STRICT: strict}


def _run(tmp_path, props):
    examples = new_artifact(standard_artifacts.Examples, tmp_path / "out")
    run_executor(ex.Executor, {}, {"examples": [examples]}, props, str(tmp_path / "tmp"))
    rows = {}
    for split in ("train", "eval"):
        rows[split] = []
        for e in read_examples(os.path.join(examples.uri, f"Split-{split}", "*")):
            f = e.features.feature
            rows[split].append((f["text"].bytes_list.value[0].decode(),
                                f["text_b"].bytes_list.value[0].decode() if "text_b" in f else None,
                                f["label"].int64_list.value[0]))
    report = json.load(open(os.path.join(examples.uri, "ingestion_report.json")))
    return rows, report["counts"]


def test_glue_sst2_layout(tmp_path):
    (tmp_path / "train.tsv").write_text('sentence\tlabel\nit \'s a "charming" film \t1\nflat , dull\t0\n')
    (tmp_path / "dev.tsv").write_text("sentence\tlabel\na quiet triumph\t1\n")
    rows, counts = _run(tmp_path, _props(tmp_path, "glue_tsv", text="sentence"))
    assert sorted(rows["train"]) == [("flat , dull", None, 0), ('it \'s a "charming" film', None, 1)]
    assert rows["eval"] == [("a quiet triumph", None, 1)]
    assert counts["train_records"] == 2 and counts["eval_records"] == 1


def test_glue_mrpc_pairs_with_stray_quotes_and_bad_rows(tmp_path):
    header = "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n"
    (tmp_path / "train.tsv").write_text(
        header + '1\t1\t2\tHe said "yes .\tHe agreed .\n'  # an unbalanced quote must not swallow lines
        + "0\t3\t4\tA cat .\tA stock fell .\n"
        + "7\t5\t6\tOdd label .\tStill odd .\n"  # outside the label set
        + "1\t7\t8\t \tEmpty first .\n"  # empty text
        + "1\t9\tonly three columns\n")  # malformed
    (tmp_path / "dev.tsv").write_text(header + "1\t1\t2\tSame .\tSame .\n")
    rows, counts = _run(tmp_path, _props(tmp_path, "glue_tsv", text="#1 String", text_b="#2 String", label="Quality"))
    assert sorted(rows["train"]) == [("A cat .", "A stock fell .", 0), ('He said "yes .', "He agreed .", 1)]
    assert counts["skipped_unknown_label"] == 1
    assert counts["skipped_empty_text"] == 1
    assert counts["skipped_malformed_row"] == 1


def test_csv_and_jsonl_with_label_names(tmp_path):
    (tmp_path / "train.csv").write_text('text,label\n"good, really",pos\nbad,neg\nmeh,neutral\n')
    (tmp_path / "dev.csv").write_text("text,label\nfine,pos\n")
    rows, counts = _run(tmp_path, _props(tmp_path, "csv", names='["neg", "pos"]'))
    assert sorted(rows["train"]) == [("bad", None, 0), ("good, really", None, 1)]
    assert counts["skipped_unknown_label"] == 1

    jsonl = tmp_path / "j"
    jsonl.mkdir()
    (jsonl / "train.jsonl").write_text('{"q": "is it", "p": "it is", "y": 1}\n{bad json\n["not", "an object"]\n'
                                       '{"q": "no label", "p": "x"}\n')
    (jsonl / "dev.jsonl").write_text('{"q": "a", "p": "b", "y": 0}\n')
    rows, counts = _run(tmp_path / "jj", _props(jsonl, "jsonl", text="q", text_b="p", label="y"))
    assert rows["train"] == [("is it", "it is", 1)] and rows["eval"] == [("a", "b", 0)]
    assert counts["skipped_invalid_json"] == 2 and counts["skipped_missing_field"] == 1


def test_strict_mode_names_file_and_line(tmp_path):
    (tmp_path / "train.csv").write_text("text,label\nok,1\nbad,9\n")
    (tmp_path / "dev.csv").write_text("text,label\nok,1\n")
    with pytest.raises(BadInputError, match=r"train.csv:3: unknown label: '9' not in 0..1"):
        _run(tmp_path, _props(tmp_path, "csv", strict=1))


def test_missing_columns_and_files_are_clear_errors(tmp_path):
    (tmp_path / "train.csv").write_text("sentence,label\nok,1\n")
    (tmp_path / "dev.csv").write_text("sentence,label\nok,1\n")
    with pytest.raises(BadInputError, match=r"header has no column\(s\) \['text'\]"):
        _run(tmp_path, _props(tmp_path, "csv"))
    with pytest.raises(FileNotFoundError, match="No input files match"):
        _run(tmp_path, _props(tmp_path, "csv", train="nothing*"))
