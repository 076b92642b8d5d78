"""Hard-negative mining (tfx_bert/mining.py): never a positive, the rank window and the margin
honoured, reproducible; BM25 and dense first stages."""
import random

import numpy as np
import pytest

from tfx_bert import mining
from tfx_bert.lexical import BM25Index
from tfx_bert.mining import MiningSettings


def test_random_rankings_never_yield_a_positive_and_honour_window_and_margin():
    rng = random.Random(0)
    for case in range(300):
        docs = [f"d{i}" for i in range(rng.randint(5, 60))]
        ranking = sorted(((d, rng.uniform(-1, 1)) for d in docs), key=lambda item: -item[1])
        positives = set(rng.sample(docs, rng.randint(1, 3)))
        positive_score = min(s for d, s in ranking if d in positives)
        rank_min = rng.randint(0, 3)
        settings = MiningSettings(num_negatives=rng.randint(1, 4), rank_min=rank_min, rank_max=rank_min + rng.randint(4, 20),
                                  margin=rng.choice([float("-inf"), 0.0, 0.1, 0.5]), sampling=rng.choice(["top", "random"]))
        negatives = mining.select_negatives(f"q{case}", ranking, positives, positive_score, settings)
        assert not set(negatives) & positives and len(negatives) == len(set(negatives)) <= settings.num_negatives
        rest = [d for d, _ in ranking if d not in positives]
        scores = dict(ranking)
        for doc in negatives:
            assert settings.rank_min <= rest.index(doc) < settings.rank_max
            assert scores[doc] < positive_score - settings.margin
        eligible = [d for d in rest[settings.rank_min:settings.rank_max] if scores[d] < positive_score - settings.margin]
        assert len(negatives) == min(settings.num_negatives, len(eligible))  # nothing eligible left out
        if settings.sampling == "top":
            assert negatives == eligible[:settings.num_negatives]
        again = mining.select_negatives(f"q{case}", ranking, positives, positive_score, settings)
        assert again == negatives  # seeded by the query id


def test_bm25_mining_takes_lexically_close_documents_below_the_positive():
    corpus = {"p": "the red car is fast and red", "n1": "a red car in the rain", "n2": "a fast red bike",
              "n3": "a red red red red car car", "far": "green trees and blue water", "n4": "the car park"}
    queries, qrels = {"q": "fast red car"}, {"q": {"p": 1}}
    rank, score = mining.bm25_miner(corpus)
    negatives = mining.mine(queries, qrels, rank, score, MiningSettings(num_negatives=3, rank_max=5, margin=0.0))["q"]
    index = BM25Index.build(corpus)
    scores = dict(zip(index.doc_ids, index.scores("fast red car")))
    assert "p" not in negatives and "far" not in negatives  # a positive never; no term shared: never ranked
    assert negatives == [d for d, s in index.search(["fast red car"], 6)[0] if d != "p" and s < scores["p"]][:3]
    strict = mining.mine(queries, qrels, rank, score, MiningSettings(num_negatives=3, rank_max=5, margin=0.3))["q"]
    window = [d for d, _ in index.search(["fast red car"], 6)[0] if d != "p"][:5]
    assert strict == [d for d in window if scores[d] < scores["p"] - 0.3][:3]


def test_dense_mining_ranks_by_inner_product_and_skips_the_top_ranks():
    doc_ids = ["a", "b", "c", "d", "e"]
    vectors = np.eye(5, dtype=np.float32)
    embed = lambda texts: np.array([[0.9, 0.8, 0.7, 0.6, 0.5] if t == "q" else [0, 0, 0, 0, 1] for t in texts],  # noqa: E731
                                   dtype=np.float32)
    rank, score = mining.dense_miner(doc_ids, vectors, embed)
    assert rank(["q"], 3) == [[("a", pytest.approx(0.9)), ("b", pytest.approx(0.8)), ("c", pytest.approx(0.7))]]
    # The positive "d" scores 0.6: at margin 0, "a" to "c" score above it (probable false
    # negatives of sparse judgements), so only "e" is left.
    settings = MiningSettings(num_negatives=2, rank_max=4, margin=0.0)
    assert mining.mine({"q": "q"}, {"q": {"d": 1}}, rank, score, settings) == {"q": ["e"]}
    # Without the margin filter (the default), the top of the ranking.
    assert mining.mine({"q": "q"}, {"q": {"d": 1}}, rank, score, MiningSettings(num_negatives=2)) == {"q": ["a", "b"]}
    # With the positive on top, rank_min 1 skips "b", the closest candidate.
    assert mining.mine({"q": "q"}, {"q": {"a": 1}}, rank, score,
                       MiningSettings(num_negatives=2, rank_min=1, rank_max=4)) == {"q": ["c", "d"]}


def test_hybrid_mining_fuses_the_two_rankings_by_reciprocal_rank():
    """Dense ranks a b c d e, the lexical one e d a: fused by 1 / (60 + rank), a (1/61 + 1/63)
    leads, then e (1/65 + 1/61) just above d (1/64 + 1/62), then b and c, found in one list only."""
    embed = lambda texts: np.array([[0.9, 0.8, 0.7, 0.6, 0.5]] * len(texts), dtype=np.float32)  # noqa: E731
    dense = mining.dense_miner(["a", "b", "c", "d", "e"], np.eye(5, dtype=np.float32), embed)
    lexical_ranking = [("e", 3.0), ("d", 2.0), ("a", 1.0)]
    lexical = (lambda texts, k: [lexical_ranking[:k] for _ in texts], None)
    rank, score = mining.hybrid_miner(dense, lexical, depth=5)
    [fused] = rank(["q"], 5)
    assert [d for d, _ in fused] == ["a", "e", "d", "b", "c"]
    assert [s for _, s in fused] == pytest.approx([1 / 61 + 1 / 63, 1 / 65 + 1 / 61, 1 / 64 + 1 / 62, 1 / 62, 1 / 63])
    assert score("q", ["d", "zzz"]) == pytest.approx([1 / 64 + 1 / 62, 0.0])  # outside both lists: 0
    assert score("unseen query", ["a"]) == pytest.approx([1 / 61 + 1 / 63])  # ranked on demand
    assert mining.mine({"q": "q"}, {"q": {"d": 1}}, rank, score, MiningSettings(num_negatives=2)) == {"q": ["a", "e"]}
    assert mining.mine({"q": "q"}, {"q": {"d": 1}}, rank, score,
                       MiningSettings(num_negatives=2, rank_min=1)) == {"q": ["e", "b"]}


def test_an_unknown_first_stage_is_refused():
    with pytest.raises(ValueError, match="Unknown negative miner 'splade'"):
        mining.first_stage("splade", {"d1": "a text"})


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="rank_min < rank_max"):
        MiningSettings(num_negatives=1, rank_min=5, rank_max=5)
    with pytest.raises(ValueError, match="num_negatives 8"):
        MiningSettings(num_negatives=8, rank_min=0, rank_max=4)
