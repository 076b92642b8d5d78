"""BM25 (tfx_bert/lexical.py): scores equal Lucene's BM25 computed by hand; the index ranks,
saves and loads; bad input is refused with a message."""
import math

import pytest

from tfx_bert.lexical import BM25Index

CORPUS = {
    "d1": "the cat sat on the mat",
    "d2": "money in the river bank",
    "d3": "a cat and a dog and a cat",
    "d4": "the bank raised its rates",
    "d5": "dogs chase cats in the park near the river",
}


def _tokens(text):  # the index's analysis: lowercase, words of 2+ characters, English stop words out
    stop = {"the", "on", "in", "a", "and"}  # ("its" and "near" are not in its list)
    return [w for w in text.lower().split() if len(w) > 1 and w not in stop]


def lucene_bm25(query: str, corpus: dict, k1=1.2, b=0.75) -> dict:
    """Lucene's BM25 (no (k1 + 1) factor; idf = ln(1 + (N - df + 0.5) / (df + 0.5))), by hand."""
    docs = {d: _tokens(t) for d, t in corpus.items()}
    avgdl = sum(map(len, docs.values())) / len(docs)
    scores = {}
    for d, words in docs.items():
        score = 0.0
        for term in set(_tokens(query)):
            df = sum(term in w for w in docs.values())
            tf = words.count(term)
            if tf:
                idf = math.log(1 + (len(docs) - df + 0.5) / (df + 0.5))
                score += idf * tf / (tf + k1 * (1 - b + b * len(words) / avgdl))
        scores[d] = score
    return scores


@pytest.mark.parametrize("query", ["cat", "river bank", "the cat in the bank", "dogs rates zebra"])
def test_scores_and_ranking_equal_lucene_bm25_by_hand(query):
    index = BM25Index.build(CORPUS)
    expected = lucene_bm25(query, CORPUS)
    assert dict(zip(index.doc_ids, index.scores(query).tolist())) == pytest.approx(expected, rel=1e-5)
    [hits] = index.search([query], k=3)
    matching = sorted((d for d in expected if expected[d] > 0), key=lambda d: (-expected[d], d))
    assert [d for d, _ in hits] == matching[:3]  # best first; no document sharing no term
    assert [s for _, s in hits] == pytest.approx([expected[d] for d in matching[:3]], rel=1e-5)


def test_an_index_saves_and_loads_with_its_document_ids(tmp_path):
    index = BM25Index.build(CORPUS)
    index.save(str(tmp_path / "bm25"))
    loaded = BM25Index.load(str(tmp_path / "bm25"))
    assert loaded.doc_ids == index.doc_ids
    assert loaded.search(["river bank", "cat"], k=5) == index.search(["river bank", "cat"], k=5)


def test_bad_input_is_refused_with_a_message(tmp_path):
    with pytest.raises(ValueError, match="corpus is empty"):
        BM25Index.build({})
    with pytest.raises(ValueError, match="Query 1 is empty"):
        BM25Index.build(CORPUS).search(["cat", "  "])
    with pytest.raises(FileNotFoundError, match="not a BM25 index"):
        BM25Index.load(str(tmp_path))
    assert BM25Index.build(CORPUS).search(["the and a"]) == [[]]  # only stop words: nothing matches
