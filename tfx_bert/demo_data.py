"""The embedded default data: a small pretraining corpus and a sentiment dataset, generated.

Nothing is downloaded. The corpus is a synthetic English-like language with structure a tiny
BERT can learn, so the demo and tests can check that learning happens:

* every document has one topic; its sentences draw nouns, verbs and adjectives from that
  topic's lexicon, so a masked content word is predictable from the rest of the sequence
  (MLM beats the unigram baseline) and a random "next sentence" from another document usually
  comes from another topic (NSP beats 50%);
* each subject noun has a preferred verb, a local dependency MLM can pick up.

The sentiment set reuses the corpus's nouns with polar adjectives and adverbs; a label is the
polarity of the review's sentiment words, with a little label noise so accuracy is not trivially
100%.
"""
from __future__ import annotations

import csv
import json
import os
import random

TOPICS = {
    "kitchen": dict(
        nouns="chef soup bread oven garlic onion pepper butter recipe kettle".split(),
        verbs="bakes stirs slices boils roasts tastes".split(),
        adjs="fresh spicy warm crisp salty sweet".split(),
    ),
    "space": dict(
        nouns="rocket planet comet orbit galaxy telescope astronaut moon crater star".split(),
        verbs="launches orbits observes circles reaches scans".split(),
        adjs="distant bright frozen vast dark silent".split(),
    ),
    "sports": dict(
        nouns="team coach striker goal stadium referee match league ball keeper".split(),
        verbs="scores defends passes wins tackles trains".split(),
        adjs="fast strong tired loud young brave".split(),
    ),
    "garden": dict(
        nouns="gardener tulip rose hedge seed soil ladder fence tree shovel".split(),
        verbs="plants waters prunes digs grows trims".split(),
        adjs="green tall wild muddy tidy blooming".split(),
    ),
    "music": dict(
        nouns="singer guitar piano drummer melody chorus violin band album concert".split(),
        verbs="plays records tunes hums composes rehearses".split(),
        adjs="quiet loud gentle catchy slow classical".split(),
    ),
    "sea": dict(
        nouns="sailor boat harbor wave anchor whale island captain net lighthouse".split(),
        verbs="sails drifts anchors crosses fishes steers".split(),
        adjs="stormy calm salty deep blue windy".split(),
    ),
}
NAMES = "anna boris chen dara elif farid greta hugo ines jonas kira luca mira nils omar".split()
POSITIVE = "wonderful great delightful excellent superb lovely brilliant charming".split()
NEGATIVE = "terrible awful boring dreadful poor dull horrible clumsy".split()
ADVERBS = "really truly quite very".split()


def _preferred_verb(topic: dict, noun: str) -> str:
    verbs = topic["verbs"]
    return verbs[topic["nouns"].index(noun) % len(verbs)]


def _sentence(rng: random.Random, topic: dict, name: str) -> str:
    noun = rng.choice(topic["nouns"])
    obj = rng.choice(topic["nouns"])
    verb = _preferred_verb(topic, noun)
    adj = rng.choice(topic["adjs"])
    templates = (
        f"the {adj} {noun} {verb} the {obj} .",
        f"{name} says the {noun} {verb} the {adj} {obj} .",
        f"every morning the {noun} {verb} a {adj} {obj} .",
        f"in the evening , {name} sees that the {noun} {verb} the {obj} again .",
        f"nobody knew why the {adj} {noun} {verb} the {obj} .",
    )
    return rng.choice(templates)


def write_pretraining_corpus(path: str, num_documents: int = 1200, seed: int = 13,
                             topics: list[str] | None = None) -> dict:
    """Writes BERT's raw format: one sentence per line, a blank line between documents;
    ``topics``: only documents of these (a domain of the corpus; default all).

    Returns counts of documents and sentences written.
    """
    rng = random.Random(seed)
    topic_names = sorted(_known_topics(topics))
    sentences = 0
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for doc in range(num_documents):
            topic = TOPICS[topic_names[doc % len(topic_names)]]
            name = rng.choice(NAMES)
            n = rng.randint(4, 10)
            for _ in range(n):
                f.write(_sentence(rng, topic, name) + "\n")
            f.write("\n")
            sentences += n
    return {"documents": num_documents, "sentences": sentences}


def _known_topics(topics: list[str] | None) -> list[str]:
    unknown = sorted(set(topics or ()) - set(TOPICS))
    if unknown:
        raise ValueError(f"unknown topics {unknown}; the corpus has {sorted(TOPICS)}")
    return list(topics or TOPICS)


def _review(rng: random.Random, positive: bool, topics: list[str] | None = None) -> str:
    topic = TOPICS[rng.choice(sorted(_known_topics(topics)))]
    polar = POSITIVE if positive else NEGATIVE
    noun, noun2 = rng.choice(topic["nouns"]), rng.choice(topic["nouns"])
    word, word2 = rng.choice(polar), rng.choice(polar)
    adverb = rng.choice(ADVERBS)
    neutral = rng.choice(topic["adjs"])
    templates = (
        f"the {noun} was {adverb} {word} .",
        f"the {neutral} {noun} felt {word} and the {noun2} was {word2} .",
        f"i think the {noun} is {word} .",
        f"what a {word} {noun} , {adverb} {word2} .",
        f"the {noun} and the {noun2} were {adverb} {word} .",
    )
    return rng.choice(templates)


def _write_csv_splits(directory: str, header: list[str], sizes: dict, row) -> dict:
    """``<split>/data.csv`` for each split in ``sizes`` ({split: rows}), ``row()`` making each."""
    for split, n in sizes.items():
        os.makedirs(os.path.join(directory, split), exist_ok=True)
        with open(os.path.join(directory, split, "data.csv"), "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(header)
            writer.writerows(row() for _ in range(n))
    return dict(sizes)


def write_sentiment_dataset(
    directory: str, num_train: int = 2000, num_eval: int = 400, seed: int = 7,
    label_noise: float = 0.03, positive_share: float = 0.5, topics: list[str] | None = None,
) -> dict:
    """Writes ``train/data.csv`` and ``eval/data.csv`` with columns ``text,label`` (1 = positive,
    ``positive_share`` of the rows; 0 rows: the split is not written); ``topics``: reviews of
    these topics' nouns only (default all)."""
    rng = random.Random(seed)

    def row():
        positive = rng.random() < positive_share
        text = _review(rng, positive, topics)
        label = int(positive)
        if rng.random() < label_noise:
            label = 1 - label
        return [text, label]

    return _write_csv_splits(directory, ["text", "label"], {k: n for k, n in (("train", num_train), ("eval", num_eval))
                                                            if n}, row)


def write_topic_dataset(directory: str, topics: list[str], num_train: int = 150, num_eval: int = 400,
                        seed: int = 41) -> dict:
    """``train/data.csv`` and ``eval/data.csv`` (``text,label``): a corpus-style sentence and the
    index in ``topics`` of the topic it was drawn from. What it takes is knowing which words go
    together in a domain: what pretraining on that domain's text teaches."""
    rng = random.Random(seed)
    known = _known_topics(topics)

    def row():
        label = rng.randrange(len(known))
        return [_sentence(rng, TOPICS[known[label]], rng.choice(NAMES)), label]

    return _write_csv_splits(directory, ["text", "label"], {"train": num_train, "eval": num_eval}, row)


def write_long_sentiment_dataset(directory: str, num_train: int = 2000, num_eval: int = 400, seed: int = 17,
                                 lead: int = 9, trail: int = 5) -> dict:
    """Long reviews for windows (``finetune.max_windows``): ``lead`` neutral sentences of the
    pretraining corpus's kind, the review sentence that decides the label, then up to ``trail``
    more. With the demo's 64-piece sequences the deciding sentence lies past the first window
    (``lead`` 9: from piece 63 on; 92 to 195 pieces a text), so a model that reads the first 64
    pieces only can do no better than chance. Columns ``text,label`` as ``write_sentiment_dataset``."""
    rng = random.Random(seed)
    topic_names = sorted(TOPICS)

    def row():
        topic, name = TOPICS[rng.choice(topic_names)], rng.choice(NAMES)
        positive = rng.random() < 0.5
        sentences = [_sentence(rng, topic, name) for _ in range(lead)] + [_review(rng, positive)]
        sentences += [_sentence(rng, topic, name) for _ in range(rng.randint(0, trail))]
        return [" ".join(sentences), int(positive)]

    return _write_csv_splits(directory, ["text", "label"], {"train": num_train, "eval": num_eval}, row)


# The continuous-training demo's drops (`tfx-bert demo --loop`): span -> (seed, share of positive
# reviews). Span 2 carries label drift (90% positive against span 1's half): the data gate stops it.
LOOP_SPANS = {1: (101, 0.5), 2: (102, 0.9), 3: (103, 0.5)}
LOOP_TRAIN_PATTERN, LOOP_EVAL_PATTERN = "span-{SPAN}/train/*", "eval/*"


def write_sentiment_span(directory: str, span: int, num_train: int = 1000) -> str:
    """Writes the loop demo's span ``span`` (``LOOP_SPANS``) as ``span-<span>/train/data.csv``
    under ``directory`` and, once, the fixed eval set ``eval/data.csv``; returns the span's dir."""
    seed, share = LOOP_SPANS[span]
    if not os.path.exists(os.path.join(directory, "eval", "data.csv")):
        write_sentiment_dataset(directory, num_train=0, num_eval=400, seed=100)
    write_sentiment_dataset(os.path.join(directory, f"span-{span}"), num_train=num_train, num_eval=0, seed=seed,
                            positive_share=share)
    return os.path.join(directory, f"span-{span}")


MRPC_HEADER = ["Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"]


def write_pair_dataset(directory: str, num_train: int = 2000, num_eval: int = 400, seed: int = 11) -> dict:
    """Sentence pairs in GLUE's MRPC layout (``train.tsv``, ``dev.tsv``): ``Quality`` is 1 when
    both sentences come from the same topic, 0 otherwise (half and half)."""
    rng = random.Random(seed)
    topic_names = sorted(TOPICS)
    os.makedirs(directory, exist_ok=True)
    counts = {}
    for filename, n in (("train.tsv", num_train), ("dev.tsv", num_eval)):
        with open(os.path.join(directory, filename), "w", encoding="utf-8") as f:
            f.write("\t".join(MRPC_HEADER) + "\n")
            for i in range(n):
                same = rng.random() < 0.5
                first = rng.choice(topic_names)
                second = first if same else rng.choice([t for t in topic_names if t != first])
                a = _sentence(rng, TOPICS[first], rng.choice(NAMES))
                b = _sentence(rng, TOPICS[second], rng.choice(NAMES))
                f.write("\t".join([str(int(same)), str(2 * i), str(2 * i + 1), a, b]) + "\n")
        counts[filename] = n
    return counts


PERSONS = ["Anna Berg", "Boris", "Chen Li", "Dara Okafor", "Elif", "Farid Haddad", "Greta", "Hugo Martin",
           "Ines Costa", "Jonas", "Kira Sato", "Luca", "Mira Novak", "Nils", "Omar Aziz", "Petra", "Quinn Ward",
           "Rosa Diaz", "Sven", "Tariq Khan"]
LOCATIONS = ["Paris", "New York", "Lake Geneva", "Oslo", "Cape Town", "Kyoto", "Lima", "Buenos Aires",
             "Nairobi", "Quebec City", "Porto", "Hanoi", "Santa Cruz", "Tromso", "Mount Kenya", "Dublin"]
ORGANIZATIONS = ["Acme Tools", "Harbor Company", "Blue Moon Records", "Stellar Labs", "Green Garden Club",
                 "Sea Rescue Group", "Northwind", "Orbit Systems", "Piano Guild", "Red Star United",
                 "Atlas Bank", "Kettle Works"]
NER_TEMPLATES = (
    "{PER} flew to {LOC} on monday .",
    "{PER} works for {ORG} in {LOC} .",
    "in {LOC} , {PER} met {PER2} .",
    "{ORG} opened an office in {LOC} .",
    "nobody in {LOC} knew {PER} .",
    "the {adj} {noun} of {ORG} {verb} the {obj} .",
    "{PER} says the {noun} {verb} the {obj} .",
    "{PER2} and {PER} left {ORG} last year .",
)


def _held_out(names: list[str], every: int = 4) -> tuple[list[str], list[str]]:
    """(train names, eval-only names): every ``every``-th name is unseen in training."""
    return [n for i, n in enumerate(names) if i % every], [n for i, n in enumerate(names) if not i % every]


def write_ner_dataset(directory: str, num_train: int = 1500, num_eval: int = 300, seed: int = 17) -> dict:
    """CoNLL-2003 layout (``train.txt``, ``dev.txt``: word POS chunk tag, IOB1 tags as in the
    original files, ``-DOCSTART-`` lines). Entities PER, LOC, ORG; a quarter of the names
    appear only in the eval split, so recognising them takes context, not memory."""
    rng = random.Random(seed)
    pools = {"PER": _held_out(PERSONS), "LOC": _held_out(LOCATIONS), "ORG": _held_out(ORGANIZATIONS)}
    os.makedirs(directory, exist_ok=True)
    for filename, n, split in (("train.txt", num_train, 0), ("dev.txt", num_eval, 1)):
        with open(os.path.join(directory, filename), "w", encoding="utf-8") as f:
            f.write("-DOCSTART- -X- -X- O\n\n")
            for _ in range(n):
                topic = TOPICS[rng.choice(sorted(TOPICS))]
                noun = rng.choice(topic["nouns"])
                slots = {"adj": rng.choice(topic["adjs"]), "noun": noun, "verb": _preferred_verb(topic, noun),
                         "obj": rng.choice(topic["nouns"])}
                for slot, kind in (("PER", "PER"), ("PER2", "PER"), ("LOC", "LOC"), ("ORG", "ORG")):
                    names = pools[kind][1] if split and rng.random() < 0.5 else pools[kind][0]
                    slots[slot] = rng.choice(names)
                previous_type = None
                for piece in rng.choice(NER_TEMPLATES).split():
                    if piece.startswith("{") and piece[1:-1] in ("PER", "PER2", "LOC", "ORG"):
                        entity_type = piece[1:-1].rstrip("2")
                        for word in slots[piece[1:-1]].split():
                            # IOB1: B- only where an entity directly follows one of the same type.
                            prefix = "B" if previous_type == entity_type and word == slots[piece[1:-1]].split()[0] else "I"
                            f.write(f"{word} NNP I-NP {prefix}-{entity_type}\n")
                        previous_type = entity_type
                    else:
                        f.write(f"{piece.format(**slots)} X O O\n")
                        previous_type = None
                f.write("\n")
    return {"train.txt": num_train, "dev.txt": num_eval}


def _qa_paragraph(rng: random.Random, index: int, unanswerable_rate: float) -> dict:
    """One SQuAD paragraph in the corpus's language: three people who each do one thing
    ("Anna bakes the warm bread. Boris boils the fresh soup. ..."), among sentences of other
    topics; a question names a person and the verb ("What is it that Boris boils?"), so the
    answer takes matching the question to its sentence, not just finding a phrase of the
    right shape. Some questions ask about a verb nobody in the context does (unanswerable)."""
    topic_name = rng.choice(sorted(TOPICS))
    topic = TOPICS[topic_name]
    people = [n.capitalize() for n in rng.sample(NAMES, 4)]
    verbs = rng.sample(topic["verbs"], 4)
    sentences, facts = [], []  # facts: (person, verb, sentence index, answer)
    for person, verb, noun in zip(people[:3], verbs, rng.sample(topic["nouns"], 3)):
        answer = f"{rng.choice(topic['adjs'])} {noun}"
        facts.append((person, verb, len(sentences), answer))
        sentences.append(f"{person} {verb} the {answer}.")
    others = [t for t in sorted(TOPICS) if t != topic_name]
    for _ in range(rng.randint(1, 5)):
        filler = _sentence(rng, TOPICS[rng.choice(others)], people[3].lower()).rstrip(" .")
        sentences.append(filler[0].upper() + filler[1:] + ".")
    order = list(range(len(sentences)))
    rng.shuffle(order)
    context, starts = "", {}
    for i in order:
        starts[i] = len(context)
        context += sentences[i] + " "
    context = context.strip()
    qas = []
    for n, (person, verb, sentence, answer) in enumerate(rng.sample(facts, 2)):
        start = starts[sentence] + sentences[sentence].index(answer)
        qas.append({"id": f"q{index}-{n}", "question": f"What is it that {person} {verb}?", "is_impossible": False,
                    "answers": [{"text": answer, "answer_start": start},
                                {"text": "the " + answer, "answer_start": start - 4}]})
    if rng.random() < unanswerable_rate * 2:
        qas.append({"id": f"q{index}-x", "question": f"What is it that {rng.choice(people[:3])} {verbs[3]}?",
                    "is_impossible": True, "answers": []})
    return {"context": context, "qas": qas}


def write_qa_dataset(directory: str, num_train: int = 1200, num_eval: int = 200, seed: int = 19,
                     unanswerable_rate: float = 0.1) -> dict:
    """SQuAD 2.0 JSON (``train.json``, ``dev.json``) of ``_qa_paragraph``s. Many contexts run
    past one 64-piece window, so answers are found across ``doc_stride`` windows."""
    rng = random.Random(seed)
    os.makedirs(directory, exist_ok=True)
    counts = {}
    for filename, n, offset in (("train.json", num_train, 0), ("dev.json", num_eval, num_train)):
        paragraphs = [_qa_paragraph(rng, offset + i, unanswerable_rate) for i in range(n)]
        data = {"version": "v2.0", "data": [{"title": f"demo-{filename.split('.')[0]}", "paragraphs": paragraphs}]}
        with open(os.path.join(directory, filename), "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1)
        counts[filename] = sum(len(p["qas"]) for p in paragraphs)
    return counts


STSB_HEADER = ["index", "genre", "filename", "year", "old_index", "source1", "source2", "sentence1", "sentence2", "score"]


STS_KINDS = {  # kind: (gold score, share of pairs)
    "same": (5.0, 0.1), "other_adjective": (4.0, 0.25), "swapped_roles": (1.5, 0.25),
    "same_topic": (2.5, 0.2), "other_topic": (0.0, 0.2),
}


def _sts_pair(rng: random.Random) -> tuple[str, str, float]:
    """Two corpus-language sentences and a 0-5 similarity that word overlap alone does not
    give: swapping subject and object keeps every word but scores 1.5; another adjective
    scores 4; different words of the same topic 2.5; another topic 0 (with a little noise)."""
    topic_names = sorted(TOPICS)
    name = rng.choice(topic_names)
    topic = TOPICS[name]
    noun, obj = rng.sample(topic["nouns"], 2)
    adj = rng.choice(topic["adjs"])
    verb = rng.choice(topic["verbs"])
    first = f"the {adj} {noun} {verb} the {obj} ."
    kind = rng.choices(sorted(STS_KINDS), weights=[STS_KINDS[k][1] for k in sorted(STS_KINDS)])[0]
    if kind == "same":
        second = first
    elif kind == "other_adjective":
        second = f"the {rng.choice([a for a in topic['adjs'] if a != adj])} {noun} {verb} the {obj} ."
    elif kind == "swapped_roles":
        second = f"the {adj} {obj} {verb} the {noun} ."
    else:
        pool = topic if kind == "same_topic" else TOPICS[rng.choice([t for t in topic_names if t != name])]
        others = [n for n in pool["nouns"] if n not in (noun, obj)]
        second = (f"the {rng.choice([a for a in pool['adjs'] if a != adj])} {rng.choice(others)} "
                  f"{rng.choice([v for v in pool['verbs'] if v != verb])} the {rng.choice(others)} .")
    score = min(5.0, max(0.0, STS_KINDS[kind][0] + rng.uniform(-0.2, 0.2)))
    return first, second, round(score, 2)


def write_sts_dataset(directory: str, num_train: int = 2000, num_eval: int = 400, seed: int = 23) -> dict:
    """Sentence pairs with 0-5 similarity scores in GLUE's STS-B layout (``train.tsv``,
    ``dev.tsv``: ``sentence1``, ``sentence2``, ``score``)."""
    rng = random.Random(seed)
    os.makedirs(directory, exist_ok=True)
    for filename, n in (("train.tsv", num_train), ("dev.tsv", num_eval)):
        with open(os.path.join(directory, filename), "w", encoding="utf-8") as f:
            f.write("\t".join(STSB_HEADER) + "\n")
            for i in range(n):
                a, b, score = _sts_pair(rng)
                f.write("\t".join([str(i), "demo", "corpus", "2026", str(i), "demo", "demo", a, b, f"{score:.2f}"]) + "\n")
    return {"train.tsv": num_train, "dev.tsv": num_eval}


NLI_LABELS = ["entailment", "neutral", "contradiction"]


def write_nli_dataset(directory: str, num_train: int = 2000, num_eval: int = 400, seed: int = 29) -> dict:
    """NLI-style pairs (MNLI's ``sentence1``, ``sentence2``, ``gold_label`` columns): the
    hypothesis drops the premise's adjective (entailment), changes its object (contradiction),
    or is a sentence of another topic (neutral)."""
    rng = random.Random(seed)
    topic_names = sorted(TOPICS)
    os.makedirs(directory, exist_ok=True)
    for filename, n in (("train.tsv", num_train), ("dev.tsv", num_eval)):
        with open(os.path.join(directory, filename), "w", encoding="utf-8") as f:
            f.write("index\tsentence1\tsentence2\tgold_label\n")
            for i in range(n):
                name = rng.choice(topic_names)
                topic = TOPICS[name]
                noun, obj = rng.choice(topic["nouns"]), rng.choice(topic["nouns"])
                verb, adj = _preferred_verb(topic, noun), rng.choice(topic["adjs"])
                premise = f"the {adj} {noun} {verb} the {obj} ."
                label = rng.choice(NLI_LABELS)
                if label == "entailment":
                    hypothesis = f"the {noun} {verb} the {obj} ."
                elif label == "contradiction":
                    other = rng.choice([w for w in topic["nouns"] if w != obj])
                    hypothesis = f"the {noun} {verb} the {other} ."
                else:
                    other = TOPICS[rng.choice([t for t in topic_names if t != name])]
                    hypothesis = _sentence(rng, other, rng.choice(NAMES))
                f.write(f"{i}\t{premise}\t{hypothesis}\t{label}\n")
    return {"train.tsv": num_train, "dev.tsv": num_eval}


def write_retrieval_dataset(directory: str, num_docs: int = 600, eval_share: float = 0.2, seed: int = 31) -> dict:
    """A BEIR-layout retrieval set (``corpus.jsonl``, ``queries.jsonl``, ``qrels/train.tsv``,
    ``qrels/dev.tsv``) in the corpus language. Each document states two facts of one topic,
    "<name> says the <noun> <verb> the <adj> <object> .", with a third sentence by someone else,
    in random order; a fact's query asks for it ("does the <noun> <verb> the <object> for
    <name> ?"). Every other document shares words with it (a name, a noun, the topic), so
    matching the combination is what finds the right one.

    Train queries ask for both facts of most documents and for the first fact of ``eval_share``
    of them; the dev queries ask for those documents' second facts. So every document is
    relevant to some train query, and models learn to represent both facts of a document.
    (With dev documents that never answered a train query, a model can learn "these documents
    are never relevant" from their appearances as training negatives, and rank dev answers
    last: a small cross-encoder did.) Random Recall@10: 10 / num_docs."""
    rng = random.Random(seed)
    topic_names = sorted(TOPICS)
    facts, docs, queries, qrels = set(), [], [], {"train": [], "dev": []}

    def new_fact(topic, exclude_name):
        while True:
            noun, obj = rng.sample(TOPICS[topic]["nouns"], 2)
            fact = (topic, rng.choice([n for n in NAMES if n != exclude_name]), noun, obj)
            if fact not in facts:
                facts.add(fact)
                return fact

    def statement(fact):
        topic, name, noun, obj = fact
        lexicon = TOPICS[topic]
        verb = _preferred_verb(lexicon, noun)
        return (f"{name} says the {noun} {verb} the {rng.choice(lexicon['adjs'])} {obj} .",
                f"does the {noun} {verb} the {obj} for {name} ?")

    for i in range(num_docs):
        topic = rng.choice(topic_names)
        first = new_fact(topic, None)
        second = new_fact(topic, first[1])
        (first_sentence, first_query), (second_sentence, second_query) = statement(first), statement(second)
        sentences = [first_sentence, second_sentence,
                     _sentence(rng, TOPICS[topic], rng.choice([n for n in NAMES if n not in (first[1], second[1])]))]
        rng.shuffle(sentences)
        doc_id = f"d{i:05d}"
        docs.append({"_id": doc_id, "title": "", "text": " ".join(sentences)})
        queries += [{"_id": f"q{i:05d}a", "text": first_query}, {"_id": f"q{i:05d}b", "text": second_query}]
        qrels["train"].append((f"q{i:05d}a", doc_id))
        qrels["dev" if i < int(num_docs * eval_share) else "train"].append((f"q{i:05d}b", doc_id))
    os.makedirs(os.path.join(directory, "qrels"), exist_ok=True)
    for name, rows in (("corpus.jsonl", docs), ("queries.jsonl", queries)):
        with open(os.path.join(directory, name), "w", encoding="utf-8") as f:
            f.writelines(json.dumps(row) + "\n" for row in rows)
    for split, pairs in qrels.items():
        with open(os.path.join(directory, "qrels", f"{split}.tsv"), "w", encoding="utf-8") as f:
            f.write("query-id\tcorpus-id\tscore\n")
            f.writelines(f"{q}\t{d}\t1\n" for q, d in pairs)
    return {"corpus.jsonl": len(docs), "qrels/train.tsv": len(qrels["train"]), "qrels/dev.tsv": len(qrels["dev"])}


def write_multilabel_dataset(directory: str, num_train: int = 1500, num_eval: int = 300, seed: int = 37) -> dict:
    """Multi-label topic tagging: ``train/data.csv`` and ``eval/data.csv`` with columns
    ``text,labels``; a text has one sentence from each of 1-3 topics, ``labels`` names those
    topics joined by ``|`` (e.g. ``space|sea``), so every subset of labels can occur."""
    rng = random.Random(seed)
    names = sorted(TOPICS)

    def row():
        topics = rng.sample(names, rng.choice((1, 1, 2, 2, 3)))
        sentences = [_sentence(rng, TOPICS[t], rng.choice(NAMES)) for t in topics]
        return [" ".join(sentences), "|".join(sorted(topics))]

    return _write_csv_splits(directory, ["text", "labels"], {"train": num_train, "eval": num_eval}, row)


def demo_paths(data_dir: str) -> dict:
    """Where ``write_demo_data(data_dir)`` puts each dataset (computed only: nothing is written):
    the pretraining corpus, and each registered task's demo dataset (``Task.demo``)."""
    from tfx_bert import tasks

    paths = {name: os.path.join(data_dir, name) for name in tasks.demo_datasets()}
    return {"corpus": os.path.join(data_dir, "corpus", "corpus.txt"), **paths}


def write_demo_data(data_dir: str) -> dict:
    """Writes the whole embedded default under ``data_dir`` (idempotent: skips what exists);
    returns ``demo_paths(data_dir)``."""
    from tfx_bert import tasks

    summary = demo_paths(data_dir)
    if not os.path.exists(summary["corpus"]):
        write_pretraining_corpus(summary["corpus"])
    for name, demo in tasks.demo_datasets().items():
        if not os.path.exists(os.path.join(summary[name], demo.marker)):
            (globals()[demo.writer] if isinstance(demo.writer, str) else demo.writer)(summary[name])
    return summary


def write_if_used(data_dir: str, *paths: str) -> bool:
    """Writes the embedded data when one of ``paths`` (a run's configured inputs) lies in it and
    it is missing; returns whether the run uses it. The pipeline commands call this before
    building a pipeline, so building one writes nothing."""
    demo = demo_paths(data_dir).values()
    used = any(path and any(path == p or path.startswith(p + os.sep) for p in demo) for path in paths)
    if used:
        write_demo_data(data_dir)
    return used
