"""models.qa_spans: windows over long contexts with doc_stride, answer labels, and in-graph span
decoding against brute force."""

import numpy as np
import pytest
import tensorflow as tf

from tests.helpers import qa_contexts, qa_tokenizer
from tfx_bert_app.models import qa_spans


@pytest.fixture(scope="module")
def tokenizer():
    return qa_tokenizer()


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


def test_windows_cover_the_context_with_doc_stride_and_label_the_answer(tokenizer):
    pairs = qa_contexts(40)
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


def test_span_decoding_matches_brute_force(tokenizer):
    pairs = qa_contexts(12, seed=3)
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
