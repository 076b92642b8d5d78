"""Executors of BertTrainer: TFX's Trainer executors, after folding the run-time parameters
``train_steps`` and ``model_size`` into ``train_args`` and ``custom_config``."""
from __future__ import annotations

from typing import Any

from tfx.components.trainer import executor as trainer_executor
from tfx.proto import trainer_pb2
from tfx.types import standard_component_specs as specs
from tfx.utils import json_utils, proto_utils

TRAIN_STEPS_KEY = "train_steps"
MODEL_SIZE_KEY = "model_size"


def fold_run_parameters(exec_properties: dict[str, Any]) -> dict[str, Any]:
    """The Trainer's exec properties with train_steps / model_size moved where run_fn reads them.

    Kubeflow can only bind a run-time parameter to a whole execution property, not to a field of
    ``train_args`` or a key of ``custom_config``; so BertTrainer has them as properties of their
    own and this puts them back before TFX's executor runs.
    """
    props = dict(exec_properties)
    steps = props.pop(TRAIN_STEPS_KEY, None)
    size = props.pop(MODEL_SIZE_KEY, None)
    if steps:
        props[specs.TRAIN_ARGS_KEY] = proto_utils.proto_to_json(trainer_pb2.TrainArgs(num_steps=int(steps)))
    if size:
        custom_config = json_utils.loads(props.get(specs.CUSTOM_CONFIG_KEY) or "null") or {}
        custom_config["model_size"] = size
        props[specs.CUSTOM_CONFIG_KEY] = json_utils.dumps(custom_config)
    return props


class Executor(trainer_executor.GenericExecutor):
    """Runs ``run_fn`` in this container (local runners, one Kubeflow pod)."""

    def Do(self, input_dict, output_dict, exec_properties):
        return super().Do(input_dict, output_dict, fold_run_parameters(exec_properties))
