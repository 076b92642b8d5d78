"""WordPieceVocabGen executor: Beam word counts -> WordPiece learner -> vocab.txt.

Word counting is distributed (``Count.PerElement`` is a combiner, so no worker holds more than
its share of the counts table); only the aggregated table reaches the learner, which runs
tensorflow-text's WordPiece learning algorithm (``wordpiece_tokenizer_learner_lib.learn``).
"""
from __future__ import annotations

import json
import os
import time

import apache_beam as beam
import tensorflow as tf
from tensorflow_text.tools.wordpiece_vocab import wordpiece_tokenizer_learner_lib as learner
from tfx.dsl.components.base import base_beam_executor
from tfx.types import artifact_utils

from tfx_bert_app.components import beam_utils, examples_io
from tfx_bert import tokenization

NAMESPACE = "tfx_bert.vocab"
VOCAB_SIZE = "vocab_size"
LOWER_CASE = "lower_case"
NUM_UNUSED = "num_unused_tokens"
VOCAB_PATH = "vocab_path"
MAX_BYTES_PER_WORD = "max_bytes_per_word"
TEXT_FEATURE = "text_feature"
COUNTS_DIR = "word_counts"


class _CountWordsInBundle(beam.DoFn):
    """Counts words per bundle before the shuffle (combiner lifting by hand: one element per
    distinct word and bundle instead of one per word). The table is flushed when it grows
    past ``max_entries``, so memory stays bounded whatever the bundle size."""

    def __init__(self, lower_case: bool, max_entries: int = 200_000):
        self._lower_case = lower_case
        self._max_entries = max_entries

    def start_bundle(self):
        self._counts: dict[str, int] = {}

    def process(self, kv):
        words = tokenization.basic_tokenize(kv[1], lower_case=self._lower_case)
        beam_utils.counter(NAMESPACE, "words").inc(len(words))
        counts = self._counts
        for word in words:
            counts[word] = counts.get(word, 0) + 1
        if len(counts) > self._max_entries:
            yield from self._flush()

    def finish_bundle(self):
        from apache_beam.transforms.window import GlobalWindow
        from apache_beam.utils.windowed_value import WindowedValue

        for kv in self._flush():
            yield WindowedValue(kv, -1, [GlobalWindow()])

    def _flush(self):
        counts, self._counts = self._counts, {}
        yield from counts.items()


def _read_counts(pattern: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for path in tf.io.gfile.glob(pattern):
        with tf.io.gfile.GFile(path) as f:
            for line in f:
                word, count = json.loads(line)
                counts[word] = counts.get(word, 0) + count
    # Sorted, so the learner sees the same order whatever the number of shards/workers.
    return dict(sorted(counts.items()))


class Executor(base_beam_executor.BaseBeamExecutor):
    """Learns (or imports) a WordPiece vocabulary into a Vocabulary artifact."""

    def Do(self, input_dict, output_dict, exec_properties):
        vocabulary = artifact_utils.get_single_instance(output_dict["vocabulary"])
        config = tokenization.TokenizerConfig(
            lower_case=bool(exec_properties[LOWER_CASE]),
            max_bytes_per_word=int(exec_properties[MAX_BYTES_PER_WORD]),
        )
        existing = exec_properties.get(VOCAB_PATH) or ""
        report: dict = {"lower_case": config.lower_case}
        if existing:
            vocab = tokenization.read_vocab(existing)
            report["source"] = existing
        else:
            examples = artifact_utils.get_single_instance(input_dict["examples"])
            vocab, counted = self._learn(examples, vocabulary.uri, exec_properties, config)
            report.update(counted)
        tokenization.write_vocab_dir(vocabulary.uri, vocab, config)
        report["vocab_size"] = len(vocab)
        beam_utils.write_json(vocabulary.uri, "vocab_report.json", report)
        vocabulary.set_int_custom_property("vocab_size", len(vocab))
        vocabulary.set_int_custom_property("lower_case", int(config.lower_case))

    def _learn(self, examples, out_dir, props, config):
        counts_prefix = os.path.join(out_dir, COUNTS_DIR, "counts")
        start = time.time()
        pipeline = self._make_beam_pipeline()
        _ = (
            pipeline
            | "ReadText" >> examples_io.ReadTextFeature(examples, "train", props[TEXT_FEATURE])
            | "CountInBundle" >> beam.ParDo(_CountWordsInBundle(config.lower_case))
            | "Count" >> beam.CombinePerKey(sum)
            | "Encode" >> beam.Map(lambda kv: json.dumps([kv[0], kv[1]], ensure_ascii=False))
            | "WriteCounts" >> beam.io.WriteToText(counts_prefix, file_name_suffix=".jsonl")
        )
        result = beam_utils.run_and_wait(pipeline)
        counters = beam_utils.read_counters(result, NAMESPACE)
        counts = _read_counts(counts_prefix + "*.jsonl")
        if not counts:
            raise ValueError(f"No words found in the train split of {examples.uri}.")
        counted = time.time()
        vocab = learner.learn(
            counts,
            vocab_size=int(props[VOCAB_SIZE]),
            reserved_tokens=tokenization.reserved_tokens(int(props[NUM_UNUSED])),
            max_token_length=int(props[MAX_BYTES_PER_WORD]),
        )
        return list(vocab), {"distinct_words": len(counts), "words": counters.get("words", 0),
                             "count_seconds": round(counted - start, 2),
                             "learn_seconds": round(time.time() - counted, 2)}
