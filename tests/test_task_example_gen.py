"""TaskExampleGen: GLUE TSV (SST-2 and MRPC layouts), CSV, JSONL, CoNLL, SQuAD, BEIR and MS MARCO triples; bad records."""
import json
import os

import numpy as np
import pytest
from tfx.types import standard_artifacts

from tests.helpers import new_artifact, read_examples, run_executor, write_beir
from tfx_bert import tagging
from tfx_bert.records import BadInputError
from tfx_bert_app.components.task_example_gen import executor as ex


def _props(base, fmt, train="train*", eval_="dev*", text="text", text_b="", label="label", names="",
           num_classes=2, strict=0):
    return {ex.INPUT_BASE: str(base), ex.TRAIN_PATTERN: train, ex.EVAL_PATTERN: eval_, ex.INPUT_FORMAT: fmt,
            ex.TEXT_FIELD: text, ex.TEXT_B_FIELD: text_b, ex.LABEL_FIELD: label, ex.LABEL_NAMES: names,
            ex.NUM_CLASSES: num_classes, ex.STRICT: strict}


def _run(tmp_path, props, examples=None):
    examples = examples or new_artifact(standard_artifacts.Examples, tmp_path / "out")
    run_executor(ex.Executor, {}, {"examples": [examples]}, props, str(tmp_path / "tmp"))
    rows = {}
    for split in ("train", "eval", "validation", ex.SCORE):
        if not os.path.isdir(os.path.join(examples.uri, f"Split-{split}")):
            continue
        rows[split] = []
        for e in read_examples(os.path.join(examples.uri, f"Split-{split}", "*")):
            f = e.features.feature
            rows[split].append((f["text"].bytes_list.value[0].decode(),
                                f["text_b"].bytes_list.value[0].decode() if "text_b" in f else None,
                                f["label"].int64_list.value[0] if "label" in f else None))
    report = json.load(open(os.path.join(examples.uri, "ingestion_report.json")))
    return rows, report["counts"]


def test_glue_sst2_layout(tmp_path):
    (tmp_path / "train.tsv").write_text('sentence\tlabel\nit \'s a "charming" film \t1\nflat , dull\t0\n')
    (tmp_path / "dev.tsv").write_text("sentence\tlabel\na quiet triumph\t1\n")
    rows, counts = _run(tmp_path, _props(tmp_path, "glue_tsv", text="sentence"))
    assert sorted(rows["train"]) == [("flat , dull", None, 0), ('it \'s a "charming" film', None, 1)]
    assert rows["eval"] == [("a quiet triumph", None, 1)]
    assert counts["train_records"] == 2 and counts["eval_records"] == 1


def test_score_pattern_reads_unlabelled_rows_into_one_split_and_counts_bad_ones(tmp_path):
    """Batch scoring's input: GLUE's test.tsv layout (no label column); a row of the wrong width and
    an empty text are skipped and counted, the rest kept; train/eval patterns are not read."""
    (tmp_path / "test.tsv").write_text("index\tsentence\n0\ta quiet triumph\n1\tone\textra\n2\t \n3\tflat , dull\n")
    props = {**_props(tmp_path, "glue_tsv", train="missing*", eval_="missing*", text="sentence", label=""),
             ex.SCORE_PATTERN: str(tmp_path / "test.tsv")}
    rows, counts = _run(tmp_path, props)
    assert list(rows) == [ex.SCORE]
    assert sorted(rows[ex.SCORE]) == [("a quiet triumph", None, None), ("flat , dull", None, None)]
    assert counts == {"score_records": 2, "skipped_empty_text": 1, "skipped_malformed_row": 1}


def test_validation_is_held_out_of_train_by_content_or_read_from_its_own_files(tmp_path):
    lines = [f"text number {i} .,{i % 2}" for i in range(200)]
    (tmp_path / "train.csv").write_text("text,label\n" + "\n".join(lines + lines[:20]) + "\n")  # 20 duplicated
    (tmp_path / "dev.csv").write_text("text,label\nan eval row .,1\n")
    rows, counts = _run(tmp_path, {**_props(tmp_path, "csv", "train*", "dev*"), ex.VALIDATION_PERCENT: 10})
    held, kept = set(rows["validation"]), set(rows["train"])
    assert not held & kept and len(held | kept) == 200  # a record (and its duplicate) on one side only
    assert 10 <= len(held) <= 35 and counts["validation_records"] + counts["train_records"] == 220
    import tensorflow as tf

    def example(text, label):  # as the reader writes a row: the hash is of its content only
        e = tf.train.Example()
        e.features.feature["text"].bytes_list.value.append(text.encode())
        e.features.feature["label"].int64_list.value.append(label)
        return e

    assert {r for r in rows["train"] + rows["validation"] if ex.held_out(example(r[0], r[2]), 10)} == held  # stable
    (tmp_path / "val-empty.csv").write_text("text,label\n")
    # validation_pattern wins over the percentage (its files are the split); one that holds no
    # records is an error naming them.
    with pytest.raises(ValueError, match="No validation records were read from .*val-empty.csv"):
        _run(tmp_path / "none", {**_props(tmp_path, "csv", "dev*", "dev*"), ex.VALIDATION_PATTERN: "val-empty*",
                                 ex.VALIDATION_PERCENT: 10})


def test_span_patterns_read_the_selected_spans_and_record_them_on_the_artifact(tmp_path):
    for span in (1, 2, 3):
        (tmp_path / f"span-{span}").mkdir()
        (tmp_path / f"span-{span}" / "train.csv").write_text(f"text,label\nfrom span {span} .,1\n")
    (tmp_path / "dev.csv").write_text("text,label\nthe fixed eval set .,0\n")
    examples = new_artifact(standard_artifacts.Examples, tmp_path / "out")
    rows, _ = _run(tmp_path, {**_props(tmp_path, "csv", "span-{SPAN}/*.csv", "dev*"), ex.SPAN_RANGE: "rolling:2"},
                   examples)
    assert sorted(rows["train"]) == [("from span 2 .", None, 1), ("from span 3 .", None, 1)]
    assert rows["eval"] == [("the fixed eval set .", None, 0)]
    assert examples.span == 3 and list(examples.get_json_value_custom_property("spans")) == [2, 3]
    with pytest.raises(ValueError, match="No span matches the train pattern"):
        _run(tmp_path / "none", _props(tmp_path, "csv", "drop-{SPAN}/*.csv", "dev*"))


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


TYPES = ["PER", "LOC"]


def _conll_props(base, strict=0, scheme="iob1"):
    return {ex.INPUT_BASE: str(base), ex.TRAIN_PATTERN: "train.txt", ex.EVAL_PATTERN: "dev.txt",
            ex.INPUT_FORMAT: "conll", ex.TEXT_FIELD: "", ex.TEXT_B_FIELD: "", ex.LABEL_FIELD: "",
            ex.LABEL_NAMES: json.dumps(TYPES), ex.NUM_CLASSES: 2, ex.STRICT: strict, ex.TAG_SCHEME: scheme}


def test_conll_ingestion_converts_iob1_and_counts_bad_sentences(tmp_path):
    (tmp_path / "train.txt").write_text(
        "-DOCSTART- -X- -X- O\n\n"
        "Anna NNP B-NP I-PER\nflew VBD B-VP O\nto TO B-PP O\nNew NNP B-NP I-LOC\nYork NNP I-NP I-LOC\n\n"
        "Bad\nline O\n\n"  # a line without a tag column: the sentence is skipped
        "Acme NNP B-NP I-ORG\n\n"  # ORG is not an entity type here
        "Paris NNP B-NP I-LOC\nParis NNP B-NP B-LOC\n")  # IOB1: B- separates adjacent entities
    (tmp_path / "dev.txt").write_text("Anna NNP B-NP I-PER\n")
    examples = new_artifact(standard_artifacts.Examples, tmp_path / "out")
    run_executor(ex.Executor, {}, {"examples": [examples]}, _conll_props(tmp_path), str(tmp_path / "tmp"))
    rows = [(list(e.features.feature["tokens"].bytes_list.value), list(e.features.feature["tags"].int64_list.value),
             e.features.feature["text"].bytes_list.value[0].decode())
            for e in read_examples(os.path.join(examples.uri, "Split-train", "*"))]
    names = tagging.tag_names(TYPES)
    by_text = {text: [names[t] for t in tags] for _, tags, text in rows}
    assert by_text == {"Anna flew to New York": ["B-PER", "O", "O", "B-LOC", "I-LOC"],
                       "Paris Paris": ["B-LOC", "B-LOC"]}
    counts = json.load(open(os.path.join(examples.uri, "ingestion_report.json")))["counts"]
    assert counts["skipped_malformed_line"] == 1 and counts["skipped_unknown_label"] == 1


def test_conll_strict_mode_names_the_line(tmp_path):
    (tmp_path / "train.txt").write_text("Anna B-PER\nwent O\n\nX S-PER\n")
    (tmp_path / "dev.txt").write_text("Anna B-PER\n")
    examples = new_artifact(standard_artifacts.Examples, tmp_path / "out")
    with pytest.raises(BadInputError, match=r"train.txt:4: invalid tag: tag 'S-PER' is not valid IOB2"):
        run_executor(ex.Executor, {}, {"examples": [examples]}, _conll_props(tmp_path, strict=1, scheme="iob2"),
                     str(tmp_path / "tmp"))


def _squad_props(base, strict=0):
    return {ex.INPUT_BASE: str(base), ex.TRAIN_PATTERN: "train.json", ex.EVAL_PATTERN: "dev.json",
            ex.INPUT_FORMAT: "squad", ex.TEXT_FIELD: "", ex.TEXT_B_FIELD: "", ex.LABEL_FIELD: "",
            ex.LABEL_NAMES: "", ex.NUM_CLASSES: 2, ex.STRICT: strict}


def _write_squad(path, qas, context="Anna bakes the warm bread. Boris boils the soup."):
    path.write_text(json.dumps({"version": "v2.0", "data": [{"title": "t", "paragraphs": [
        {"context": context, "qas": qas}]}]}))


def test_squad_ingestion_counts_bad_answers_and_keeps_unanswerable(tmp_path):
    _write_squad(tmp_path / "train.json", [
        {"id": "ok", "question": "What does Anna bake?", "answers": [{"text": "warm bread", "answer_start": 15}]},
        {"id": "moved", "question": "What?", "answers": [{"text": "warm bread", "answer_start": 3}]},
        {"id": "none", "question": "What does Chen bake?", "answers": [], "is_impossible": True},
        {"id": "empty", "question": " ", "answers": [{"text": "soup", "answer_start": 43}]},
    ])
    _write_squad(tmp_path / "dev.json", [{"id": "d", "question": "Who?", "answers": [{"text": "Anna", "answer_start": 0}]}])
    examples = new_artifact(standard_artifacts.Examples, tmp_path / "out")
    run_executor(ex.Executor, {}, {"examples": [examples]}, _squad_props(tmp_path), str(tmp_path / "tmp"))
    rows = {e.features.feature["question_id"].bytes_list.value[0].decode(): e.features.feature
            for e in read_examples(os.path.join(examples.uri, "Split-train", "*"))}
    assert sorted(rows) == ["none", "ok"]
    ok = rows["ok"]
    assert ok["answer_texts"].bytes_list.value == [b"warm bread"]
    assert (ok["answer_start"].int64_list.value[0], ok["answer_end"].int64_list.value[0]) == (15, 25)
    assert list(rows["none"]["answer_texts"].bytes_list.value) == []
    assert rows["none"]["answer_start"].int64_list.value == [-1]
    counts = json.load(open(os.path.join(examples.uri, "ingestion_report.json")))["counts"]
    assert counts["bad_answer_start"] == 1 and counts["skipped_no_valid_answer"] == 1
    assert counts["skipped_empty_text"] == 1 and counts["unanswerable"] == 1 and counts["train_records"] == 2


def test_squad_strict_mode_names_the_question(tmp_path):
    _write_squad(tmp_path / "train.json", [{"id": "q7", "question": "What?", "answers": [{"text": "soup", "answer_start": 1}]}])
    _write_squad(tmp_path / "dev.json", [])
    examples = new_artifact(standard_artifacts.Examples, tmp_path / "out")
    with pytest.raises(BadInputError, match=r"train.json: question q7: answer 'soup' is not at answer_start 1"):
        run_executor(ex.Executor, {}, {"examples": [examples]}, _squad_props(tmp_path, strict=1), str(tmp_path / "tmp"))


def _example_gen_props(tmp_path, fmt, train, dev, num_negatives=2):
    return {ex.INPUT_BASE: str(tmp_path), ex.TRAIN_PATTERN: train, ex.EVAL_PATTERN: dev, ex.INPUT_FORMAT: fmt,
            ex.TEXT_FIELD: "", ex.TEXT_B_FIELD: "", ex.LABEL_FIELD: "", ex.LABEL_NAMES: "", ex.NUM_CLASSES: 2,
            ex.STRICT: 0, ex.NUM_NEGATIVES: num_negatives, ex.NEGATIVE_POOL: 8}


def test_beir_example_gen_writes_pairs_with_negatives_and_counts_bad_qrels(tmp_path):
    corpus, queries = write_beir(tmp_path, {"train": ["q1\td1\t1", "q1\td2\t2", "q9\td1\t1", "q2\td404\t1"],
                                             "dev": ["q3\td5\t1"]})
    examples = new_artifact(standard_artifacts.Examples, tmp_path / "out")
    run_executor(ex.Executor, {}, {"examples": [examples]},
                 _example_gen_props(tmp_path, "beir", "qrels/train.tsv", "qrels/dev.tsv"), str(tmp_path / "tmp"))
    train = read_examples(os.path.join(examples.uri, "Split-train", "*"))
    rows = sorted((e.features.feature["doc_id"].bytes_list.value[0].decode(),
                   e.features.feature["label"].int64_list.value[0],
                   [n.decode() for n in e.features.feature["negative_ids"].bytes_list.value]) for e in train)
    assert [(d, r) for d, r, _ in rows] == [("d1", 1), ("d2", 2)]
    assert all(len(negs) == 2 and not {"d1", "d2"} & set(negs) for _, _, negs in rows)
    first = train[0].features.feature
    assert first["query"].bytes_list.value[0].decode() == queries["q1"]
    assert first["text"].bytes_list.value[0].decode() == corpus[first["doc_id"].bytes_list.value[0].decode()]
    counts = json.load(open(os.path.join(examples.uri, "ingestion_report.json")))["counts"]
    assert counts["skipped_unknown_query_id"] == 1 and counts["skipped_unknown_doc_id"] == 1
    assert counts["train_records"] == 2 and counts["eval_records"] == 1
    # Both splits read the same corpus and queries: counted once, not once per split.
    assert (counts["docs"], counts["querys"]) == (len(corpus), len(queries)), counts


def test_beir_example_gen_mines_bm25_negatives_over_the_whole_corpus(tmp_path):
    from tfx_bert import beir, mining

    corpus = {"d1": "the chef bakes bread in the oven", "d2": "the chef bakes a cake", "d3": "the rocket orbits the moon",
              "d4": "a sailor sails a boat", "d5": "a sailor and his boat", "d6": "bread and cake for the chef",
              "d7": "the moon is bright", "d8": "rocket fuel", "d9": "a boat on the lake"}
    write_beir(tmp_path, {"train": ["q1\td1\t1", "q2\td3\t1", "q3\td4\t1"], "dev": ["q3\td5\t1"]}, corpus=corpus)
    examples = new_artifact(standard_artifacts.Examples, tmp_path / "out")
    settings = {"num_negatives": 2, "rank_min": 1, "rank_max": 6, "margin": 0.0}
    props = {**_example_gen_props(tmp_path, "beir", "qrels/train.tsv", "qrels/dev.tsv"),
             ex.NEGATIVE_MINING: json.dumps(settings)}
    run_executor(ex.Executor, {}, {"examples": [examples]}, props, str(tmp_path / "tmp"))
    written = {e.features.feature["query_id"].bytes_list.value[0].decode():
               [n.decode() for n in e.features.feature["negative_ids"].bytes_list.value]
               for e in read_examples(os.path.join(examples.uri, "Split-train", "*"))}
    # What the library mines from the same data, short lists filled from the seeded sample.
    data = beir.read_beir(str(tmp_path), qrels_path=str(tmp_path / "qrels" / "train.tsv"))
    mined = mining.mine(data.queries, data.qrels, *mining.bm25_miner(data.corpus), mining.MiningSettings(**settings))
    assert any(mined.values())  # the data has lexical overlap to mine
    expected = {p.query_id: p.negative_ids for p in beir.training_pairs(data, 2, 8, mined)}
    assert written == expected and all(w[:len(mined[q])] == mined[q][:2] for q, w in written.items())
    assert all(len(n) == 2 and not {"d1", "d3", "d4"} & set(n) for n in written.values())


def test_beir_example_gen_mines_with_a_dense_model_so_a_reranker_sees_its_candidates(tmp_path):
    import tensorflow as tf

    from tests.helpers import ranking_tokenizer, tiny_backbone
    from tfx_bert import beir, mining
    from tfx_bert_app.models import retrieval
    from tfx_bert_app.models.keras_layers import build_sentence_encoder

    tokenizer = ranking_tokenizer()
    tf.keras.utils.set_random_seed(0)
    tower = build_sentence_encoder(tiny_backbone(tokenizer.vocabulary_size), "mean")
    model_dir = str(tmp_path / "dual")
    retrieval.export_dual_encoder(tower, tower, model_dir, tokenizer, 16, 8)
    write_beir(tmp_path / "data", {"train": ["q1\td1\t1", "q2\td3\t1"], "dev": ["q3\td5\t1"]})
    examples = new_artifact(standard_artifacts.Examples, tmp_path / "out")
    settings = {"num_negatives": 2, "rank_min": 1, "rank_max": 8}
    props = {**_example_gen_props(tmp_path / "data", "beir", "qrels/train.tsv", "qrels/dev.tsv"),
             ex.NEGATIVE_MINING: json.dumps({"miner": "dense", "model": model_dir, **settings})}
    run_executor(ex.Executor, {}, {"examples": [examples]}, props, str(tmp_path / "tmp"))
    written = {e.features.feature["query_id"].bytes_list.value[0].decode():
               [n.decode() for n in e.features.feature["negative_ids"].bytes_list.value]
               for e in read_examples(os.path.join(examples.uri, "Split-train", "*"))}
    # The served model's own ranking: embed the corpus and the queries, drop the positive, skip rank 0.
    data = beir.read_beir(str(tmp_path / "data"), qrels_path=str(tmp_path / "data" / "qrels" / "train.tsv"))
    served = tf.saved_model.load(model_dir).signatures
    ids = sorted(data.corpus)
    docs = served["embed"](text=tf.constant([data.corpus[d] for d in ids]))["embedding"].numpy()
    for query_id, negatives in written.items():
        query = served["embed_query"](text=tf.constant([data.queries[query_id]]))["embedding"].numpy()[0]
        positive = next(iter(data.qrels[query_id]))
        ranked = [ids[i] for i in np.argsort(-(docs @ query), kind="stable") if ids[i] != positive]
        assert negatives == ranked[1:3]
    # hybrid: the same model's ranking fused with BM25's, as `retrieve --mode hybrid` fuses them.
    hybrid_examples = new_artifact(standard_artifacts.Examples, tmp_path / "hybrid")
    run_executor(ex.Executor, {}, {"examples": [hybrid_examples]},
                 {**props, ex.NEGATIVE_MINING: json.dumps({"miner": "hybrid", "model": model_dir, **settings})},
                 str(tmp_path / "tmp-hybrid"))
    fused = mining.hybrid_miner(mining.saved_model_miner(model_dir, data.corpus), mining.bm25_miner(data.corpus))
    expected = mining.mine(data.queries, data.qrels, *fused, mining.MiningSettings(**settings))
    assert {e.features.feature["query_id"].bytes_list.value[0].decode():
            [n.decode() for n in e.features.feature["negative_ids"].bytes_list.value]
            for e in read_examples(os.path.join(hybrid_examples.uri, "Split-train", "*"))} == expected
    assert expected != written  # the fusion moved something: the test tells the two miners apart
    with pytest.raises(ValueError, match="not a loadable SavedModel"):
        mining.saved_model_miner(str(tmp_path / "nothing"), data.corpus)


def test_msmarco_triples_need_one_negative(tmp_path):
    (tmp_path / "triples.tsv").write_text("a moon\tthe moon orbits\tthe chef bakes\n")
    examples = new_artifact(standard_artifacts.Examples, tmp_path / "out")
    with pytest.raises(Exception, match="num_negatives=1") as error:
        run_executor(ex.Executor, {}, {"examples": [examples]},
                     _example_gen_props(tmp_path, "msmarco_triples", "triples.tsv", "triples.tsv", 3),
                     str(tmp_path / "tmp"))
    assert "triples.tsv" in str(error.value) or isinstance(error.value, BadInputError)


def test_slice_fields_are_kept_as_string_features_and_a_row_without_one_gets_an_empty_value(tmp_path):
    (tmp_path / "train.csv").write_text("text,label,source\ngood,1,web\nbad,0,\n")
    (tmp_path / "dev.csv").write_text("text,label,source\nfine,1,web\n")
    (tmp_path / "j").mkdir()
    (tmp_path / "j" / "dev.jsonl").write_text('{"text": "fine", "label": 1, "source": "forum", "year": 2020}\n'
                                              '{"text": "poor", "label": 0}\n')
    props = {**_props(tmp_path, "csv"), ex.SLICE_FIELDS: json.dumps(["source"])}
    examples = new_artifact(standard_artifacts.Examples, tmp_path / "out")
    run_executor(ex.Executor, {}, {"examples": [examples]}, props, str(tmp_path / "tmp"))
    train = read_examples(os.path.join(examples.uri, "Split-train", "*"))
    assert sorted((e.features.feature["text"].bytes_list.value[0], e.features.feature["source"].bytes_list.value[0])
                  for e in train) == [(b"bad", b""), (b"good", b"web")]
    jsonl = {**_props(tmp_path / "j", "jsonl", train="dev.jsonl", eval_="dev.jsonl"),
             ex.SLICE_FIELDS: json.dumps(["source", "year"])}
    out = new_artifact(standard_artifacts.Examples, tmp_path / "out2")
    run_executor(ex.Executor, {}, {"examples": [out]}, jsonl, str(tmp_path / "tmp2"))
    rows = {e.features.feature["text"].bytes_list.value[0]: (e.features.feature["source"].bytes_list.value[0],
                                                            e.features.feature["year"].bytes_list.value[0])
            for e in read_examples(os.path.join(out.uri, "Split-eval", "*"))}
    assert rows == {b"fine": (b"forum", b"2020"), b"poor": (b"", b"")}
