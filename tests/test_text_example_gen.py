import gzip
import json
import os

import pytest
import tensorflow as tf
from tfx.types import standard_artifacts

from tests.helpers import new_artifact, read_examples, run_executor
from tfx_bert_app.components.text_example_gen import executor as ex
from tfx_bert_app.components.text_example_gen.component import TextExampleGen


def _props(pattern, fmt="bert_raw", **kw):
    props = {ex.INPUT_PATTERN: pattern, ex.INPUT_FORMAT: fmt, ex.TEXT_FIELD: "text", ex.ID_FIELD: "",
             ex.EVAL_PERCENT: 30, ex.MAX_LINE_CHARS: 200, ex.STRICT: 0, ex.PER_LINE: 0}
    props.update(kw)
    return props


def _run(tmp_path, props, name="out"):
    examples = new_artifact(standard_artifacts.Examples, tmp_path / name)
    run_executor(ex.Executor, {}, {"examples": [examples]}, props, str(tmp_path / "tmp"))
    docs = {}
    for split in ("train", "eval"):
        for e in read_examples(os.path.join(examples.uri, f"Split-{split}", "*")):
            f = e.features.feature
            docs[f["doc_id"].bytes_list.value[0].decode()] = (split, f["text"].bytes_list.value[0].decode())
    report = json.load(open(os.path.join(examples.uri, "ingestion_report.json")))
    return examples, docs, report


def _write_corpus(directory, n_docs=20):
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "a.txt"), "w") as f:
        for d in range(n_docs):
            f.write(f"doc {d} sentence one.\ndoc {d} sentence two.\n\n\n")
    with gzip.open(os.path.join(directory, "b.txt.gz"), "wt") as f:
        f.write("gz doc first.\nsecond line.\n\ngz doc two.\n")


def test_bert_raw_documents_splits_and_report(tmp_path):
    _write_corpus(tmp_path / "in")
    examples, docs, report = _run(tmp_path, _props(str(tmp_path / "in" / "*")))
    assert len(docs) == 22
    assert docs["a.txt:3"][1] == "doc 3 sentence one.\ndoc 3 sentence two."
    assert docs["b.txt.gz:1"][1] == "gz doc two."
    assert {s for s, _ in docs.values()} == {"train", "eval"}
    for doc_id, (split, _) in docs.items():
        assert split == ex.split_for(doc_id, 30)  # a pure function of the id: stable across runs
    assert report["counts"]["documents"] == 22
    assert report["counts"]["train_documents"] + report["counts"]["eval_documents"] == 22
    assert examples.split_names == '["train", "eval"]'


def test_bad_lines_are_skipped_and_counted(tmp_path):
    os.makedirs(tmp_path / "in")
    (tmp_path / "in" / "c.txt").write_bytes(
        b"good one.\nbad \xff\xfe bytes.\n" + b"x" * 300 + b"\nstill good.\n\n\xff\n\nlast doc.\n")
    _, docs, report = _run(tmp_path, _props(str(tmp_path / "in" / "*")))
    assert sorted(t for _, t in docs.values()) == ["good one.\nstill good.", "last doc."]
    assert report["counts"]["skipped_invalid_utf8"] == 2
    assert report["counts"]["skipped_overlong_line"] == 1
    assert report["counts"]["skipped_empty_document"] == 1


def test_strict_mode_names_file_and_line(tmp_path):
    os.makedirs(tmp_path / "in")
    (tmp_path / "in" / "c.txt").write_bytes(b"fine.\n\nbad \xff here\n")
    with pytest.raises(Exception, match=r"c\.txt:3: invalid utf8"):
        _run(tmp_path, _props(str(tmp_path / "in" / "*"), **{ex.STRICT: 1}))


def test_jsonl_csv_and_tfrecord_inputs(tmp_path):
    os.makedirs(tmp_path / "in")
    (tmp_path / "in" / "d.jsonl").write_text(
        json.dumps({"id": "x1", "body": "hello there"}) + "\n" + json.dumps({"id": "x2"}) + "\n{not json\n")
    _, docs, report = _run(tmp_path, _props(str(tmp_path / "in" / "*.jsonl"), "jsonl",
                                            **{ex.TEXT_FIELD: "body", ex.ID_FIELD: "id"}), "j")
    assert list(docs) == ["x1"]
    assert report["counts"]["skipped_missing_field"] == 1 and report["counts"]["skipped_invalid_json"] == 1

    (tmp_path / "in" / "e.csv").write_text('text,label\n"a, quoted text",1\nplain,0\nbroken\n')
    _, docs, report = _run(tmp_path, _props(str(tmp_path / "in" / "*.csv"), "csv"), "c")
    assert sorted(t for _, t in docs.values()) == ["a, quoted text", "plain"]
    assert report["counts"]["skipped_malformed_row"] == 1

    with tf.io.TFRecordWriter(str(tmp_path / "in" / "f.tfrecord")) as w:
        e = tf.train.Example()
        e.features.feature["text"].bytes_list.value.append("from a record".encode())
        w.write(e.SerializeToString())
    _, docs, _ = _run(tmp_path, _props(str(tmp_path / "in" / "*.tfrecord"), "tfrecord"), "t")
    assert [t for _, t in docs.values()] == ["from a record"]


def test_no_input_files_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="No input files match"):
        _run(tmp_path, _props(str(tmp_path / "missing" / "*")))


def test_component_rejects_unknown_format():
    with pytest.raises(ValueError, match="input_format 'xml' is not one of"):
        TextExampleGen(input_pattern="x", input_format="xml")
