"""Dense retrieval: the dual encoder (models.retrieval) trains on in-batch logits and exports
its towers; retrieve-then-rerank (tfx_bert.retrieval) re-orders the vector store's candidates."""
import numpy as np
import pytest
import tensorflow as tf

from tests.helpers import ranking_tokenizer, tiny_backbone
from tfx_bert_app.models import retrieval


@pytest.fixture(scope="module")
def tokenizer():
    return ranking_tokenizer()


@pytest.mark.parametrize("shared", [True, False])
def test_dual_encoder_trains_on_in_batch_logits_and_exports_towers(tmp_path, tokenizer, shared):
    from tfx_bert.serving import op_check
    from tfx_bert_app.models.keras_layers import build_sentence_encoder

    doc_tower = build_sentence_encoder(tiny_backbone(tokenizer.vocabulary_size), "mean")
    query_tower = doc_tower if shared else build_sentence_encoder(tiny_backbone(tokenizer.vocabulary_size), "mean", name="query_encoder")
    model = retrieval.build_dual_encoder(query_tower, doc_tower, seq_len=16, num_negatives=2, temperature=0.05)
    queries, docs = ["the chef bakes", "the rocket orbits"], ["the chef bakes bread .", "the rocket orbits the moon ."]
    negatives = [["the sailor boat .", "a star ."], ["fresh soup .", "the oven ."]]
    inputs = {k + "_query": v for k, v in tokenizer.encode(tf.constant(queries), 8).items()}
    inputs.update(tokenizer.encode(tf.constant(docs), 16))
    packed = tokenizer.encode(tf.reshape(tf.constant(negatives), [-1]), 16)
    inputs.update({k + "_negatives": tf.reshape(v, [2, 32]) for k, v in packed.items()})
    logits = model({k: tf.cast(v, tf.int32) for k, v in inputs.items()}).numpy()
    assert logits.shape == (2, 2 + 4)  # both positives, then each query's two negatives
    assert np.abs(logits).max() <= 1 / 0.05 + 1e-3  # cosines over the temperature
    export_dir = str(tmp_path / "dual")
    retrieval.export_dual_encoder(query_tower, doc_tower, export_dir, tokenizer, 16, 8)
    assert op_check.unsupported_ops(export_dir) == []
    served = tf.saved_model.load(export_dir)
    doc_vectors = served.signatures["embed"](text=tf.constant(docs))["embedding"].numpy()
    query_vectors = served.signatures["embed_query"](text=tf.constant(queries))["embedding"].numpy()
    np.testing.assert_allclose(np.linalg.norm(doc_vectors, axis=1), 1.0, rtol=1e-5)
    scores = served.signatures["serving_default"](query=tf.constant(queries), text=tf.constant(docs))["score"].numpy()
    np.testing.assert_allclose(scores, (query_vectors * doc_vectors).sum(1), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(logits[np.arange(2), np.arange(2)] * 0.05, scores, rtol=1e-3, atol=1e-4)
    same = served.signatures["embed_query"](text=tf.constant(docs))["embedding"].numpy()
    assert np.allclose(same, doc_vectors, atol=1e-6) == shared  # separate towers: separate weights


def _dual_inputs(tokenizer, queries, docs, negatives, query_len=8, seq_len=16):
    """What the Transform gives the dual encoder: each text packed alone (int32)."""
    inputs = {k + "_query": v for k, v in tokenizer.encode(tf.constant(queries), query_len).items()}
    inputs.update(tokenizer.encode(tf.constant(docs), seq_len))
    n = len(negatives[0])
    packed = tokenizer.encode(tf.reshape(tf.constant(negatives), [-1]), seq_len)
    inputs.update({k + "_negatives": tf.reshape(v, [len(queries), n * seq_len]) for k, v in packed.items()})
    return {k: tf.cast(v, tf.int32) for k, v in inputs.items()}


def test_pack_pairs_builds_the_cross_encoders_own_packing_from_the_dual_encoders_pieces(tokenizer):
    """The re-ranker teacher reads exactly what ``tokenizer.encode(query, passage)`` packs for it
    (pieces re-used, nothing tokenized again), for each query's positive then its negatives."""
    queries, docs = ["the chef bakes", "the rocket orbits the moon"], ["the chef bakes bread .", "the moon ."]
    negatives = [["the sailor boat .", "a star ."], ["fresh soup .", "the oven bakes the warm bread ."]]
    packed = retrieval.PackPairs(16, 2)(_dual_inputs(tokenizer, queries, docs, negatives))
    assert packed["token_ids"].shape == (6, 8 + 16 - 1)
    candidates = [passage for doc, negs in zip(docs, negatives) for passage in [doc, *negs]]
    expected = tokenizer.encode(tf.constant(np.repeat(queries, 3)), 23, texts_b=tf.constant(candidates))
    for key in ("token_ids", "segment_ids", "padding_mask"):
        np.testing.assert_array_equal(packed[key].numpy(), tf.cast(expected[key], tf.int32).numpy(), err_msg=key)


def test_a_dual_encoder_learns_a_cross_encoders_margins_through_margin_mse(tmp_path, tokenizer):
    """``finetune.cross_encoder_uri``: a saved re-ranker, seen through ``cross_encoder_teacher``
    as scores of each query's candidates, teaches a dual encoder its margins (the Distiller with
    ``InBatchMarginMSE``): the gap between their margins shrinks."""
    import keras

    from tfx_bert_app.models import distillation, rerank
    from tfx_bert_app.models.keras_layers import build_sentence_encoder

    keras.utils.set_random_seed(1)
    lists = rerank.build_list_model(rerank.build_cross_encoder(tiny_backbone(tokenizer.vocabulary_size), 0.0), 23, 3)
    serving = tmp_path / "rerank" / "Format-Serving"
    distillation.save_teacher(lists, str(serving), tokenizer)
    with pytest.raises(ValueError, match="up to max_query_length \\+ max_seq_length - 1 = 40 pieces, more than the "
                                         "re-ranker's 32 positions"):
        retrieval.cross_encoder_teacher(str(serving), 16, 2, query_len=25)
    teacher = retrieval.cross_encoder_teacher(str(serving), 16, 2, query_len=8)
    queries = ["the chef bakes", "the rocket orbits the moon", "the sailor", "fresh soup"] * 4
    docs = ["the chef bakes bread .", "the moon .", "the sailor boat .", "fresh soup ."] * 4
    negatives = [["a star .", "the oven ."], ["the oven bakes .", "the chef ."], ["the moon .", "bread ."],
                 ["the rocket .", "a boat ."]] * 4
    x = _dual_inputs(tokenizer, queries, docs, negatives)
    packed = rerank.encode_candidates(tokenizer, tf.constant(queries[:1]), tf.constant([[docs[0], *negatives[0]]]), 23)
    direct = lists({k: tf.reshape(tf.cast(v, tf.int32), [1, -1]) for k, v in packed.items()})
    np.testing.assert_allclose(teacher(x).numpy()[0], direct.numpy()[0], atol=1e-5)  # the re-ranker's own scores

    keras.utils.set_random_seed(2)
    tower = build_sentence_encoder(tiny_backbone(tokenizer.vocabulary_size), "mean")
    student = retrieval.build_dual_encoder(tower, tower, 16, 2, 0.05)
    loss = distillation.InBatchMarginMSE()
    before = float(loss.compute_loss(teacher(x), student(x)))
    model = distillation.distiller(teacher, student, loss, alpha=1.0)
    model.compile(optimizer=keras.optimizers.Adam(0.003),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, np.arange(16) % 16, batch_size=16, epochs=40, verbose=0)
    after = float(loss.compute_loss(teacher(x), student(x)))
    assert after < 0.3 * before, (before, after)


def test_retrieve_then_rerank_reorders_the_store_candidates(tmp_path):
    from tfx_bert.retrieval import Retriever, RetrieveThenRerank
    from tfx_bert.vector_store import VectorStore

    store = VectorStore(str(tmp_path / "milvus.db"), "docs", dim=4, index_type="FLAT")
    store.create()
    vectors = np.eye(4, dtype=np.float32)[[0, 0, 1, 2]] + np.float32(0.01) * np.arange(4)[:, None]
    store.upsert(["a", "b", "c", "d"], vectors / np.linalg.norm(vectors, axis=1, keepdims=True))
    store.mark_complete("test", 4)
    retriever = Retriever(store, lambda texts: np.tile(np.eye(4, dtype=np.float32)[:1], (len(texts), 1)))
    corpus = {"a": "first", "b": "second", "c": "third", "d": "fourth"}
    seen = []

    def score(query, passages):
        seen.append((query, passages))
        return np.array([len(p) for p in passages], dtype=np.float32)  # longest text wins

    results = RetrieveThenRerank(retriever, score, corpus, k=3).search(["q"], top_n=2)
    candidates = [doc for doc, _ in retriever.retrieve(["q"], 3)[0]]
    assert seen == [("q", [corpus[d] for d in candidates])]
    expected = sorted(candidates, key=lambda d: -len(corpus[d]))[:2]
    assert [doc for doc, _ in results[0]] == expected
    with pytest.raises(KeyError, match="not in the corpus"):
        RetrieveThenRerank(retriever, score, {"a": "only"}, k=3).search(["q"])
    store.close()


def test_reciprocal_rank_fusion_sums_one_over_k_plus_rank():
    from tfx_bert.retrieval import reciprocal_rank_fusion

    dense = [("a", 0.9), ("b", 0.8), ("c", 0.1)]
    lexical = [("c", 12.0), ("a", 3.0), ("d", 1.0)]
    fused = reciprocal_rank_fusion([dense, lexical], k=60)
    expected = {"a": 1 / 61 + 1 / 62, "b": 1 / 62, "c": 1 / 63 + 1 / 61, "d": 1 / 63}
    assert dict(fused) == pytest.approx(expected)
    assert [d for d, _ in fused] == ["a", "c", "b", "d"]  # scores' scales do not matter, ranks do
    weighted = reciprocal_rank_fusion([dense, lexical], k=1, weights=[1.0, 3.0])
    assert [d for d, _ in weighted][0] == "c"  # 1/4 + 3/2 beats a's 1/2 + 3/3


def test_hybrid_retriever_fuses_dense_and_bm25_and_feeds_the_reranker():
    from tfx_bert.lexical import BM25Index
    from tfx_bert.retrieval import HybridRetriever, RetrieveThenRerank, reciprocal_rank_fusion

    corpus = {"a": "the red car", "b": "a blue boat", "c": "red boats and blue cars", "d": "green trees"}

    class Dense:  # a fixed dense ranking, whatever the query
        def retrieve(self, queries, k):
            return [[("d", 0.9), ("b", 0.5), ("a", 0.1)][:k] for _ in queries]

    lexical = BM25Index.build(corpus)
    hybrid = HybridRetriever(Dense(), lexical, depth=3)
    [hits] = hybrid.retrieve(["red car"], k=4)
    assert hits == reciprocal_rank_fusion([Dense().retrieve(["x"], 3)[0], lexical.search(["red car"], 3)[0]])[:4]
    assert hits[0][0] == "a"  # in both rankings (third dense, first BM25) beats first in one
    results = RetrieveThenRerank(hybrid, lambda q, passages: np.array([len(p) for p in passages]), corpus,
                                 k=3).search(["red car"], top_n=3)
    assert [d for d, _ in results[0]] == sorted([d for d, _ in hits[:3]], key=lambda d: -len(corpus[d]))
