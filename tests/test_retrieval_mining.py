"""The dual encoder's mining round (models/retrieval_mining.py): negatives from the model's own
ranking of the whole corpus, never a positive, then more steps on them."""
import types

import numpy as np
import pytest
import tensorflow as tf

from tests.helpers import ranking_tokenizer, tiny_backbone, write_beir
from tfx_bert import beir, config
from tfx_bert_app.models import retrieval, retrieval_mining
from tfx_bert_app.models.keras_layers import build_sentence_encoder

CORPUS = {f"d{i}": text for i, text in enumerate([
    "the chef bakes bread .", "the chef boils soup .", "the warm oven .", "a fresh bread .", "the rocket orbits the moon .",
    "a star orbits .", "the sailor boat .", "the sea boat .", "a warm sea .", "the chef bakes the fresh soup ."])}
QUERIES = {"q1": "does the chef bake bread ?", "q2": "the rocket orbits ?", "q3": "a sailor boat ?",
           "q4": "the chef boils ?"}


def _settings(**overrides):
    return config.FinetuneConfig.for_task("retrieval", max_seq_length=16, max_query_length=8, num_negatives=2,
                                 negative_pool=4, negative_rank_max=6, batch_size=2, mining_steps=3,
                                 train_pattern="qrels/train.tsv", **overrides)


def test_mined_negatives_come_from_the_models_ranking_and_never_are_positives(tmp_path):
    tokenizer = ranking_tokenizer()
    tf.keras.utils.set_random_seed(0)
    tower = build_sentence_encoder(tiny_backbone(tokenizer.vocabulary_size), "mean")
    write_beir(tmp_path, {"train": ["q1\td0\t1", "q1\td9\t1", "q2\td4\t1", "q3\td6\t1", "q4\td1\t1"]}, CORPUS, QUERIES)
    data = beir.read_beir(str(tmp_path), qrels_path=str(tmp_path / "qrels" / "train.tsv"))
    settings = _settings(negative_rank_min=1)
    pairs, stats = retrieval_mining.mine_pairs(data, (tower, tower), tokenizer, settings)
    assert stats["mined_queries"] == 4 and len(pairs) == 5  # one pair per positive judgement
    doc_ids = sorted(CORPUS)
    docs = retrieval_mining.embed(tower, tokenizer, [CORPUS[d] for d in doc_ids], 16)
    for pair in pairs:
        positives = {d for d, r in data.qrels[pair.query_id].items() if r > 0}
        assert not positives & set(pair.negative_ids) and len(pair.negative_ids) == 2
        query = retrieval_mining.embed(tower, tokenizer, [pair.query], 8)[0]
        ranked = [doc_ids[i] for i in np.argsort(-(docs @ query), kind="stable") if doc_ids[i] not in positives]
        assert pair.negative_ids == ranked[1:3]  # rank_min 1: the closest non-positive skipped
    batch_inputs, labels = next(iter(retrieval_mining.pairs_dataset(pairs, tokenizer, settings, seed=0)))
    assert batch_inputs["token_ids_query"].shape == (2, 8) and batch_inputs["token_ids_negatives"].shape == (2, 32)
    assert labels.numpy().tolist() == [0, 1]


def test_the_round_trains_the_dual_encoder_on_them_and_needs_the_task_data(tmp_path):
    tokenizer = ranking_tokenizer()
    tower = build_sentence_encoder(tiny_backbone(tokenizer.vocabulary_size), "mean")
    model = retrieval.build_dual_encoder(tower, tower, 16, 2, 0.05)
    write_beir(tmp_path / "data", {"train": ["q1\td0\t1", "q2\td4\t1", "q3\td6\t1", "q4\td1\t1"]}, CORPUS, QUERIES)
    settings = _settings()
    fn_args = types.SimpleNamespace(custom_config={"task_data_dir": str(tmp_path / "data")}, train_steps=99,
                                    eval_steps=1, model_run_dir=str(tmp_path / "run"))
    eval_pairs = list(beir.training_pairs(beir.read_beir(str(tmp_path / "data"), "train"), 2, 4))
    eval_dataset = retrieval_mining.pairs_dataset(eval_pairs, tokenizer, settings, seed=1)
    before = [w.numpy().copy() for w in tower.trainable_weights]
    metrics = retrieval_mining.train_on_mined_negatives(fn_args, settings, model, (tower, tower), tokenizer, eval_dataset)
    assert metrics["mined_queries"] == 4 and np.isfinite(metrics["loss"]) and "val_in_batch_accuracy" in metrics
    assert any(not np.allclose(a, b.numpy()) for a, b in zip(before, tower.trainable_weights))  # it trained
    with pytest.raises(ValueError, match="needs the task's BEIR directory"):
        retrieval_mining.train_on_mined_negatives(types.SimpleNamespace(custom_config={}), settings, model,
                                                  (tower, tower), tokenizer, eval_dataset)
