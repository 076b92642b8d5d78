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

``custom_config``: ``keep_versions`` (default 5), ``warmup_texts`` (list of strings),
``model_name`` (for the warm-up requests' model spec).
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
        serving_path = os.path.join(base, str(version))
        tf.io.gfile.rename(staging, serving_path)  # the version appears whole, or not at all
        logging.info("Pushed %s to %s", model_path, serving_path)

        keep = int(config.get("keep_versions", 5))
        for old in existing_versions(base)[:-keep] if keep > 0 else []:
            tf.io.gfile.rmtree(os.path.join(base, str(old)))

        io_utils.copy_dir(model_path, model_push.uri)
        self._MarkPushed(model_push, pushed_destination=serving_path, pushed_version=str(version))
