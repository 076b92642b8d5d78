"""tfx_bert.beir: BEIR and MS MARCO readers (bad records counted or named), MS MARCO triples,
and training pairs with lexically mined negatives."""
import collections
import json

import pytest

from tfx_bert import beir


def test_beir_reader_counts_bad_records(tmp_path):
    (tmp_path / "qrels").mkdir()
    (tmp_path / "corpus.jsonl").write_text("\n".join(json.dumps(r) for r in [
        {"_id": "d1", "title": "Paris", "text": "is the capital of France."},
        {"_id": "d1", "title": "", "text": "a duplicate id"},
        {"_id": "d2", "title": "", "text": ""},
        {"_id": "d3", "text": "Berlin is in Germany."}]) + "\nnot json\n")
    (tmp_path / "queries.jsonl").write_text("\n".join(json.dumps(r) for r in [
        {"_id": "q1", "text": "capital of france"}, {"_id": "q2", "text": "  "}, {"_id": "q3", "text": "germany"}]))
    (tmp_path / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq3\td3\t2\nq9\td1\t1\nq3\td7\t1\nq1\td1\n")
    data = beir.read_beir(str(tmp_path))
    assert data.corpus == {"d1": "Paris is the capital of France.", "d3": "Berlin is in Germany."}
    assert data.queries == {"q1": "capital of france", "q3": "germany"}
    assert data.qrels == {"q1": {"d1": 1}, "q3": {"d3": 2}}
    c = data.counters
    assert (c["skipped_duplicate_doc_id"], c["skipped_empty_doc"], c["skipped_invalid_json"], c["skipped_empty_query"],
            c["skipped_unknown_query_id"], c["skipped_unknown_doc_id"], c["skipped_malformed_line"]) == (1, 1, 1, 1, 1, 1, 1)
    with pytest.raises(ValueError, match=r"corpus.jsonl:2: duplicate doc id: doc id 'd1' seen before"):
        beir.read_beir(str(tmp_path), strict=True)


def test_msmarco_reader(tmp_path):
    (tmp_path / "collection.tsv").write_text("0\tThe first passage.\n1\tThe second passage.\nbroken line\n")
    (tmp_path / "queries.tsv").write_text("10\twhat is first\n11\twhat is second\n")
    (tmp_path / "qrels.tsv").write_text("10\t0\t0\t1\n11 0 1 1\n12\t0\t1\t1\n")
    data = beir.read_msmarco(str(tmp_path / "collection.tsv"), str(tmp_path / "queries.tsv"), str(tmp_path / "qrels.tsv"))
    assert data.qrels == {"10": {"0": 1}, "11": {"1": 1}}
    assert data.counters["skipped_malformed_line"] == 1 and data.counters["skipped_unknown_query_id"] == 1


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
    # Mined negatives come first (a judged one dropped); a short list is filled from the sample.
    mined = list(beir.training_pairs(data, 2, 100, mined={"q": ["rel2", "far2"]}))[0].negative_ids
    assert mined == ["far2", "near"]


def test_triples_reader_counts_bad_lines_and_strict_names_them(tmp_path):
    path = tmp_path / "triples.tsv"
    path.write_text("what is a moon\ta moon orbits\ta chef bakes\nbroken line\n\tno query\tx\n")
    counters = collections.Counter()
    pairs = list(beir.read_triples(str(path), counters))
    assert [(p.query, p.text, p.negatives) for p in pairs] == [("what is a moon", "a moon orbits", ["a chef bakes"])]
    assert counters["skipped_malformed_line"] == 1 and counters["skipped_empty_text"] == 1
    with pytest.raises(ValueError, match=r"triples.tsv:2"):
        list(beir.read_triples(str(path), strict=True))
