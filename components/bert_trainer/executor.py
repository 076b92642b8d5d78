"""Executors of BertTrainer: TFX's Trainer executors, after folding the run-time parameters
``train_steps``, ``model_size`` and ``data_dir`` into ``train_args`` and ``custom_config``."""
from __future__ import annotations

from typing import Any

from tfx.components.trainer import executor as trainer_executor
from tfx.proto import trainer_pb2
from tfx.types import standard_component_specs as specs
from tfx.utils import json_utils, proto_utils

from tfx_bert.config import TASK_DATA_DIR, TEACHER_MODEL_DIR, WARM_START_MODEL_DIR

TRAIN_STEPS_KEY = "train_steps"
MODEL_SIZE_KEY = "model_size"
DATA_DIR_KEY = "data_dir"  # the task data, for a run_fn that reads it itself (retrieval's mining round)
TEACHER_KEY = "teacher_model"  # an optional Model input: a model the run_fn learns from (retrieval's cross-encoder)
DATA_GATE_KEY = "data_gate"  # an optional DataGateResult input: its data profile is kept with the model
# An optional Model input: the pretrained encoder of a fine-tuning Trainer whose ``base_model`` is
# the model it continues from (TFX's warm start: the pipeline's latest blessed model, if any).
ENCODER_KEY = "encoder"
# The run_fn's record of its start (models/finetuning.warm_start), in the model-run dir; the
# executor publishes it as the output Model's ``warm_started_from`` custom property.
WARM_START_FILE = "warm_start.json"
# What the trained Model is, published as its custom property of the same name: "student" for a
# distilled student, which the fine-tuning pipeline's baseline resolver must not take for a teacher.
MODEL_ROLE_KEY = "model_role"
STUDENT_ROLE = "student"


def fold_run_parameters(exec_properties: dict[str, Any]) -> dict[str, Any]:
    """The Trainer's exec properties with train_steps / model_size moved where run_fn reads them.

    Kubeflow can only bind a run-time parameter to a whole execution property, not to a field of
    ``train_args`` or a key of ``custom_config``; so BertTrainer has them as properties of their
    own and this puts them back before TFX's executor runs.
    """
    props = dict(exec_properties)
    props.pop(MODEL_ROLE_KEY, None)  # read by mark_model_role, not by the run_fn
    steps = props.pop(TRAIN_STEPS_KEY, None)
    folded = {"model_size": props.pop(MODEL_SIZE_KEY, None), TASK_DATA_DIR: props.pop(DATA_DIR_KEY, None)}
    if steps:
        props[specs.TRAIN_ARGS_KEY] = proto_utils.proto_to_json(trainer_pb2.TrainArgs(num_steps=int(steps)))
    if any(folded.values()):
        custom_config = json_utils.loads(props.get(specs.CUSTOM_CONFIG_KEY) or "null") or {}
        custom_config.update({k: v for k, v in folded.items() if v})
        props[specs.CUSTOM_CONFIG_KEY] = json_utils.dumps(custom_config)
    return props


def steps_for_epochs(exec_properties: dict[str, Any], examples) -> dict[str, Any]:
    """With ``epochs`` > 0 in ``custom_config``: ``train_args.num_steps`` = epochs x the training
    split's examples / batch size, counted here (the count is only known once the data is)."""
    custom_config = json_utils.loads(exec_properties.get(specs.CUSTOM_CONFIG_KEY) or "null") or {}
    epochs = float(custom_config.get("epochs") or 0)
    if epochs <= 0:
        return exec_properties
    import math
    import os

    import tensorflow as tf
    from tfx.types import artifact_utils

    train_args = trainer_pb2.TrainArgs()
    proto_utils.json_to_proto(exec_properties.get(specs.TRAIN_ARGS_KEY) or "{}", train_args)
    splits = list(train_args.splits) or ["train"]
    files = [f for split in splits for f in tf.io.gfile.glob(
        os.path.join(artifact_utils.get_split_uri(examples, split), "*"))]
    count = int(tf.data.TFRecordDataset(files, compression_type="GZIP").reduce(0, lambda n, _: n + 1))
    if count == 0:
        raise ValueError(f"finetune.epochs={epochs:g}, but the training split ({', '.join(splits)}) has no examples.")
    batch_size = int(custom_config.get("batch_size") or 32)
    steps = max(1, math.ceil(epochs * count / batch_size))
    print(f"  [train] {epochs:g} epochs of {count} examples at batch {batch_size}: {steps} steps", flush=True)
    train_args.num_steps = steps
    return {**exec_properties, specs.TRAIN_ARGS_KEY: proto_utils.proto_to_json(train_args)}


class Executor(trainer_executor.GenericExecutor):
    """Runs ``run_fn`` in this container (local runners, one Kubeflow pod)."""

    def Do(self, input_dict, output_dict, exec_properties):
        props = steps_for_epochs(fold_run_parameters(exec_properties), input_dict[specs.EXAMPLES_KEY])
        super().Do(*with_model_inputs(props, input_dict, output_dict))
        mark_model_role(output_dict, exec_properties)
        mark_warm_start(output_dict)
        keep_data_profile(input_dict, output_dict)


def keep_data_profile(input_dict: dict, output_dict: dict) -> None:
    """Copies the data gate's ``data_profile.json`` into the output Model's directory: the profile
    of the data behind the model, which the next span's gate compares with once it is blessed."""
    import os

    import tensorflow as tf

    from tfx_bert.data_profile import PROFILE_FILE

    for gate in input_dict.get(DATA_GATE_KEY) or []:
        source = os.path.join(gate.uri, PROFILE_FILE)
        if tf.io.gfile.exists(source):
            for model in output_dict[specs.MODEL_KEY]:
                tf.io.gfile.copy(source, os.path.join(model.uri, PROFILE_FILE), overwrite=True)


def mark_model_role(output_dict: dict, exec_properties: dict[str, Any]) -> None:
    """Sets the ``model_role`` execution property (if any) as the output Model's custom property,
    which the launcher publishes to MLMD with the artifact."""
    role = exec_properties.get(MODEL_ROLE_KEY)
    if role:
        for model in output_dict[specs.MODEL_KEY]:
            model.set_string_custom_property(MODEL_ROLE_KEY, role)


def mark_warm_start(output_dict: dict) -> None:
    """The model the run_fn continued from (its ``warm_start.json``), as the output Model's
    ``warm_started_from`` custom property (the model's URI; absent after a cold start)."""
    import json
    import os

    import tensorflow as tf

    for run in output_dict.get(specs.MODEL_RUN_KEY, []):
        path = os.path.join(run.uri, WARM_START_FILE)
        if not tf.io.gfile.exists(path):
            continue
        with tf.io.gfile.GFile(path) as f:
            record = json.load(f)
        for model in output_dict[specs.MODEL_KEY]:
            if record.get("warm"):
                model.set_string_custom_property("warm_started_from", record["from"])


def with_model_inputs(exec_properties: dict[str, Any], input_dict: dict, output_dict: dict) -> tuple:
    """(inputs, outputs, properties) for TFX's executor. With an ``encoder`` input (fine-tuning),
    the run_fn's ``base_model`` becomes the encoder, and the ``base_model`` given (the model to
    continue from) is passed as ``custom_config["warm_start_model_dir"]``. The optional
    ``teacher_model`` input's SavedModel dir becomes ``custom_config["teacher_model_dir"]``.
    Without either, everything is unchanged."""
    from tfx_bert.corpus_embedding import serving_dir

    inputs, found = dict(input_dict), {}
    if input_dict.get(TEACHER_KEY):
        found[TEACHER_MODEL_DIR] = serving_dir(input_dict[TEACHER_KEY][0])
    if input_dict.get(ENCODER_KEY):
        if input_dict.get(specs.BASE_MODEL_KEY):
            found[WARM_START_MODEL_DIR] = serving_dir(input_dict[specs.BASE_MODEL_KEY][0])
        inputs[specs.BASE_MODEL_KEY] = input_dict[ENCODER_KEY]
    if not found:
        return inputs, output_dict, exec_properties
    custom_config = json_utils.loads(exec_properties.get(specs.CUSTOM_CONFIG_KEY) or "null") or {}
    custom_config.update(found)
    return inputs, output_dict, {**exec_properties, specs.CUSTOM_CONFIG_KEY: json_utils.dumps(custom_config)}
