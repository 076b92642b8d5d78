"""DataGate executor: decides whether a span of task data may be trained on.

Anomalies, each named with its feature, measure, value and threshold:
1. the ExampleValidator's: the split statistics against the schema (the curated one from
   ``finetune.schema_path`` via ImportSchemaGen, else the inferred one), every split;
2. rows whose label is outside the label set (the ExampleGen skipped and counted them: a new label
   value arrived);
3. drift of the train split against the data behind the latest blessed model (its
   ``data_profile.json``, which the Trainer copied from the gate that let that data through;
   never a rejected span's): the label distribution (L-infinity distance), the text length in
   word pieces and the unknown-piece rate (Jensen-Shannon divergence); ``tfx_bert/data_profile.py``.

The result artifact holds ``data_gate.json`` (passed, the anomalies, the profile and what it was
compared with) and ``data_profile.json``; its ``passed`` custom property (1 or 0) is what the
pipeline's ``tfx.dsl.Cond`` reads: nothing after the gate runs on a span that did not pass,
unless ``allow_anomalies`` lets it through knowingly (the anomalies are still recorded).
"""
from __future__ import annotations

import dataclasses
import json
import os

import tensorflow as tf
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils

from tfx_bert import data_profile, features

LABEL_LINF, LENGTH_JS, UNKNOWN_JS = "label_linf", "length_js", "unknown_js"
ALLOW_ANOMALIES = "allow_anomalies"
PROFILE_SPLIT = "train"
PROFILE_FILE, RESULT_FILE = data_profile.PROFILE_FILE, data_profile.GATE_FILE
PASSED = "passed"  # the result's custom property the pipeline's Cond reads
_TEXT_KEYS = (features.TEXT, "context")  # classification, tagging, ranking; QA
_LABEL_KEYS = (features.LABEL, features.TAGS)  # class ids (one or several); NER's tag ids


def schema_anomalies(anomalies) -> list[data_profile.Anomaly]:
    """The ExampleValidator's anomalies (``SchemaDiff.pb`` of each split)."""
    from tensorflow_metadata.proto.v0 import anomalies_pb2

    found = []
    for split in artifact_utils.decode_split_names(anomalies.split_names):
        path = os.path.join(artifact_utils.get_split_uri([anomalies], split), "SchemaDiff.pb")
        if not tf.io.gfile.exists(path):
            continue
        proto = anomalies_pb2.Anomalies.FromString(tf.io.gfile.GFile(path, "rb").read())
        for feature, info in sorted(proto.anomaly_info.items()):
            found.append(data_profile.Anomaly(feature, f"schema ({split}): {info.short_description}",
                                              info.description, None))
        if proto.HasField("dataset_anomaly_info"):
            found.append(data_profile.Anomaly("(dataset)", f"schema ({split})",
                                              proto.dataset_anomaly_info.description, None))
    return found


def ingestion_anomalies(examples) -> list[data_profile.Anomaly]:
    """Rows with a label outside the label set, from the ExampleGen's counts."""
    counts = examples.get_json_value_custom_property("ingestion_counts") if examples.has_custom_property(
        "ingestion_counts") else {}
    unknown = int((counts or {}).get("skipped_unknown_label", 0))
    return [data_profile.Anomaly("label", "rows with a label outside the label set", unknown, 0)] if unknown else []


def profile_split(examples, split: str, tokenizer, batch_size: int = 512) -> data_profile.Profile:
    """The profile of one split: labels, and each text's pieces and unknown pieces under
    ``tokenizer`` (tokenized in batches with the served tokenizer's ops)."""
    profile = data_profile.Profile()
    pattern = os.path.join(artifact_utils.get_split_uri([examples], split), "*")
    records = tf.data.TFRecordDataset(tf.io.gfile.glob(pattern), compression_type="GZIP").batch(batch_size)
    for batch in records.as_numpy_iterator():
        rows = [tf.train.Example.FromString(record).features.feature for record in batch]
        texts = [next((f[k].bytes_list.value[0] for k in _TEXT_KEYS if k in f and f[k].bytes_list.value), b"")
                 for f in rows]
        pieces = tokenizer.tokenize(tf.constant(texts))
        lengths = pieces.row_lengths().numpy()
        unknown = tf.reduce_sum(tf.cast(tf.equal(pieces, tokenizer.unk_id), tf.int64), axis=1).numpy()
        for f, length, unk in zip(rows, lengths, unknown):
            labels = next((list(f[k].int64_list.value) for k in _LABEL_KEYS if k in f and f[k].int64_list.value), [])
            profile.add(labels, int(length), int(unk))
    return profile


def baseline_profile(models) -> tuple[data_profile.Profile | None, str]:
    """The profile of the data behind the latest blessed model (none: first run, or a model
    trained before the gate existed) and where it came from."""
    if not models:
        return None, ""
    path = os.path.join(models[0].uri, PROFILE_FILE)
    if not tf.io.gfile.exists(path):
        return None, ""
    with tf.io.gfile.GFile(path) as f:
        return data_profile.Profile.from_dict(json.load(f)), models[0].uri


class Executor(base_executor.BaseExecutor):
    def Do(self, input_dict, output_dict, exec_properties):
        from tfx_bert_app.models import encoder as encoder_lib

        examples = artifact_utils.get_single_instance(input_dict["examples"])
        result = artifact_utils.get_single_instance(output_dict["result"])
        found = [a for anomalies in input_dict.get("anomalies") or [] for a in schema_anomalies(anomalies)]
        found += ingestion_anomalies(examples)
        profile, baseline, baseline_uri = None, None, ""
        if input_dict.get("encoder"):
            from tfx_bert.corpus_embedding import serving_dir

            tokenizer = encoder_lib.load_tokenizer(serving_dir(input_dict["encoder"][0]))
            profile = profile_split(examples, PROFILE_SPLIT, tokenizer)
            baseline, baseline_uri = baseline_profile(input_dict.get("baseline_model"))
        if profile and baseline:
            found += data_profile.drift(profile, baseline, float(exec_properties[LABEL_LINF]),
                                        float(exec_properties[LENGTH_JS]), float(exec_properties[UNKNOWN_JS]))
        allowed = bool(exec_properties.get(ALLOW_ANOMALIES))
        passed = not found or allowed
        report = {"passed": passed, "allowed_anomalies": bool(found) and allowed,
                  "anomalies": [dataclasses.asdict(a) for a in found], "span": examples.span,
                  "profile": dataclasses.asdict(profile) if profile else None,
                  "baseline_model": baseline_uri, "baseline_profile": dataclasses.asdict(baseline) if baseline else None}
        tf.io.gfile.makedirs(result.uri)
        for name, value in ((RESULT_FILE, report), (PROFILE_FILE, report["profile"])):
            with tf.io.gfile.GFile(os.path.join(result.uri, name), "w") as f:
                f.write(json.dumps(value, indent=2))
        result.set_int_custom_property(PASSED, int(passed))
        result.set_string_custom_property("anomalies", "; ".join(map(str, found)))
        compared = f"against the data of {baseline_uri}" if baseline else "(no blessed model's data to compare with)"
        span = f"span {examples.span}" if examples.has_custom_property("spans") else "the data"
        print(f"  [data gate] {span}: {profile.rows if profile else '?'} train rows {compared}: "
              + ("passed" if not found else ("let through by finetune.allow_anomalies: " if allowed else "STOPPED: ")
                 + "; ".join(map(str, found))), flush=True)
