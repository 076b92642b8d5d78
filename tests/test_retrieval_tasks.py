"""Dense retrieval and re-ranking building blocks: training pairs with mined negatives, the
BEIR / MS MARCO-triples ExampleGen formats, the dual-encoder and cross-encoder exports (raw
text in, TF Serving's op set), the candidate-list metrics, exact top-k, the RetrievalEvaluator's
gate and retrieve-then-rerank."""
import collections
import json
import os

import keras_hub
import numpy as np
import pytest
import tensorflow as tf
from tfx.types import standard_artifacts

from tfx_bert_app.models import rerank, rerank_metrics, retrieval
from tests.helpers import new_artifact, read_examples, run_executor
from tfx_bert import beir, demo_data, retrieval_metrics, tokenization

WORDS = "the warm fresh soup bread chef bakes boils oven rocket moon orbits star sailor boat sea . a ? does for".split()


@pytest.fixture(scope="module")
def tokenizer():
    return tokenization.WordPieceTokenizer(tokenization.reserved_tokens() + WORDS)


def _backbone(tokenizer):
    return keras_hub.models.BertBackbone(vocabulary_size=tokenizer.vocabulary_size, num_layers=1, num_heads=2,
                                         hidden_dim=16, intermediate_dim=32, max_sequence_length=32)


def _write_beir(directory, qrels_lines, corpus=None, queries=None):
    corpus = corpus or {f"d{i}": " ".join(np.random.default_rng(i).choice(WORDS[:-4], 6)) for i in range(30)}
    queries = queries or {"q1": "the chef bakes bread", "q2": "the rocket orbits the moon", "q3": "sailor boat"}
    os.makedirs(os.path.join(directory, "qrels"), exist_ok=True)
    with open(os.path.join(directory, "corpus.jsonl"), "w") as f:
        f.writelines(json.dumps({"_id": k, "title": "", "text": v}) + "\n" for k, v in corpus.items())
    with open(os.path.join(directory, "queries.jsonl"), "w") as f:
        f.writelines(json.dumps({"_id": k, "text": v}) + "\n" for k, v in queries.items())
    for split, lines in qrels_lines.items():
        with open(os.path.join(directory, "qrels", f"{split}.tsv"), "w") as f:
            f.write("query-id\tcorpus-id\tscore\n" + "".join(line + "\n" for line in lines))
    return corpus, queries


def test_training_pairs_mine_the_lexically_hardest_non_relevant_negatives():
    corpus = {"pos": "the chef bakes bread", "near": "the chef bakes soup", "mid": "the chef",
              "far": "rocket moon", "far2": "sailor boat", "rel2": "chef bakes bread too"}
    data = beir.RetrievalData(corpus, {"q": "the chef bakes bread"}, {"q": {"pos": 1, "rel2": 0}}, collections.Counter())
    pairs = list(beir.training_pairs(data, num_negatives=2, negative_pool=100))
    assert [(p.doc_id, p.negative_ids) for p in pairs] == [("pos", ["near", "mid"])]  # judged docs never negatives
    assert pairs[0].negatives == [corpus["near"], corpus["mid"]]
    assert list(beir.training_pairs(data, 2, 100))[0].negative_ids == ["near", "mid"]  # reproducible
    randoms = list(beir.training_pairs(data, 3, 0))[0].negative_ids
    assert len(set(randoms)) == 3 and not {"pos", "rel2"} & set(randoms)
    with pytest.raises(ValueError, match="too few documents"):
        list(beir.training_pairs(data, 5, 0))


def test_triples_reader_counts_bad_lines_and_strict_names_them(tmp_path):
    path = tmp_path / "triples.tsv"
    path.write_text("what is a moon\ta moon orbits\ta chef bakes\nbroken line\n\tno query\tx\n")
    counters = collections.Counter()
    pairs = list(beir.read_triples(str(path), counters))
    assert [(p.query, p.text, p.negatives) for p in pairs] == [("what is a moon", "a moon orbits", ["a chef bakes"])]
    assert counters["skipped_malformed_line"] == 1 and counters["skipped_empty_text"] == 1
    with pytest.raises(ValueError, match=r"triples.tsv:2"):
        list(beir.read_triples(str(path), strict=True))


def _example_gen_props(tmp_path, fmt, train, dev, num_negatives=2):
    from tfx_bert_app.components.task_example_gen import executor as ex

    return {ex.INPUT_BASE: str(tmp_path), ex.TRAIN_PATTERN: train, ex.EVAL_PATTERN: dev, ex.INPUT_FORMAT: fmt,
            ex.TEXT_FIELD: "", ex.TEXT_B_FIELD: "", ex.LABEL_FIELD: "", ex.LABEL_NAMES: "", ex.NUM_CLASSES: 2,
            ex.STRICT: 0, ex.NUM_NEGATIVES: num_negatives, ex.NEGATIVE_POOL: 8}


def test_beir_example_gen_writes_pairs_with_negatives_and_counts_bad_qrels(tmp_path):
    from tfx_bert_app.components.task_example_gen import executor as ex

    corpus, queries = _write_beir(tmp_path, {"train": ["q1\td1\t1", "q1\td2\t2", "q9\td1\t1", "q2\td404\t1"],
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


def test_msmarco_triples_need_one_negative(tmp_path):
    from tfx_bert_app.components.task_example_gen import executor as ex
    from tfx_bert_app.components.text_example_gen.executor import BadInputError

    (tmp_path / "triples.tsv").write_text("a moon\tthe moon orbits\tthe chef bakes\n")
    examples = new_artifact(standard_artifacts.Examples, tmp_path / "out")
    with pytest.raises(Exception, match="num_negatives=1") as error:
        run_executor(ex.Executor, {}, {"examples": [examples]},
                     _example_gen_props(tmp_path, "msmarco_triples", "triples.tsv", "triples.tsv", 3),
                     str(tmp_path / "tmp"))
    assert "triples.tsv" in str(error.value) or isinstance(error.value, BadInputError)


@pytest.mark.parametrize("shared", [True, False])
def test_dual_encoder_trains_on_in_batch_logits_and_exports_towers(tmp_path, tokenizer, shared):
    from tfx_bert_app.models.similarity import build_sentence_encoder
    from tfx_bert.serving import op_check

    doc_tower = build_sentence_encoder(_backbone(tokenizer), "mean")
    query_tower = doc_tower if shared else build_sentence_encoder(_backbone(tokenizer), "mean", name="query_encoder")
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


def test_cross_encoder_scores_pairs_and_candidate_lists_alike(tmp_path, tokenizer):
    from tfx_bert.serving import op_check

    cross_encoder = rerank.build_cross_encoder(_backbone(tokenizer))
    export_dir = str(tmp_path / "rerank")
    rerank.export_cross_encoder(cross_encoder, export_dir, tokenizer, 24)
    assert op_check.unsupported_ops(export_dir) == []
    served = tf.saved_model.load(export_dir)
    query, passages = "the chef bakes", ["the chef bakes bread .", "the sailor boat .", "a star ."]
    pair_scores = served.signatures["serving_default"](query=tf.constant([query] * 3),
                                                       text=tf.constant(passages))["score"].numpy()
    example = tf.train.Example()
    feature = example.features.feature
    feature["query"].bytes_list.value.append(query.encode())
    feature["text"].bytes_list.value.append(passages[0].encode())
    feature["negatives"].bytes_list.value.extend(p.encode() for p in passages[1:])
    list_scores = served.signatures["serving_tf_example"](examples=tf.constant([example.SerializeToString()]))
    np.testing.assert_allclose(list_scores["scores"].numpy()[0], pair_scores, rtol=1e-4, atol=1e-5)
    del feature["negatives"].bytes_list.value[1:]  # another num_negatives (a baseline trained apart) works too
    shorter = served.signatures["serving_tf_example"](examples=tf.constant([example.SerializeToString()]))
    np.testing.assert_allclose(shorter["scores"].numpy()[0], pair_scores[:2], rtol=1e-4, atol=1e-5)
    list_model = rerank.build_list_model(cross_encoder, 24, 3)
    packed = rerank.encode_candidates(tokenizer, tf.constant([query]), tf.constant([passages]), 24)
    np.testing.assert_allclose(list_model(packed).numpy()[0], pair_scores, rtol=1e-4, atol=1e-5)


def test_candidate_list_metrics_break_ties_against_the_relevant_passage():
    assert rerank_metrics.candidate_list_metrics([0.9, 0.1, 0.2], 1) == (1.0, 1.0)
    mrr, ndcg = rerank_metrics.candidate_list_metrics([0.5, 0.7, 0.1, 0.6], 1)
    assert mrr == pytest.approx(1 / 3) and ndcg == pytest.approx(1 / np.log2(4))
    assert rerank_metrics.candidate_list_metrics([0.3, 0.3, 0.3], 1)[0] == pytest.approx(1 / 3)  # all tied: last
    assert rerank_metrics.candidate_list_metrics([0.0] + [1.0] * 10, 2) == (0.0, 0.0)  # rank 11: outside the cut


def test_ranking_metric_combiner_averages_over_queries():
    from tensorflow_model_analysis.metrics import metric_types

    (computation,) = rerank_metrics.RankingMetrics().computations()
    combiner = computation.combiner
    accumulator = combiner.create_accumulator()
    for scores in ([0.9, 0.1, 0.2], [0.1, 0.5, 0.2]):
        accumulator = combiner.add_input(accumulator, metric_types.StandardMetricInputs(
            label=np.array([1]), prediction=np.array(scores)))
    result = {k.name: v for k, v in combiner.extract_output(accumulator).items()}
    assert result["mrr@10"] == pytest.approx((1 + 1 / 3) / 2)
    assert result["ndcg@10"] == pytest.approx((1 + 1 / np.log2(4)) / 2)


def test_exact_top_k_matches_a_full_sort():
    from tfx_bert_app.components.retrieval_evaluator.executor import exact_top_k

    rng = np.random.default_rng(0)
    docs, queries = rng.normal(size=(200, 8)), rng.normal(size=(30, 8))
    ids = [f"d{i}" for i in range(200)]
    runs = exact_top_k(queries, docs, ids, 10, chunk=7)
    for query, run in zip(queries, runs):
        scores = docs @ query
        assert set(run) == {ids[i] for i in np.argsort(-scores)[:10]}
        assert run[ids[int(np.argmax(scores))]] == pytest.approx(scores.max())


def _export_dual(tokenizer, directory, seed):
    from tfx_bert_app.models.similarity import build_sentence_encoder

    tf.keras.utils.set_random_seed(seed)
    tower = build_sentence_encoder(_backbone(tokenizer), "mean")
    retrieval.export_dual_encoder(tower, tower, os.path.join(directory, "Format-Serving"), tokenizer, 16, 8)
    return str(directory)


def test_retrieval_evaluator_gates_on_ndcg_and_the_baseline(tmp_path, tokenizer):
    from tfx_bert_app.components.retrieval_evaluator import executor as ex

    _write_beir(tmp_path / "data", {"dev": ["q1\td1\t1", "q2\td2\t1", "q3\td3\t2", "q3\tnope\t1"]})
    candidate = new_artifact(standard_artifacts.Model, _export_dual(tokenizer, tmp_path / "candidate", 1))
    baseline = new_artifact(standard_artifacts.Model, _export_dual(tokenizer, tmp_path / "baseline", 2))
    candidate.uri, baseline.uri = str(tmp_path / "candidate"), str(tmp_path / "baseline")

    def evaluate(threshold, name, baseline_model=None):
        evaluation = new_artifact(standard_artifacts.ModelEvaluation, tmp_path / name / "evaluation")
        blessing = new_artifact(standard_artifacts.ModelBlessing, tmp_path / name / "blessing")
        inputs = {"model": [candidate], **({"baseline_model": [baseline_model]} if baseline_model else {})}
        props = {ex.DATA_DIR: str(tmp_path / "data"), ex.QRELS: "qrels/dev.tsv", ex.GATE_METRIC: "ndcg@10",
                 ex.THRESHOLD: threshold, ex.BATCH_SIZE: 8}
        run_executor(ex.Executor, inputs, {"evaluation": [evaluation], "blessing": [blessing]}, props,
                     str(tmp_path / name / "tmp"))
        report = json.load(open(os.path.join(evaluation.uri, ex.METRICS_FILE)))
        return report, blessing

    report, blessing = evaluate(0.0, "open")
    assert report["blessed"] and blessing.get_int_custom_property("blessed") == 1
    assert os.path.exists(os.path.join(blessing.uri, "BLESSED"))
    assert report["counts"]["skipped_unknown_doc_id"] == 1 and report["queries"] == 3
    # The same metrics computed directly: embed, rank everything, TREC definitions.
    data = beir.read_beir(str(tmp_path / "data"), "dev")
    served = tf.saved_model.load(os.path.join(candidate.uri, "Format-Serving"))
    ids = sorted(data.corpus)
    docs = served.signatures["embed"](text=tf.constant([data.corpus[d] for d in ids]))["embedding"].numpy()
    qids = sorted(data.qrels)
    queries = served.signatures["embed_query"](text=tf.constant([data.queries[q] for q in qids]))["embedding"].numpy()
    run = {q: dict(zip(ids, (docs @ v).tolist())) for q, v in zip(qids, queries)}
    expected = retrieval_metrics.evaluate(run, data.qrels)
    assert report["candidate"] == pytest.approx(expected, abs=1e-5)

    report, blessing = evaluate(1.01, "too_high")
    assert not report["blessed"] and blessing.get_int_custom_property("blessed") == 0
    assert os.path.exists(os.path.join(blessing.uri, "NOT_BLESSED"))
    report, blessing = evaluate(0.0, "against_baseline", baseline)
    better = report["candidate"]["ndcg@10"] >= report["baseline"]["ndcg@10"]
    assert report["blessed"] == better and blessing.get_int_custom_property("baseline_model_id") == baseline.id


def test_retrieve_then_rerank_reorders_the_store_candidates(tmp_path):
    from tfx_bert.retrieval import RetrieveThenRerank, Retriever
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


def test_generated_retrieval_data_asks_for_each_documents_facts(tmp_path):
    counts = demo_data.write_retrieval_dataset(str(tmp_path), num_docs=100)
    assert counts == {"corpus.jsonl": 100, "qrels/train.tsv": 180, "qrels/dev.tsv": 20}
    train, dev = beir.read_beir(str(tmp_path), "train"), beir.read_beir(str(tmp_path), "dev")
    assert not set(train.qrels) & set(dev.qrels)  # different queries
    # Every document answers a train query: none is only ever a negative in training.
    assert {d for r in train.qrels.values() for d in r} == set(train.corpus)
    first_sentences = set()
    for data in (train, dev):
        for query_id, judged in data.qrels.items():
            (doc,) = judged
            words = data.queries[query_id].split()  # does the <noun> <verb> the <obj> for <name> ?
            noun, verb, obj, name = words[2], words[3], words[5], words[7]
            sentences = [s.strip() + " ." for s in data.corpus[doc].split(" .") if s.strip()]
            assert any(s.startswith(f"{name} says the {noun} {verb} the ") and s.endswith(f" {obj} .") for s in sentences)
            first_sentences.add(sentences[0].startswith(f"{name} says"))
    assert first_sentences == {True, False}  # the answer is not always the first sentence


@pytest.mark.parametrize("loss_name", ["listwise", "pointwise"])
def test_both_rerank_losses_learn_to_put_the_relevant_passage_first(tokenizer, loss_name):
    tf.keras.utils.set_random_seed(7)
    queries = ["the chef bakes bread", "the rocket orbits the moon", "the sailor boat sea", "fresh warm soup"]
    passages = [["the chef bakes the bread .", "a star .", "the sailor boat ."],
                ["the rocket orbits the moon .", "fresh soup .", "the chef bakes ."],
                ["the sailor boat sea .", "the oven boils .", "the rocket orbits ."],
                ["fresh warm soup .", "the moon orbits .", "a sailor ."]]
    model = rerank.build_list_model(rerank.build_cross_encoder(_backbone(tokenizer), dropout=0.0), 24, 3)
    loss, label_fn, metric = rerank.loss_and_labels(loss_name, 3)
    model.compile(optimizer=tf.keras.optimizers.Adam(3e-3), loss=loss, metrics=[metric])
    inputs = rerank.encode_candidates(tokenizer, tf.constant(queries), tf.constant(passages), 24)
    labels = label_fn(len(queries))
    history = model.fit(inputs, labels, epochs=40, batch_size=4, verbose=0).history["loss"]
    assert history[-1] < 0.5 * history[0]
    assert (np.argmax(model(inputs).numpy(), axis=1) == 0).all()
    with pytest.raises(ValueError, match="listwise"):
        rerank.loss_and_labels("pairwise", 3)
