"""Extractive QA building blocks: SQuAD windows with doc_stride, answer labels, in-graph span
decoding (against a brute-force reference), SQuAD ingestion, the TFMA metric (against the
official definitions) and the serving export (raw text in, TF Serving's op set)."""
import collections
import json
import os
import random

import numpy as np
import pytest
import tensorflow as tf
from tfx.types import standard_artifacts

from tfx_bert_app.models import qa, qa_metrics, qa_spans
from tests.helpers import new_artifact, read_examples, run_executor
from tfx_bert import demo_data, squad, tokenization

WORDS = "anna boris bakes boils the warm fresh bread soup oven what is it that".split()


@pytest.fixture(scope="module")
def tokenizer():
    # Names outside the vocabulary split into single characters: many pieces per word.
    letters = [c for c in "abcdefghijklmnopqrstuvwxyz"] + [f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz"]
    return tokenization.WordPieceTokenizer(tokenization.reserved_tokens() + WORDS + letters + [".", "?", ","])


def _contexts(n, seed=0):
    rng = random.Random(seed)
    paragraphs = [demo_data._qa_paragraph(rng, i, 0.3) for i in range(n)]
    return [(p["context"], qa_) for p in paragraphs for qa_ in p["qas"]]


def test_windows_cover_the_context_with_doc_stride_and_label_the_answer(tokenizer):
    pairs = _contexts(40)
    questions = [q["question"] for _, q in pairs]
    contexts = [c for c, _ in pairs]
    starts = [q["answers"][0]["answer_start"] if q["answers"] else -1 for _, q in pairs]
    ends = [s + len(q["answers"][0]["text"]) if q["answers"] else -1 for s, (_, q) in zip(starts, pairs)]
    seq_len, stride, max_query = 40, 8, 12
    w = qa_spans.make_windows(tokenizer, tf.constant(questions), tf.constant(contexts), seq_len, stride, max_query,
                              answer_starts=tf.constant(starts), answer_ends=tf.constant(ends))
    ids, segments = w["token_ids"].numpy(), w["segment_ids"].numpy()
    example = w["example_index"].numpy()
    context_ids, _, _ = qa_spans.context_pieces(tokenizer, tf.constant(contexts))
    multi_window = 0
    for q in range(len(pairs)):
        rows = np.flatnonzero(example == q)
        pieces = context_ids[q].numpy().tolist()
        question = tokenizer.tokenize(tf.constant([questions[q]]))[0].numpy().tolist()[:max_query]
        room = seq_len - 3 - len(question)
        covered = []
        for k, row in enumerate(rows):
            tokens = ids[row][w["padding_mask"].numpy()[row]].tolist()
            assert tokens[:len(question) + 2] == [tokenizer.cls_id] + question + [tokenizer.sep_id]
            window = tokens[len(question) + 2:-1]
            assert tokens[-1] == tokenizer.sep_id and len(window) <= room
            assert window == pieces[k * min(stride, room):k * min(stride, room) + len(window)]  # starts every stride
            assert set(segments[row][len(question) + 2:len(tokens)]) == {1}
            covered.append(k * min(stride, room) + len(window))
        assert max(covered) == len(pieces)  # the whole context, and no window past it
        multi_window += len(rows) > 1
        labelled = [(w["start_positions"][r].numpy(), w["end_positions"][r].numpy()) for r in rows]
        if starts[q] < 0:
            assert all(p == (0, 0) for p in labelled)
            continue
        answer = pairs[q][1]["answers"][0]["text"]
        found = 0
        for r, (s, e) in zip(rows, labelled):
            if s == 0:
                assert e == 0
                continue
            chars = w["char_starts"][r].numpy()[s], w["char_ends"][r].numpy()[e]
            assert contexts[q][chars[0]:chars[1]] == answer  # the labelled pieces are the answer's words
            found += 1
        assert found >= 1  # every window holding the whole answer labels it
    assert multi_window > 10  # the test exercises doc_stride


def test_max_windows_keeps_the_first_windows(tokenizer):
    context = " ".join(["anna bakes the warm bread ."] * 30)
    full = qa_spans.make_windows(tokenizer, tf.constant(["what"]), tf.constant([context]), 32, 10, 8)
    capped = qa_spans.make_windows(tokenizer, tf.constant(["what"]), tf.constant([context]), 32, 10, 8, max_windows=3)
    assert full["token_ids"].shape[0] > 3 and capped["token_ids"].shape[0] == 3
    np.testing.assert_array_equal(capped["token_ids"].numpy(), full["token_ids"].numpy()[:3])
    with pytest.raises(ValueError, match="max_query_length 30 leaves no room"):
        qa_spans.make_windows(tokenizer, tf.constant(["what"]), tf.constant([context]), 32, 10, 30)


def _reference_spans(start, end, windows, contexts, max_answer_length, n_best, threshold):
    """Brute force over every window's (i, j) in plain Python: the n best distinct character
    spans of each question, and run_squad.py's no-answer rule."""
    example = windows["example_index"].numpy()
    char_starts, char_ends = windows["char_starts"].numpy(), windows["char_ends"].numpy()
    results = []
    for q, context in enumerate(contexts):
        candidates, nulls = {}, []
        for row in np.flatnonzero(example == q):
            nulls.append(start[row, 0] + end[row, 0])
            cs = list(char_starts[row])
            # A span starts at a word's first piece in the window and ends at its last.
            first = [cs[i] >= 0 and (i == 0 or cs[i - 1] != cs[i]) for i in range(len(cs))]
            last = [cs[j] >= 0 and (j + 1 == len(cs) or cs[j + 1] != cs[j]) for j in range(len(cs))]
            for i in range(start.shape[1]):
                for j in range(i, min(start.shape[1], i + max_answer_length)):
                    if not (first[i] and last[j]):
                        continue
                    span = (int(char_starts[row, i]), int(char_ends[row, j]))
                    candidates[span] = max(candidates.get(span, -np.inf), start[row, i] + end[row, j])
        best = sorted(candidates.items(), key=lambda kv: -kv[1])[:n_best]
        null = min(nulls)
        answered = null - best[0][1] <= threshold
        results.append({"nbest": [(context[s:e], s, e, score) for (s, e), score in best], "null": null,
                        "answer": context[best[0][0][0]:best[0][0][1]] if answered else ""})
    return results


def test_span_decoding_matches_brute_force(tokenizer):
    pairs = _contexts(12, seed=3)
    contexts = [c for c, _ in pairs]
    questions = [q["question"] for _, q in pairs]
    windows = qa_spans.make_windows(tokenizer, tf.constant(questions), tf.constant(contexts), 36, 9, 12)
    rng = np.random.default_rng(1)
    n = windows["token_ids"].shape[0]
    start, end = rng.normal(size=(n, 36)).astype("float32"), rng.normal(size=(n, 36)).astype("float32")
    for threshold in (-1.0, 0.0, 2.0):
        out = qa_spans.best_spans(tf.constant(start), tf.constant(end), windows, len(contexts), tf.constant(contexts),
                                  max_answer_length=4, n_best=5, no_answer_threshold=threshold)
        reference = _reference_spans(start, end, windows, contexts, 4, 5, threshold)
        for q, ref in enumerate(reference):
            got = [(t.decode(), int(s), int(e), float(v)) for t, s, e, v in zip(
                out["nbest_texts"][q].numpy(), out["nbest_starts"][q].numpy(), out["nbest_ends"][q].numpy(),
                out["nbest_scores"][q].numpy())]
            assert [g[:3] for g in got] == [r[:3] for r in ref["nbest"]]
            assert [g[3] for g in got] == pytest.approx([r[3] for r in ref["nbest"]], abs=1e-5)
            assert out["no_answer_score"][q].numpy() == pytest.approx(ref["null"], abs=1e-5)
            assert out["answer_text"][q].numpy().decode() == ref["answer"]
            s, e = out["answer_start"][q].numpy(), out["answer_end"][q].numpy()
            assert (contexts[q][s:e] if s >= 0 else "") == ref["answer"]
            probabilities = out["nbest_probabilities"][q].numpy()
            assert probabilities.sum() == pytest.approx(1.0, abs=1e-5) and list(probabilities) == sorted(probabilities)[::-1]


def test_numpy_window_decoding_agrees_with_the_graph(tokenizer):
    """The Trainer tunes the no-answer threshold with a numpy decoder; it must pick the same
    spans as the serving graph."""
    pairs = _contexts(10, seed=4)
    contexts = [c for c, _ in pairs]
    windows = qa_spans.make_windows(tokenizer, tf.constant([q["question"] for _, q in pairs]),
                                    tf.constant(contexts), 36, 9, 12)
    rng = np.random.default_rng(2)
    n = windows["token_ids"].shape[0]
    logits = rng.normal(size=(n, 36, 2))
    null, best, start, end = qa._window_answers(
        logits, windows["token_ids"].numpy(), windows["segment_ids"].numpy(), windows["padding_mask"].numpy(),
        4, tokenizer.vocab)
    out = qa_spans.best_spans(tf.constant(logits[:, :, 0], tf.float32), tf.constant(logits[:, :, 1], tf.float32),
                              windows, len(contexts), tf.constant(contexts), 4, 1, 0.0)
    example = windows["example_index"].numpy()
    for q in range(len(contexts)):
        rows = np.flatnonzero(example == q)
        top = rows[np.argmax(best[rows])]
        span = windows["char_starts"].numpy()[top, start[top]], windows["char_ends"].numpy()[top, end[top]]
        assert span == (out["nbest_starts"][q, 0].numpy(), out["nbest_ends"][q, 0].numpy())
        assert null[rows].min() == pytest.approx(out["no_answer_score"][q].numpy(), abs=1e-4)


def _squad_props(base, strict=0):
    from tfx_bert_app.components.task_example_gen import executor as ex

    return {ex.INPUT_BASE: str(base), ex.TRAIN_PATTERN: "train.json", ex.EVAL_PATTERN: "dev.json",
            ex.INPUT_FORMAT: "squad", ex.TEXT_FIELD: "", ex.TEXT_B_FIELD: "", ex.LABEL_FIELD: "",
            ex.LABEL_NAMES: "", ex.NUM_CLASSES: 2, ex.STRICT: strict}


def _write_squad(path, qas, context="Anna bakes the warm bread. Boris boils the soup."):
    path.write_text(json.dumps({"version": "v2.0", "data": [{"title": "t", "paragraphs": [
        {"context": context, "qas": qas}]}]}))


def test_squad_ingestion_counts_bad_answers_and_keeps_unanswerable(tmp_path):
    from tfx_bert_app.components.task_example_gen import executor as ex

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
    from tfx_bert_app.components.task_example_gen import executor as ex
    from tfx_bert_app.components.text_example_gen.executor import BadInputError

    _write_squad(tmp_path / "train.json", [{"id": "q7", "question": "What?", "answers": [{"text": "soup", "answer_start": 1}]}])
    _write_squad(tmp_path / "dev.json", [])
    examples = new_artifact(standard_artifacts.Examples, tmp_path / "out")
    with pytest.raises(BadInputError, match=r"train.json: question q7: answer 'soup' is not at answer_start 1"):
        run_executor(ex.Executor, {}, {"examples": [examples]}, _squad_props(tmp_path, strict=1), str(tmp_path / "tmp"))


def test_tfma_squad_metric_matches_the_official_definitions():
    from tensorflow_model_analysis.metrics import metric_types

    rng = random.Random(8)
    pairs = _contexts(30, seed=6)
    (computation,) = qa_metrics.SquadMetrics().computations()
    combiner = computation.combiner
    accumulator = combiner.create_accumulator()
    predictions, gold = {}, {}
    for n, (context, question) in enumerate(pairs):
        answers = [a["text"] for a in question["answers"]]
        if answers and rng.random() < 0.5:
            start = question["answers"][0]["answer_start"] + rng.choice([0, 0, 2, -4])
            end = start + len(answers[0]) + rng.choice([0, 5])
        else:
            start, end = (rng.randrange(len(context) - 5), 0) if rng.random() < 0.5 else (-1, -1)
            end = start + 5 if start >= 0 else -1
        predictions[str(n)] = context[start:end] if start >= 0 else ""
        gold[str(n)] = answers
        features = {"context": np.array([context.encode()], dtype=object),
                    "answer_texts": np.array([a.encode() for a in answers], dtype=object)}
        element = metric_types.StandardMetricInputs(prediction=np.array([start, end]), features=features)
        accumulator = combiner.add_input(accumulator, element)
    result = {k.name: v for k, v in combiner.extract_output(combiner.merge_accumulators([accumulator])).items()}
    expected = squad.evaluate(predictions, gold)
    assert result["squad_f1"] == pytest.approx(expected["f1"])
    assert result["squad_exact_match"] == pytest.approx(expected["exact_match"])
    assert 0 < expected["exact_match"] < 100


def test_export_serves_raw_question_and_context_with_tf_serving_ops(tmp_path, tokenizer):
    import keras_hub

    from tfx_bert.serving import op_check

    backbone = keras_hub.models.BertBackbone(vocabulary_size=tokenizer.vocabulary_size, num_layers=1, num_heads=2,
                                             hidden_dim=16, intermediate_dim=32, max_sequence_length=48)
    model = qa.build_span_model(backbone, 0.1)
    settings = {"max_seq_length": 48, "doc_stride": 10, "max_query_length": 12, "max_answer_length": 6,
                "n_best_size": 3, "no_answer_threshold": 0.0}
    export_dir = str(tmp_path / "export")
    qa.export_reader(model, export_dir, tokenizer, settings)
    assert op_check.unsupported_ops(export_dir) == []
    served = tf.saved_model.load(export_dir)
    contexts = ["Anna bakes the warm bread.", " ".join(["Boris boils the fresh soup."] * 20) + " Zoë bakes ünïcode bread."]
    out = served.signatures["serving_default"](question=tf.constant(["What does Anna bake?", "Who bakes?"]),
                                               context=tf.constant(contexts))
    assert out["nbest_texts"].shape == (2, 3)
    for q, context in enumerate(contexts):
        for text, start, end in zip(out["nbest_texts"][q].numpy(), out["nbest_starts"][q].numpy(),
                                    out["nbest_ends"][q].numpy()):
            if start >= 0:
                assert context[start:end] == text.decode()  # character offsets, Unicode included
    example = tf.train.Example()
    example.features.feature["question"].bytes_list.value.append(b"What does Anna bake?")
    example.features.feature["context"].bytes_list.value.append(contexts[0].encode())
    spans = served.signatures["serving_tf_example"](examples=tf.constant([example.SerializeToString()]))
    assert spans[qa.ANSWER_SPAN].numpy().tolist() == [[out["answer_start"][0].numpy(), out["answer_end"][0].numpy()]]


def test_demo_qa_data_is_valid_squad_with_unanswerable_questions(tmp_path):
    counts = demo_data.write_qa_dataset(str(tmp_path), num_train=60, num_eval=20)
    found = collections.Counter()
    questions = squad.read_squad(str(tmp_path / "dev.json"), found, strict=True)
    assert found["questions"] == counts["dev.json"] == len(questions)
    assert any(not q.answers for q in questions) and any(q.answers for q in questions)
