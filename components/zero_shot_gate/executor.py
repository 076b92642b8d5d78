"""ZeroShotGate executor: the similarity model must beat the encoder it started from.

A fine-tuned sentence-similarity model is worth shipping only if it ranks the eval pairs better
than the pretrained encoder does out of the box (its ``export-embedder`` model: mean pooling, or a
sentence-transformers import's own, cosine of normalised embeddings). TFMA's Evaluator gates on
the value threshold and on the latest blessed model; this step reads its blessing, computes the
Spearman correlation of the candidate's ``similarity`` and of the zero-shot cosine with the gold
scores on the eval split, and writes the blessing the Pusher reads: blessed when TFMA blessed
the candidate and it beats the zero-shot encoder.
"""
from __future__ import annotations

import json
import os

import numpy as np
import tensorflow as tf
from tfx.components.evaluator import constants
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils

from tfx_bert import features
from tfx_bert import signatures as sig
from tfx_bert.corpus_embedding import serving_dir

EVAL_SPLIT, POOLING, MAX_SEQ_LENGTH = "eval_split", "pooling", "max_seq_length"
METRICS_FILE = "zero_shot_gate.json"


def read_pairs(examples, split: str) -> tuple[list[bytes], list[bytes], np.ndarray]:
    """(texts, second texts, gold scores) of a split of TaskExampleGen's similarity examples."""
    files = tf.io.gfile.glob(os.path.join(artifact_utils.get_split_uri([examples], split), "*"))
    spec = {features.TEXT: tf.io.FixedLenFeature([], tf.string), features.TEXT_B: tf.io.FixedLenFeature([], tf.string),
            features.LABEL: tf.io.FixedLenFeature([], tf.float32)}
    a, b, gold = [], [], []
    for record in tf.data.TFRecordDataset(files, compression_type="GZIP"):
        parsed = tf.io.parse_single_example(record, spec)
        a.append(parsed[features.TEXT].numpy())
        b.append(parsed[features.TEXT_B].numpy())
        gold.append(float(parsed[features.LABEL]))
    if len(gold) < 2:
        raise ValueError(f"The {split} split has {len(gold)} scored pairs: too few to rank.")
    return a, b, np.array(gold)


def spearman(gold: np.ndarray, predicted: np.ndarray) -> float:
    from scipy import stats

    value = stats.spearmanr(gold, predicted).statistic
    return float(value) if np.isfinite(value) else 0.0  # a constant prediction ranks nothing


class Executor(base_executor.BaseExecutor):
    def Do(self, input_dict, output_dict, exec_properties):
        from tfx_bert_app.models import embedder
        from tfx_bert_app.models import encoder as encoder_lib

        model = artifact_utils.get_single_instance(input_dict["model"])
        upstream = artifact_utils.get_single_instance(input_dict["blessing"])
        examples = artifact_utils.get_single_instance(input_dict["examples"])
        encoder = artifact_utils.get_single_instance(input_dict["encoder"])
        blessing = artifact_utils.get_single_instance(output_dict["gated_blessing"])
        a, b, gold = read_pairs(examples, exec_properties[EVAL_SPLIT])
        serve = tf.saved_model.load(serving_dir(model)).signatures["serving_default"]
        candidate = serve(text=tf.constant(a), text_b=tf.constant(b))[sig.SIMILARITY].numpy()
        encoder_dir = encoder_lib.resolve_dir(os.path.join(encoder.uri, "Format-Serving"))
        settings = embedder.embedder_settings(encoder_dir, exec_properties[POOLING] or None, True,
                                              int(exec_properties[MAX_SEQ_LENGTH]) or None)
        zero_shot_dir = os.path.join(blessing.uri, "zero_shot_model")
        embed = tf.saved_model.load(embedder.export_embedder(encoder_dir, zero_shot_dir, settings)).signatures["embed"]
        cosine = np.sum(embed(text=tf.constant(a))["embedding"].numpy() * embed(text=tf.constant(b))["embedding"].numpy(),
                        axis=-1)
        tfma_blessed = bool(upstream.get_int_custom_property(constants.ARTIFACT_PROPERTY_BLESSED_KEY))
        report = {"pairs": len(gold), "candidate_spearman": spearman(gold, candidate),
                  "zero_shot_spearman": spearman(gold, cosine), "evaluator_blessed": tfma_blessed}
        report["blessed"] = tfma_blessed and report["candidate_spearman"] > report["zero_shot_spearman"]
        write_blessing(blessing, model, report)
        print(f"  [gate] Spearman {report['candidate_spearman']:.3f} against the zero-shot encoder's "
              f"{report['zero_shot_spearman']:.3f} (Evaluator {'blessed' if tfma_blessed else 'NOT blessed'}): "
              f"{'BLESSED' if report['blessed'] else 'NOT blessed'}", flush=True)


def write_blessing(blessing, model, report: dict) -> None:
    """A ModelBlessing as TFX's Evaluator writes it (marker file, ``blessed`` and the current
    model's properties), plus the report."""
    tf.io.gfile.makedirs(blessing.uri)
    with tf.io.gfile.GFile(os.path.join(blessing.uri, METRICS_FILE), "w") as f:
        f.write(json.dumps(report, indent=2))
    marker = constants.BLESSED_FILE_NAME if report["blessed"] else constants.NOT_BLESSED_FILE_NAME
    with tf.io.gfile.GFile(os.path.join(blessing.uri, marker), "w") as f:
        f.write("")
    blessing.set_string_custom_property(constants.ARTIFACT_PROPERTY_CURRENT_MODEL_URI_KEY, model.uri)
    blessing.set_int_custom_property(constants.ARTIFACT_PROPERTY_CURRENT_MODEL_ID_KEY, model.id)
    blessing.set_int_custom_property(constants.ARTIFACT_PROPERTY_BLESSED_KEY,
                                     constants.BLESSED_VALUE if report["blessed"] else constants.NOT_BLESSED_VALUE)
