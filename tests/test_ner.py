"""models.ner: in-graph entity spans with character offsets, against the seqeval-verified
tagging module."""
import random

import tensorflow as tf

from tfx_bert import tagging
from tfx_bert_app.models import ner

TYPES = ["PER", "LOC"]


def test_in_graph_entity_spans_match_the_tagging_module():
    rng = random.Random(3)
    names = tagging.tag_names(TYPES)
    rows = [[rng.randrange(len(names)) for _ in range(rng.randint(1, 9))] for _ in range(300)]
    width = max(len(r) for r in rows)
    dense = tf.constant([r + [-1] * (width - len(r)) for r in rows], tf.int64)
    texts = [" ".join(f"w{j}" for j in range(len(r))) for r in rows]
    starts = tf.ragged.constant([[3 * j for j in range(len(r))] for r in rows], dtype=tf.int64)
    ends = tf.ragged.constant([[3 * j + 2 for j in range(len(r))] for r in rows], dtype=tf.int64)
    out = ner.entity_spans(dense, starts, ends, tf.constant(texts), TYPES)
    for i, row in enumerate(rows):
        expected = tagging.entities([names[t] for t in row])
        got_types = [t.decode() for t in out["entity_types"][i].numpy() if t]
        got = list(zip(got_types, out["entity_starts"][i].numpy()[:len(got_types)] // 3,
                       (out["entity_ends"][i].numpy()[:len(got_types)] - 2) // 3))
        assert got == expected, (row, got, expected)
        for text, (_, first, last) in zip(out["entity_texts"][i].numpy(), expected):
            assert text.decode() == texts[i][3 * first:3 * last + 2]


