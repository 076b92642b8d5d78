"""Serving signatures: their names, input keys and output keys, in one place.

The export code (``models/``) builds signatures with these keys and the client
(``tfx_bert/serving/task_clients.py``) reads responses with them, so the two cannot drift apart.
"""
from __future__ import annotations

import dataclasses

from tfx_bert import features

# Signature names.
SERVING_DEFAULT = "serving_default"  # raw text in, task output out
TF_EXAMPLE = "serving_tf_example"  # serialized tf.Examples in (TFMA)
EMBED = "embed"  # text -> embedding (similarity, retrieval documents)
EMBED_QUERY = "embed_query"  # retrieval: query -> embedding
CLASSIFY = "classification"  # TF Serving's Classify API
# Batch scoring (BulkInferrer): serialized tf.Examples whose features are serving_default's
# inputs (as TaskExampleGen writes them) -> serving_default's outputs.
SCORE_EXAMPLES = "score_examples"

# Inputs.
TEXT, TEXT_B = features.TEXT, features.TEXT_B
QUESTION, CONTEXT = "question", "context"
QUERY = "query"

# Outputs.
PROBABILITIES, CLASS_IDS = features.PROBABILITIES, features.CLASS_IDS
LABELS = "labels"  # multilabel: predicted label names per text, padded with ""
PREDICTED = "predicted"  # multilabel: 0/1 per label
ENTITY_TYPES, ENTITY_STARTS, ENTITY_ENDS, ENTITY_TEXTS = "entity_types", "entity_starts", "entity_ends", "entity_texts"
WORDS, WORD_TAGS = "words", "word_tags"  # NER: the input's words and each word's predicted tag
ANSWER_TEXT, ANSWER_START, ANSWER_END = "answer_text", "answer_start", "answer_end"
SCORE, NO_ANSWER_SCORE = "score", "no_answer_score"
NBEST_TEXTS, NBEST_STARTS, NBEST_ENDS = "nbest_texts", "nbest_starts", "nbest_ends"
NBEST_SCORES, NBEST_PROBABILITIES = "nbest_scores", "nbest_probabilities"
SIMILARITY, EMBEDDING = "similarity", "embedding"
# Classification-like tasks: the windows of a long text past finetune.max_windows, which the model
# did not read (0: it read all of the text; models/windows.py).
WINDOWS_CUT = features.WINDOWS_CUT


@dataclasses.dataclass(frozen=True)
class Signature:
    """A ``serving_default`` signature: the raw-text inputs it takes and the outputs it returns
    (``optional_outputs``: present for some configurations only)."""

    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    optional_outputs: tuple[str, ...] = ()


CLASSIFICATION = Signature((TEXT,), (PROBABILITIES, CLASS_IDS), optional_outputs=(WINDOWS_CUT,))
PAIR_CLASSIFICATION = Signature((TEXT, TEXT_B), (PROBABILITIES, CLASS_IDS), optional_outputs=(WINDOWS_CUT,))
MULTILABEL = Signature((TEXT,), (PROBABILITIES, PREDICTED, LABELS), optional_outputs=(WINDOWS_CUT,))
NER = Signature((TEXT,), (ENTITY_TYPES, ENTITY_STARTS, ENTITY_ENDS, ENTITY_TEXTS, WORDS, WORD_TAGS),
                optional_outputs=(WINDOWS_CUT,))
QA = Signature((QUESTION, CONTEXT), (ANSWER_TEXT, ANSWER_START, ANSWER_END, SCORE, NO_ANSWER_SCORE, NBEST_TEXTS,
                                     NBEST_STARTS, NBEST_ENDS, NBEST_SCORES, NBEST_PROBABILITIES))
SIMILARITY_PAIR = Signature((TEXT, TEXT_B), (SIMILARITY,), optional_outputs=(PROBABILITIES, CLASS_IDS))
RETRIEVAL = Signature((QUERY, TEXT), (SCORE,))  # the cosine; documents and queries: EMBED, EMBED_QUERY
RERANK = Signature((QUERY, TEXT), (SCORE,))
