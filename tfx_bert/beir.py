"""Retrieval data: the BEIR layout and MS MARCO's TSVs, read with bad records counted.

BEIR: ``corpus.jsonl`` ({"_id", "title", "text"}), ``queries.jsonl`` ({"_id", "text"}),
``qrels/<split>.tsv`` (header, then ``query-id  corpus-id  score``). MS MARCO passage ranking:
``collection.tsv`` (pid, passage), ``queries.<split>.tsv`` (qid, query) and qrels in TREC's
four columns (qid, 0, pid, relevance).

Bad records are skipped and counted (``counters``), or raise with ``strict``, naming the file
and line: a duplicate document id (the first one is kept), an empty document or query, a qrel
naming an unknown query or document, a malformed line.
"""
from __future__ import annotations

import collections
import dataclasses
import random
import re
import zlib

from tfx_bert.records import RecordReader


@dataclasses.dataclass
class RetrievalData:
    corpus: dict  # doc id -> text (BEIR: title and text joined by a space)
    queries: dict  # query id -> text
    qrels: dict  # query id -> {doc id: relevance}
    counters: collections.Counter


class Reader(RecordReader):
    """The shared record reader (``tfx_bert.records``) with BEIR's corpus, queries and qrels."""

    def __init__(self, counters, strict: bool):
        super().__init__(counters if counters is not None else collections.Counter(), strict)

    def documents(self, path: str, fields):
        """(line, _id, the ``fields`` joined) of a BEIR corpus.jsonl or queries.jsonl."""
        for number, row in self.jsonl(path):
            if "_id" not in row:
                self.bad("malformed_line", path, number, "not an object with an _id")
                continue
            yield number, str(row["_id"]), " ".join(str(row.get(f) or "").strip() for f in fields).strip()

    def texts(self, rows, path: str, kind: str) -> dict:
        texts = {}
        for number, key, text in rows:
            if not text:
                self.bad(f"empty_{kind}", path, number, f"{kind} {key!r} has no text")
            elif key in texts:
                self.bad(f"duplicate_{kind}_id", path, number, f"{kind} id {key!r} seen before; the first is kept")
            else:
                texts[key] = text
        self.counters[f"{kind}s"] = len(texts)
        return texts

    def qrels(self, path: str, corpus: dict, queries: dict, trec: bool) -> dict:
        qrels: dict = {}
        for number, line in self.lines(path):
            columns = line.split("\t") if "\t" in line else line.split()
            if not trec and number == 1 and columns[:1] == ["query-id"]:
                continue  # BEIR's header
            if len(columns) != (4 if trec else 3):
                self.bad("malformed_line", path, number, f"{len(columns)} columns")
                continue
            query, doc, relevance = (columns[0], columns[2], columns[3]) if trec else columns
            try:
                relevance = int(float(relevance))
            except ValueError:
                self.bad("malformed_line", path, number, f"relevance {relevance!r} is not a number")
                continue
            if query not in queries:
                self.bad("unknown_query_id", path, number, f"query id {query!r} is not in the queries")
            elif doc not in corpus:
                self.bad("unknown_doc_id", path, number, f"document id {doc!r} is not in the corpus")
            else:
                qrels.setdefault(query, {})[doc] = relevance
                self.counters["qrels"] += 1
        return qrels


def read_beir(directory: str, split: str = "test", counters=None, strict: bool = False,
              qrels_path: str = "", corpus_counters=None) -> RetrievalData:
    """A BEIR dataset directory; ``split`` picks ``qrels/<split>.tsv`` (or ``qrels_path`` names
    the qrels file). Queries without judgements are kept out. ``corpus_counters``: where the
    counts of corpus.jsonl and queries.jsonl go, when they must not add up with the split's own
    (every split reads the same corpus and queries); default ``counters``."""
    reader = Reader(counters, strict)
    shared = Reader(corpus_counters, strict) if corpus_counters is not None else reader
    corpus = shared.texts(shared.documents(f"{directory}/corpus.jsonl", ("title", "text")), f"{directory}/corpus.jsonl", "doc")
    queries = shared.texts(shared.documents(f"{directory}/queries.jsonl", ("text",)), f"{directory}/queries.jsonl", "query")
    qrels = reader.qrels(qrels_path or f"{directory}/qrels/{split}.tsv", corpus, queries, trec=False)
    return RetrievalData(corpus, {q: queries[q] for q in qrels}, qrels, reader.counters)


def read_msmarco(collection: str, queries_path: str, qrels_path: str, counters=None, strict: bool = False) -> RetrievalData:
    """MS MARCO passage ranking TSVs: collection (pid, passage), queries (qid, query), qrels in
    TREC's four columns."""
    reader = Reader(counters, strict)

    def tsv(path):
        for number, line in reader.lines(path):
            if not line.strip():
                continue
            key, sep, text = line.partition("\t")
            if not sep:
                reader.bad("malformed_line", path, number, "no tab between id and text")
                continue
            yield number, key.strip(), text.strip()

    corpus = reader.texts(tsv(collection), collection, "doc")
    queries = reader.texts(tsv(queries_path), queries_path, "query")
    qrels = reader.qrels(qrels_path, corpus, queries, trec=True)
    return RetrievalData(corpus, {q: queries[q] for q in qrels}, qrels, reader.counters)


@dataclasses.dataclass
class TrainingPair:
    """One (query, relevant passage) pair with the passages to contrast it with."""

    query_id: str
    query: str
    doc_id: str
    text: str
    relevance: int
    negative_ids: list
    negatives: list


_WORD = re.compile(r"\w+")


def _words(text: str) -> frozenset:
    return frozenset(_WORD.findall(text.lower()))


def training_pairs(data: RetrievalData, num_negatives: int, negative_pool: int = 0, mined: dict | None = None):
    """One ``TrainingPair`` per relevant (query, document) judgement, with ``num_negatives``
    passages not judged relevant to the query.

    ``mined`` ({query id: doc ids}, from ``tfx_bert.mining``: BM25 or a dense model over the
    whole corpus) come first; a query its filters left short is filled from the sample below.

    Negatives are mined cheaply and reproducibly: ``negative_pool`` documents are sampled (seeded
    by the query id) and the ones sharing the most words with the query are kept: hard
    negatives from lexical overlap, the role BM25 negatives play in DPR. ``negative_pool`` 0
    keeps random ones. Cost is O(queries x pool), independent of the corpus size.
    """
    doc_ids = sorted(data.corpus)
    words: dict = {}
    for query_id in sorted(data.qrels):
        judged = data.qrels[query_id]
        positives = sorted((d for d, r in judged.items() if r > 0))
        rng = random.Random(zlib.crc32(query_id.encode("utf-8")))
        pool_size = max(negative_pool, num_negatives)
        pool, seen = [], set()
        for _ in range(min(len(doc_ids), 4 * pool_size + 8)):  # sampling with rejection
            doc = doc_ids[rng.randrange(len(doc_ids))]
            if doc not in judged and doc not in seen:
                seen.add(doc)
                pool.append(doc)
            if len(pool) == pool_size:
                break
        if len(pool) < num_negatives:
            raise ValueError(f"The corpus has too few documents not judged relevant to query {query_id!r} for "
                             f"{num_negatives} negatives; lower finetune.num_negatives.")
        if negative_pool:
            query_words = _words(data.queries[query_id])
            for doc in pool:
                if doc not in words:
                    words[doc] = _words(data.corpus[doc])
            pool = sorted(pool, key=lambda d: -len(query_words & words[d]))  # stable: ties keep sample order
        if mined is not None:
            chosen = [d for d in mined.get(query_id, []) if d not in judged][:num_negatives]
            pool = chosen + [d for d in pool if d not in chosen]
        negatives = pool[:num_negatives]
        for doc in positives:
            yield TrainingPair(query_id, data.queries[query_id], doc, data.corpus[doc], int(judged[doc]),
                               negatives, [data.corpus[d] for d in negatives])


def read_triples(path: str, counters=None, strict: bool = False):
    """MS MARCO's training triples (``query  positive passage  negative passage`` per line, as
    ``triples.train.small.tsv``) -> ``TrainingPair`` s with one hard negative each; ids are
    ``<file line>``. Lines without three non-empty fields are skipped and counted."""
    reader = Reader(counters, strict)
    for number, line in reader.lines(path):
        if not line.strip():
            continue
        columns = [c.strip() for c in line.split("\t")]
        if len(columns) != 3:
            reader.bad("malformed_line", path, number, f"{len(columns)} columns, triples have 3")
            continue
        if not all(columns):
            reader.bad("empty_text", path, number, "an empty query or passage")
            continue
        query, positive, negative = columns
        reader.counters["triples"] += 1
        yield TrainingPair(f"{number}", query, f"{number}+", positive, 1, [f"{number}-"], [negative])
