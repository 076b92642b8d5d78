"""The RetrievalEvaluator component: exact top-k search, and the blessing gated on nDCG, on
the baseline model and on beating the pretrained encoder's zero-shot embeddings."""
import json
import os

import numpy as np
import pytest
import tensorflow as tf
from tfx.types import standard_artifacts

from tests.helpers import new_artifact, ranking_tokenizer, run_executor, tiny_backbone, write_beir
from tfx_bert import beir, retrieval_metrics
from tfx_bert_app.models import retrieval


@pytest.fixture(scope="module")
def tokenizer():
    return ranking_tokenizer()


def _export_dual(tokenizer, directory, seed):
    from tfx_bert_app.models.keras_layers import build_sentence_encoder

    tf.keras.utils.set_random_seed(seed)
    tower = build_sentence_encoder(tiny_backbone(tokenizer.vocabulary_size), "mean")
    retrieval.export_dual_encoder(tower, tower, os.path.join(directory, "Format-Serving"), tokenizer, 16, 8)
    return str(directory)


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


def test_the_verdict_needs_the_threshold_the_baseline_and_a_gain_over_the_zero_shot_encoder():
    from tfx_bert_app.components.retrieval_evaluator.executor import verdict

    assert verdict(0.5, 0.4, None, None) and not verdict(0.3, 0.4, None, None)
    assert verdict(0.5, 0.0, 0.5, None) and not verdict(0.49, 0.0, 0.5, None)  # no worse than the baseline
    assert verdict(0.5, 0.0, None, 0.49) and not verdict(0.5, 0.0, None, 0.5)  # strictly above zero-shot
    # finetune.max_regression: this much below the baseline still blesses, and no more.
    assert verdict(0.48, 0.0, 0.5, None, max_regression=0.02) and not verdict(0.47, 0.0, 0.5, None, max_regression=0.02)


def test_a_students_verdict_is_its_share_of_the_teachers_metric_whatever_the_threshold():
    from tfx_bert_app.components.retrieval_evaluator.executor import verdict

    assert verdict(0.485, 0.9, 0.5, 0.6, min_retention=0.97)  # 97% of the teacher's; threshold and zero-shot aside
    assert not verdict(0.484, 0.0, 0.5, None, min_retention=0.97)
    with pytest.raises(ValueError, match="baseline_model \\(the teacher\\) is missing"):
        verdict(0.5, 0.0, None, None, min_retention=0.97)


@pytest.mark.slow  # four Beam evaluations and a zero-shot export: about 45 s
def test_retrieval_evaluator_reports_and_gates_candidate_baseline_and_zero_shot(tmp_path, tokenizer):
    from tfx_bert import tokenization
    from tfx_bert.lexical import BM25Index
    from tfx_bert.retrieval import reciprocal_rank_fusion
    from tfx_bert_app.components.retrieval_evaluator import executor as ex
    from tfx_bert_app.models import encoder as encoder_lib

    write_beir(tmp_path / "data", {"dev": ["q1\td1\t1", "q2\td2\t1", "q3\td3\t2", "q3\tnope\t1"]})
    candidate = new_artifact(standard_artifacts.Model, _export_dual(tokenizer, tmp_path / "candidate", 1))
    # The baseline: another artifact (its own id) of the candidate's export, which spares an export.
    baseline = new_artifact(standard_artifacts.Model, candidate.uri)
    # The encoder the candidate was "fine-tuned" from is the candidate's own backbone (the same
    # seed): its zero-shot mean pooling ranks exactly as the candidate does, so no gain.
    tf.keras.utils.set_random_seed(1)
    tokenization.write_vocab_dir(str(tmp_path / "vocab"), tokenizer.vocab, tokenizer.config)
    encoder_lib.save_encoder(str(tmp_path / "encoder" / "Format-Serving"), tiny_backbone(tokenizer.vocabulary_size),
                             str(tmp_path / "vocab"))
    encoder = new_artifact(standard_artifacts.Model, tmp_path / "encoder")

    def evaluate(name, props=(), **extra):
        evaluation = new_artifact(standard_artifacts.ModelEvaluation, tmp_path / name / "evaluation")
        blessing = new_artifact(standard_artifacts.ModelBlessing, tmp_path / name / "blessing")
        props = {ex.DATA_DIR: str(tmp_path / "data"), ex.QRELS: "qrels/dev.tsv", ex.GATE_METRIC: "ndcg@10",
                 ex.THRESHOLD: 0.0, ex.BATCH_SIZE: 8, **dict(props)}
        run_executor(ex.Executor, {"model": [candidate], **{k: [v] for k, v in extra.items()}},
                     {"evaluation": [evaluation], "blessing": [blessing]}, props, str(tmp_path / name / "tmp"))
        return json.load(open(os.path.join(evaluation.uri, ex.METRICS_FILE))), blessing

    report, blessing = evaluate("open")
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
    # BM25 over the same corpus and its fusion with the candidate's ranking, reported beside it.
    bm25 = dict(zip(qids, BM25Index.build(data.corpus).search([data.queries[q] for q in qids], 100)))
    assert report["bm25"] == pytest.approx(retrieval_metrics.evaluate({q: dict(r) for q, r in bm25.items()},
                                                                      data.qrels), abs=1e-6)
    dense = {q: sorted(run[q].items(), key=lambda item: -item[1]) for q in qids}
    hybrid = {q: dict(reciprocal_rank_fusion([dense[q], bm25[q]])) for q in qids}
    assert report["hybrid"] == pytest.approx(retrieval_metrics.evaluate(hybrid, data.qrels), abs=1e-5)

    report, blessing = evaluate("gated", baseline_model=baseline, encoder=encoder)
    assert report["zero_shot"] == pytest.approx(report["candidate"], abs=1e-5)
    assert not report["blessed"]  # no gain over the zero-shot encoder, whatever the baseline says
    assert blessing.get_int_custom_property("blessed") == 0 and os.path.exists(os.path.join(blessing.uri, "NOT_BLESSED"))
    assert blessing.get_int_custom_property("baseline_model_id") == baseline.id

    # A distillation's gate: the candidate against the baseline as its teacher, relative only
    # (an absolute threshold no model reaches does not matter; the teacher here is the same export).
    report, blessing = evaluate("student", props={ex.GATE_METRIC: "recall@100", ex.THRESHOLD: 2.0,
                                                  ex.MIN_RETENTION: 0.97}, baseline_model=baseline)
    assert report["retention"] == pytest.approx(1.0) and report["min_retention"] == 0.97
    assert report["blessed"] and blessing.get_int_custom_property("blessed") == 1
