"""Groups of task settings that several tasks share; a task's ``Settings`` class inherits the
groups it uses (``models/tasks/``), so each setting has one definition and one set of rules."""
from __future__ import annotations

import dataclasses
from typing import Literal

from tfx_bert.tasks import TaskSettings


@dataclasses.dataclass
class PoolingSettings(TaskSettings):
    """A sentence embedding pooled from the encoder's outputs."""

    pooling: Literal["mean", "cls", "max"] = "mean"


@dataclasses.dataclass
class VectorIndexSettings(TaskSettings):
    """After a blessed embedding model, index a corpus into the vector store."""

    index_corpus: str = ""  # BEIR corpus.jsonl or MS MARCO collection.tsv
    index_corpus_format: Literal["beir", "msmarco"] = "beir"
    # Milvus: a local file (Milvus Lite) or http(s)://host:19530; empty -> <work_dir>/vectors/milvus.db
    vector_store_uri: str = ""
    # FLAT (exact) | IVF_FLAT (Milvus Lite); HNSW, IVF_PQ, ... on a cluster
    index_type: str = "IVF_FLAT"

    PIPELINE_ONLY = ("index_corpus", "index_corpus_format", "vector_store_uri", "index_type")


@dataclasses.dataclass
class NegativeSettings(TaskSettings):
    """Hard negatives for ranking data (TaskExampleGen beir | msmarco_triples).

    ``negative_miner``: "sample" (``negative_pool`` sampled docs for lexical negatives; 0:
    random) | "bm25": BM25 over the whole corpus ranks each query's candidates; negatives from
    ranks [negative_rank_min, negative_rank_max) of the non-positives, scoring below the query's
    weakest positive minus negative_margin (BM25 units; -inf: no filter, right for fully judged
    data; 0 or more drops probable false negatives of sparse judgements, as MS MARCO's); short
    lists are filled from the sample. "dense": the same with ``negative_model`` ranking the
    corpus (a SavedModel with embed / embed_query: the retrieval pipeline's pushed model), so a
    re-ranker trains on the dual encoder's candidates; "latest" ("latest:<pipeline>"): the newest
    model the retrieval pipeline (tfx-bert-retrieval, or that one) blessed, looked up in MLMD
    when a local run starts. "hybrid": that model's and BM25's rankings fused by reciprocal rank
    (what `retrieve --mode hybrid` hands a re-ranker); rank window only, no margin."""

    num_negatives: int = 3  # per (query, passage) pair (msmarco_triples: 1)
    negative_pool: int = 32
    negative_miner: Literal["sample", "bm25", "dense", "hybrid"] = "sample"
    negative_model: str = ""
    negative_rank_min: int = 0
    negative_rank_max: int = 30
    negative_margin: float = float("-inf")

    def ranks_candidates(self) -> bool:
        """Whether negatives come from a ranking (a miner other than sampling)."""
        return self.negative_miner != "sample"

    def checks(self, finetune) -> list[tuple[bool, str]]:
        ranked = self.ranks_candidates() or getattr(self, "mining_steps", 0) > 0
        return [
            (self.negative_miner not in ("dense", "hybrid") or bool(self.negative_model),
             f"finetune.negative_miner={self.negative_miner} needs finetune.negative_model: a SavedModel with embed "
             "and embed_query signatures (e.g. the retrieval pipeline's pushed model)"),
            (self.negative_miner != "hybrid" or self.negative_margin == float("-inf"),
             "finetune.negative_margin is in the first stage's score units (BM25, cosine); negative_miner=hybrid "
             "fuses ranks: leave the margin unset, or mine with bm25 or dense"),
            (not ranked or 0 <= self.negative_rank_min < self.negative_rank_max,
             "finetune.negative_miner bm25 / dense / hybrid and mining_steps need 0 <= negative_rank_min < "
             "negative_rank_max"),
            (not ranked or 1 <= self.num_negatives <= self.negative_rank_max - self.negative_rank_min,
             "finetune.negative_miner bm25 / dense / hybrid and mining_steps need 1 <= num_negatives <= "
             "negative_rank_max - negative_rank_min (the window the negatives come from)"),
        ]

    def example_gen_args(self, finetune, negative_model: str) -> dict:
        """TaskExampleGen's ranking-data arguments (``negative_model``: resolved to a path)."""
        mining = (dict(miner=self.negative_miner, model=negative_model, num_negatives=self.num_negatives,
                       rank_min=self.negative_rank_min, rank_max=self.negative_rank_max, margin=self.negative_margin)
                  if self.ranks_candidates() else None)
        return dict(input_format=finetune.input_format, num_negatives=self.num_negatives,
                    negative_pool=self.negative_pool, negative_mining=mining)


def query_length_check(max_query_length: int, finetune, what: str) -> tuple[bool, str]:
    """``max_query_length`` leaves room for [CLS], the [SEP]s and the rest of the sequence."""
    return (0 < max_query_length <= finetune.max_seq_length - 4,
            f"finetune.max_query_length must be 1..max_seq_length-4 (room for [CLS], [SEP]s and {what}); got "
            f"{max_query_length} with finetune.max_seq_length {finetune.max_seq_length}")


@dataclasses.dataclass
class WindowSettings(TaskSettings):
    """Long texts (``models/windows.py``): a text past ``max_seq_length`` is read in windows of
    it, one every ``doc_stride`` pieces (0: half a window), at most ``max_windows`` a text. 1
    window: the text is cut at ``max_seq_length`` as BERT does, and the windows it would have
    needed are still counted (``windows_cut``: in the served response and the Trainer's
    report). A pair task windows its second text; its first is cut to half a window."""

    max_windows: int = 1
    doc_stride: int = 0

    def windowed(self) -> bool:
        return self.max_windows > 1

    def stride(self, seq_len: int) -> int:
        """Pieces between window starts: ``doc_stride``, or half a single text's window."""
        return self.doc_stride or max(1, (seq_len - 2) // 2)

    def checks(self, finetune) -> list[tuple[bool, str]]:
        return [(self.max_windows >= 1, f"finetune.max_windows must be at least 1 (1: no windows), not {self.max_windows}"),
                (0 <= self.doc_stride <= finetune.max_seq_length - 3,
                 f"finetune.doc_stride must be 0 (half a window) to max_seq_length-3 pieces, not {self.doc_stride}")]


@dataclasses.dataclass
class PooledWindowSettings(WindowSettings):
    """Windows of a text classified as one: the model pools its windows' logits."""

    # mean: the default (README, "Long documents": on the demo's long reviews mean pooling was as
    # accurate as max and its probabilities calmer); max suits "is it anywhere in the text" labels.
    window_pooling: Literal["mean", "max"] = "mean"

    def checks(self, finetune) -> list[tuple[bool, str]]:
        return super().checks(finetune) + [
            (self.window_pooling in ("mean", "max"), f"finetune.window_pooling must be mean or max, not {self.window_pooling!r}")]
