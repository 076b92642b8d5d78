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
import json


@dataclasses.dataclass
class RetrievalData:
    corpus: dict  # doc id -> text (BEIR: title and text joined by a space)
    queries: dict  # query id -> text
    qrels: dict  # query id -> {doc id: relevance}
    counters: collections.Counter


class _Reader:
    def __init__(self, counters, strict: bool):
        self.counters = counters if counters is not None else collections.Counter()
        self.strict = strict

    def bad(self, kind: str, path: str, line: int, detail: str) -> None:
        self.counters[f"skipped_{kind}"] += 1
        if self.strict:
            raise ValueError(f"{path}:{line}: {kind.replace('_', ' ')}: {detail} (strict mode)")

    def lines(self, path: str):
        import tensorflow as tf

        with tf.io.gfile.GFile(path, "rb") as f:
            for number, raw in enumerate(f, 1):
                try:
                    yield number, raw.decode("utf-8").rstrip("\r\n")
                except UnicodeDecodeError as e:
                    self.bad("invalid_utf8", path, number, str(e))

    def jsonl(self, path: str, fields):
        for number, line in self.lines(path):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                self.bad("invalid_json", path, number, str(e))
                continue
            if not isinstance(row, dict) or "_id" not in row:
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


def read_beir(directory: str, split: str = "test", counters=None, strict: bool = False) -> RetrievalData:
    """A BEIR dataset directory; ``split`` picks ``qrels/<split>.tsv``. Queries without
    judgements are kept out."""
    reader = _Reader(counters, strict)
    corpus = reader.texts(reader.jsonl(f"{directory}/corpus.jsonl", ("title", "text")), f"{directory}/corpus.jsonl", "doc")
    queries = reader.texts(reader.jsonl(f"{directory}/queries.jsonl", ("text",)), f"{directory}/queries.jsonl", "query")
    qrels = reader.qrels(f"{directory}/qrels/{split}.tsv", corpus, queries, trec=False)
    return RetrievalData(corpus, {q: queries[q] for q in qrels}, qrels, reader.counters)


def read_msmarco(collection: str, queries_path: str, qrels_path: str, counters=None, strict: bool = False) -> RetrievalData:
    """MS MARCO passage ranking TSVs: collection (pid, passage), queries (qid, query), qrels in
    TREC's four columns."""
    reader = _Reader(counters, strict)

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
