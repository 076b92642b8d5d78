"""models.qa: the exported SavedModel serves raw question and context with TF Serving's ops, and
the numpy window decoding agrees with the graph."""

import numpy as np
import pytest
import tensorflow as tf

from tests.helpers import qa_contexts, qa_tokenizer
from tfx_bert_app.models import qa, qa_spans


@pytest.fixture(scope="module")
def tokenizer():
    return qa_tokenizer()


def test_numpy_window_decoding_agrees_with_the_graph(tokenizer):
    """The Trainer tunes the no-answer threshold with a numpy decoder; it must pick the same
    spans as the serving graph."""
    pairs = qa_contexts(10, seed=4)
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


def test_export_serves_raw_question_and_context_with_tf_serving_ops(tmp_path, tokenizer):
    import keras_hub

    from tfx_bert.serving import op_check

    backbone = keras_hub.models.BertBackbone(vocabulary_size=tokenizer.vocabulary_size, num_layers=1, num_heads=2,
                                             hidden_dim=16, intermediate_dim=32, max_sequence_length=48)
    model = qa.build_span_model(backbone, 0.1)
    settings = {"max_seq_length": 48, "doc_stride": 10, "max_query_length": 12, "max_answer_length": 6,
                "n_best_size": 3, "no_answer_threshold": 0.0, "length_bucket": 16}
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
    # Length-aware packing: the short context's windows alone are cut to 16 or 32 positions, beside
    # the long one's they are full width; the answer is the same.
    alone = served.signatures["serving_default"](question=tf.constant(["What does Anna bake?"]),
                                                 context=tf.constant(contexts[:1]))
    for key in ("nbest_scores", "nbest_starts", "no_answer_score", "score"):
        np.testing.assert_allclose(alone[key].numpy()[0], out[key].numpy()[0], atol=1e-5, err_msg=key)
    example = tf.train.Example()
    example.features.feature["question"].bytes_list.value.append(b"What does Anna bake?")
    example.features.feature["context"].bytes_list.value.append(contexts[0].encode())
    spans = served.signatures["serving_tf_example"](examples=tf.constant([example.SerializeToString()]))
    assert spans[qa.ANSWER_SPAN].numpy().tolist() == [[out["answer_start"][0].numpy(), out["answer_end"][0].numpy()]]
