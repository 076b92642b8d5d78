"""ServingPusher executor: TFX's Pusher, made safe for a live TF Serving model base path.

On top of the standard blessing check it
* refuses a SavedModel whose graph uses op types TF Serving 2.16 lacks;
* loads it in a fresh process (a model that cannot load is never pushed) and records every
  signature's inputs and outputs in ``assets.extra/push_metadata.json``;
* writes warm-up requests (``assets.extra/tf_serving_warmup_requests``, the PredictionLog
  TFRecord TF Serving replays at load) so the first real request is not slow;
* writes the version into a hidden staging directory and renames it into place, so a
  partially written version is never visible to a server (atomic on a local/POSIX
  filesystem);
* numbers versions monotonically (at least the newest existing version + 1) and keeps only
  the newest ``keep_versions``.

* writes the version's model card (``assets.extra/model_card.{md,html,json}``,
  ``tfx_bert/model_card.py``) from the run's artifacts: the encoder, the model it was
  warm-started from, the data spans and counts, the data gate, the evaluation against the
  baseline (both by pushed version), a student's retention, intended use and known limits.

``custom_config``: ``keep_versions`` (default 5), ``warmup_texts`` (list of strings),
``model_name`` (for the warm-up requests' model spec), and the card's ``task``,
``encoder_uri``, ``intended_use`` and ``limitations``.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid

import tensorflow as tf
from absl import logging
from tensorflow_serving.apis import predict_pb2, prediction_log_pb2
from tfx.components.pusher import executor as tfx_pusher
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import io_utils, proto_utils

from tfx_bert.serving import op_check

METADATA_FILE = "push_metadata.json"
WARMUP_FILE = "tf_serving_warmup_requests"

_SIGNATURE_PROBE = """
import json, sys
import tensorflow as tf
import tensorflow_text  # registers the ops TF Serving links in
model = tf.saved_model.load(sys.argv[1])
out = {}
for name, fn in model.signatures.items():
    _, inputs = fn.structured_input_signature
    out[name] = {
        "inputs": {k: {"dtype": v.dtype.name, "shape": v.shape.as_list()} for k, v in inputs.items()},
        "outputs": {k: {"dtype": v.dtype.name, "shape": v.shape.as_list()} for k, v in fn.structured_outputs.items()},
    }
print("SIGNATURES" + json.dumps(out))
"""


def describe_signatures_in_fresh_process(model_dir: str) -> dict:
    """Loads the SavedModel in a new Python process; returns its signatures or raises."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run([sys.executable, "-c", _SIGNATURE_PROBE, model_dir], capture_output=True, text=True, env=env)
    if proc.returncode != 0 or "SIGNATURES" not in proc.stdout:
        raise RuntimeError(f"{model_dir} does not load in a fresh process: {proc.stderr.strip().splitlines()[-1:]}")
    return json.loads(proc.stdout.split("SIGNATURES", 1)[1])


def write_warmup_requests(path: str, model_name: str, texts: list[str], signatures: dict) -> int:
    """Writes PredictionLogs (TF Serving's warm-up format) for the raw-text signature: every
    input (``text``; ``text``/``text_b``; ``question``/``context``) gets the warm-up texts."""
    if not texts or "serving_default" not in signatures:
        return 0
    inputs = signatures["serving_default"]["inputs"]
    if not inputs or any(spec["dtype"] != "string" or spec["shape"] != [None] for spec in inputs.values()):
        return 0  # only raw-text signatures get generated warm-up requests
    with tf.io.TFRecordWriter(path) as writer:
        for batch in (texts[:1], texts):  # batch 1 and a larger batch
            request = predict_pb2.PredictRequest()
            request.model_spec.name = model_name
            request.model_spec.signature_name = "serving_default"
            for key in inputs:  # text (and text_b), or question and context: the same texts in each
                request.inputs[key].CopyFrom(tf.make_tensor_proto(batch, dtype=tf.string))
            log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())
    return 2


def existing_versions(base: str) -> list[int]:
    if not tf.io.gfile.isdir(base):
        return []
    return sorted(int(d.rstrip("/")) for d in tf.io.gfile.listdir(base) if d.rstrip("/").isdigit())


EXAMPLES_KEY, DATA_GATE_KEY, EVALUATION_KEY, MODEL_RUN_KEY = "examples", "data_gate", "evaluation", "model_run"


def model_card(input_dict: dict, config: dict, base: str, version: int) -> dict:
    """The pushed version's card (``tfx_bert/model_card.py``) from the run's artifacts."""
    from tfx.components.evaluator import constants

    from tfx_bert import model_card as card_lib
    from tfx_bert.run_summary import TRAIN_METRICS

    def first(key):
        return (input_dict.get(key) or [None])[0]

    model, examples, gate, evaluation, run = (first(k) for k in (standard_component_specs.MODEL_KEY, EXAMPLES_KEY,
                                                                DATA_GATE_KEY, EVALUATION_KEY, MODEL_RUN_KEY))
    blessing = first(standard_component_specs.MODEL_BLESSING_KEY)

    def ref(uri):
        return {"uri": uri, "version": card_lib.pushed_version_of(base, uri)} if uri else None

    def prop(artifact, name, default=None):  # a custom property, plain or JSON-valued
        if artifact is None or not artifact.has_custom_property(name):
            return default
        value = artifact.get_custom_property(name)
        return artifact.get_json_value_custom_property(name) if value is None else value

    train = {}
    if run is not None and tf.io.gfile.exists(os.path.join(run.uri, TRAIN_METRICS)):
        with tf.io.gfile.GFile(os.path.join(run.uri, TRAIN_METRICS)) as f:
            train = {k: v for k, v in json.load(f).items()
                     if k in ("best_step", "steps_run", "validation_metric", "hyperparameters", "calibration",
                              "decision_thresholds")}
    role = prop(model, "model_role") or "fine-tuned"
    evaluated = card_lib.read_evaluation(evaluation.uri) if evaluation is not None else {}
    if evaluated:
        evaluated["baseline_model"] = ref(prop(blessing, constants.ARTIFACT_PROPERTY_BASELINE_MODEL_URI_KEY))
    counts = prop(examples, "ingestion_counts") or {}
    return {
        "model": {"name": config.get("model_name", ""), "version": version, "task": config.get("task", ""),
                  "role": role, "encoder": config.get("encoder_uri", ""), "uri": model.uri,
                  "warm_started_from": ref(prop(model, "warm_started_from")), **train},
        "data": {"spans": [int(span) for span in prop(examples, "spans") or []],
                 "version": examples.version if examples is not None and examples.has_property("version") else None,
                 "counts": {k: int(v) for k, v in dict(counts).items()}},
        "data_gate": {"passed": bool(prop(gate, "passed")),
                      "anomalies": [a for a in (prop(gate, "anomalies") or "").split("; ") if a]} if gate else None,
        "evaluation": evaluated,
        "retention": {name: evaluated["candidate"][name] / evaluated["baseline"][name]
                      for name in evaluated.get("gated", []) if role == "student"
                      and evaluated["baseline"].get(name) and name in evaluated["candidate"]},
        "intended_use": config.get("intended_use", ""), "limitations": config.get("limitations", ""),
    }


class Executor(tfx_pusher.Executor):
    """Checked, atomic, versioned push to a TF Serving model base path."""

    def Do(self, input_dict, output_dict, exec_properties):
        model_push = artifact_utils.get_single_instance(output_dict[standard_component_specs.PUSHED_MODEL_KEY])
        if not self.CheckBlessing(input_dict):
            self._MarkNotPushed(model_push)
            return
        model_path = self.GetModelPath(input_dict)
        config = json.loads(exec_properties.get(standard_component_specs.CUSTOM_CONFIG_KEY) or "null") or {}
        destination = pusher_pb2.PushDestination()
        proto_utils.json_to_proto(exec_properties[standard_component_specs.PUSH_DESTINATION_KEY], destination)
        if destination.WhichOneof("destination") != "filesystem":
            raise ValueError("ServingPusher pushes to a filesystem destination (a TF Serving model base path).")
        base = destination.filesystem.base_directory

        op_check.check_servable(model_path)
        signatures = describe_signatures_in_fresh_process(model_path)

        versions = existing_versions(base)
        version = max(int(time.time()), (versions[-1] + 1) if versions else 0)
        tf.io.gfile.makedirs(base)
        staging = os.path.join(base, f".staging-{version}-{uuid.uuid4().hex[:8]}")
        io_utils.copy_dir(model_path, staging)
        extra = os.path.join(staging, "assets.extra")
        tf.io.gfile.makedirs(extra)
        warmups = write_warmup_requests(os.path.join(extra, WARMUP_FILE), config.get("model_name", ""),
                                        list(config.get("warmup_texts", [])), signatures)
        metadata = {"version": version, "source": model_path, "signatures": signatures,
                    "warmup_requests": warmups, "tf_serving_ops_check": "passed (TF 2.16 core + tensorflow-text 2.12)"}
        with tf.io.gfile.GFile(os.path.join(extra, METADATA_FILE), "w") as f:
            f.write(json.dumps(metadata, indent=2))
        from tfx_bert import model_card as card_lib

        card_lib.write(model_card(input_dict, config, base, version), extra)
        serving_path = os.path.join(base, str(version))
        tf.io.gfile.rename(staging, serving_path)  # the version appears whole, or not at all
        logging.info("Pushed %s to %s", model_path, serving_path)

        keep = int(config.get("keep_versions", 5))
        for old in existing_versions(base)[:-keep] if keep > 0 else []:
            tf.io.gfile.rmtree(os.path.join(base, str(old)))

        io_utils.copy_dir(model_path, model_push.uri)
        self._MarkPushed(model_push, pushed_destination=serving_path, pushed_version=str(version))
