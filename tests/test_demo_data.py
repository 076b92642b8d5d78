"""tfx_bert.demo_data: the embedded task data is valid in its format and asks what it claims."""
import collections

import pytest

from tfx_bert import beir, demo_data, squad


def test_demo_qa_data_is_valid_squad_with_unanswerable_questions(tmp_path):
    counts = demo_data.write_qa_dataset(str(tmp_path), num_train=60, num_eval=20)
    found = collections.Counter()
    questions = squad.read_squad(str(tmp_path / "dev.json"), found, strict=True)
    assert found["questions"] == counts["dev.json"] == len(questions)
    assert any(not q.answers for q in questions) and any(q.answers for q in questions)


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


def test_a_domain_of_the_corpus_and_its_reviews_use_only_its_topics_words(tmp_path):
    from tfx_bert import demo_data

    demo_data.write_pretraining_corpus(str(tmp_path / "b.txt"), num_documents=30, topics=["garden", "sea"])
    words = set(open(tmp_path / "b.txt", encoding="utf-8").read().split())
    nouns = {t: set(demo_data.TOPICS[t]["nouns"]) for t in demo_data.TOPICS}
    assert words & nouns["garden"] and words & nouns["sea"]
    assert not words & (nouns["kitchen"] | nouns["space"] | nouns["sports"] | nouns["music"])
    demo_data.write_sentiment_dataset(str(tmp_path / "s"), num_train=50, num_eval=0, topics=["music"])
    reviews = set(open(tmp_path / "s" / "train" / "data.csv", encoding="utf-8").read().replace(",", " ").split())
    assert reviews & nouns["music"] and not reviews & (nouns["sea"] | nouns["space"])
    demo_data.write_topic_dataset(str(tmp_path / "t"), ["garden", "sea"], num_train=40, num_eval=10)
    import csv

    rows = list(csv.DictReader(open(tmp_path / "t" / "train" / "data.csv", encoding="utf-8")))
    assert {r["label"] for r in rows} == {"0", "1"}
    for row in rows:  # the label is the topic the sentence's nouns come from
        topic = demo_data.TOPICS[["garden", "sea"][int(row["label"])]]
        assert set(row["text"].split()) & set(topic["nouns"])
    with pytest.raises(ValueError, match=r"unknown topics \['law'\]"):
        demo_data.write_pretraining_corpus(str(tmp_path / "x.txt"), topics=["law"])
