"""PretrainingDataGen executor: documents -> NSP segment pairs of WordPiece ids -> TFRecords.

Documents are grouped into ``nsp_shards`` buckets by a hash of their id; random "next
sentences" are drawn from the same bucket, so no worker needs the whole corpus (the original
script holds every document in memory). Masking is dynamic by default: the Trainer masks each
batch afresh in tf.data, so instances are written unmasked.
"""
from __future__ import annotations

import hashlib
import os
import random

import apache_beam as beam
import tensorflow as tf
from tfx.components.example_gen import write_split
from tfx.dsl.components.base import base_beam_executor
from tfx.types import artifact_utils

from tfx_bert_app.components import beam_utils, examples_io
from tfx_bert_app.components.pretraining_data import instances as instances_lib
from tfx_bert.pretraining_metadata import METADATA_FILE, read_metadata  # noqa: F401 (read_metadata: re-exported)
from tfx_bert import features, tokenization

NAMESPACE = "tfx_bert.pretraining_data"
MAX_SEQ_LENGTH = "max_seq_length"
SHORT_SEQ_PROB = "short_seq_prob"
NSP_SHARDS = "nsp_shards"
SEED = "seed"
MASKING = "masking"  # "dynamic" (in the Trainer's tf.data) or "static" (here, dupe_factor times)
DUPE_FACTOR = "dupe_factor"
MASKED_LM_PROB = "masked_lm_prob"
MAX_PREDICTIONS = "max_predictions_per_seq"
WHOLE_WORD_MASKING = "whole_word_masking"
VOCAB_DIR = "vocab"


def _shard(doc_id: str, shards: int) -> int:
    return int.from_bytes(hashlib.md5(doc_id.encode("utf-8")).digest()[:4], "big") % shards


class _CreateInstances(beam.DoFn):
    def __init__(self, vocab_dir: str, max_seq_length: int, short_seq_prob: float, seed: int, split: str,
                 props: dict):
        self._vocab_dir = vocab_dir
        self._max_seq_length = max_seq_length
        self._short_seq_prob = short_seq_prob
        self._seed = seed
        self._split = split
        self._static = props[MASKING] == "static"
        self._dupe_factor = int(props[DUPE_FACTOR]) if self._static else 1
        self._masked_lm_prob = float(props[MASKED_LM_PROB])
        self._max_predictions = int(props[MAX_PREDICTIONS])
        self._whole_word = bool(props[WHOLE_WORD_MASKING])

    def setup(self):
        self._tokenizer = tokenization.WordPieceTokenizer.from_directory(self._vocab_dir)
        suffix = self._tokenizer.config.suffix_indicator
        self._word_start = [not t.startswith(suffix) for t in self._tokenizer.vocab]

    def process(self, keyed_docs):
        shard, docs = keyed_docs
        docs = sorted(docs)  # GroupByKey order is arbitrary; sort for determinism
        sentences = [s for _, text in docs for s in text.split("\n")]
        ids = self._tokenizer.tokenize(tf.constant(sentences)).to_list() if sentences else []
        documents, cursor = [], 0
        for _, text in docs:
            n = len(text.split("\n"))
            documents.append([s for s in ids[cursor:cursor + n] if s])
            cursor += n
        documents = [d for d in documents if d]
        rng = random.Random(f"{self._seed}:{self._split}:{shard}")
        tok = self._tokenizer
        specials = {tok.cls_id, tok.sep_id, tok.pad_id}
        for _ in range(self._dupe_factor):  # static masking: each copy gets other segments and masks
            for index in range(len(documents)):
                for inst in instances_lib.create_instances_from_document(
                    documents, index, self._max_seq_length, self._short_seq_prob, tok.cls_id, tok.sep_id, rng
                ):
                    yield self._example(inst, rng, specials)

    def _example(self, inst, rng, specials):
        split = self._split
        beam_utils.counter(NAMESPACE, f"{split}_instances").inc()
        beam_utils.counter(NAMESPACE, f"{split}_tokens").inc(len(inst.token_ids))
        beam_utils.counter(NAMESPACE, f"{split}_random_next").inc(int(inst.is_random_next))
        beam_utils.counter(NAMESPACE, f"{split}_truncated").inc(int(inst.truncated))
        example = tf.train.Example()
        f = example.features.feature
        token_ids = inst.token_ids
        if self._static:
            tok = self._tokenizer
            starts = [self._word_start[t] for t in token_ids] if self._whole_word else None
            masked = instances_lib.create_masked_lm_predictions(
                token_ids, self._masked_lm_prob, self._max_predictions, tok.vocabulary_size, specials,
                tok.mask_id, rng, starts)
            token_ids = masked.token_ids
            padding = self._max_predictions - len(masked.mask_positions)
            f[features.MASK_POSITIONS].int64_list.value.extend(masked.mask_positions + [0] * padding)
            f[features.MASK_IDS].int64_list.value.extend(masked.mask_ids + [0] * padding)
            f[features.MASK_WEIGHTS].float_list.value.extend([1.0] * len(masked.mask_ids) + [0.0] * padding)
            beam_utils.counter(NAMESPACE, f"{split}_masked").inc(len(masked.mask_ids))
        f[features.TOKEN_IDS].int64_list.value.extend(token_ids)
        f[features.SEGMENT_IDS].int64_list.value.extend(inst.segment_ids)
        f[features.NEXT_SENTENCE_LABEL].int64_list.value.append(int(inst.is_random_next))
        return example


class Executor(base_beam_executor.BaseBeamExecutor):
    """Writes unmasked MLM+NSP instances for every split, plus the vocabulary they use."""

    def Do(self, input_dict, output_dict, exec_properties):
        examples = artifact_utils.get_single_instance(input_dict["examples"])
        vocabulary = artifact_utils.get_single_instance(input_dict["vocabulary"])
        output = artifact_utils.get_single_instance(output_dict["pretraining_examples"])
        splits = examples_io.split_names(examples)
        output.split_names = artifact_utils.encode_split_names(splits)
        max_seq_length = int(exec_properties[MAX_SEQ_LENGTH])
        shards = max(1, int(exec_properties[NSP_SHARDS]))
        if exec_properties[MASKING] not in ("dynamic", "static"):
            raise ValueError(f"masking must be 'dynamic' or 'static', got {exec_properties[MASKING]!r}.")

        # The vocabulary travels with the instances, so the Trainer needs no other input.
        vocab_dir = os.path.join(output.uri, VOCAB_DIR)
        tokenizer = tokenization.WordPieceTokenizer.from_directory(vocabulary.uri)
        tokenization.write_vocab_dir(vocab_dir, tokenizer.vocab, tokenizer.config)

        pipeline = self._make_beam_pipeline()
        for split in splits:
            _ = (
                pipeline
                | f"ReadText[{split}]" >> examples_io.ReadTextFeature(examples, split, features.TEXT)
                | f"Shard[{split}]" >> beam.Map(lambda kv: (_shard(kv[0], shards), kv))
                | f"Group[{split}]" >> beam.GroupByKey()
                | f"Instances[{split}]" >> beam.ParDo(_CreateInstances(
                    vocab_dir, max_seq_length, float(exec_properties[SHORT_SEQ_PROB]),
                    int(exec_properties[SEED]), split, exec_properties))
                | f"Write[{split}]" >> write_split.WriteSplit(
                    artifact_utils.get_split_uri([output], split), "FORMAT_TFRECORDS_GZIP")
            )
        result = beam_utils.run_and_wait(pipeline)
        counts = beam_utils.read_counters(result, NAMESPACE)
        stats = {}
        for split in splits:
            n = counts.get(f"{split}_instances", 0)
            if n == 0:
                raise ValueError(
                    f"No pretraining instances for split {split!r}: documents in {examples.uri} "
                    "are too short or empty; lower max_seq_length or check the corpus.")
            stats[split] = {
                "instances": n,
                "masked_token_share": (counts.get(f"{split}_masked", 0) / max(counts.get(f"{split}_tokens", 1), 1)
                                       if exec_properties[MASKING] == "static"
                                       else float(exec_properties[MASKED_LM_PROB])),
                "mean_tokens": counts.get(f"{split}_tokens", 0) / n,
                "random_next_share": counts.get(f"{split}_random_next", 0) / n,
                "truncation_rate": counts.get(f"{split}_truncated", 0) / n,
            }
        metadata = {
            "max_seq_length": max_seq_length,
            "vocab_size": tokenizer.vocabulary_size,
            "vocab_dir": VOCAB_DIR,
            "special_ids": {"pad": tokenizer.pad_id, "unk": tokenizer.unk_id, "cls": tokenizer.cls_id,
                            "sep": tokenizer.sep_id, "mask": tokenizer.mask_id},
            "masking": exec_properties[MASKING],
            "max_predictions_per_seq": int(exec_properties[MAX_PREDICTIONS]),
            "whole_word_masking": bool(exec_properties[WHOLE_WORD_MASKING]),
            # Dynamic whole-word masking (models/whole_word_masking.py) needs the "##" pieces.
            **({"continuation_ids": [i for i, t in enumerate(tokenizer.vocab)
                                     if t.startswith(tokenizer.config.suffix_indicator)]}
               if exec_properties[WHOLE_WORD_MASKING] and exec_properties[MASKING] == "dynamic" else {}),
            "statistics": stats,
        }
        beam_utils.write_json(output.uri, METADATA_FILE, metadata)
        output.set_string_custom_property("payload_format", "FORMAT_TF_EXAMPLE")
        output.set_json_value_custom_property("statistics", stats)
