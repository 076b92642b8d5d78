"""BertTrainer: TFX's Trainer (same inputs, outputs and ``run_fn`` contract) whose step count and
model size are execution properties of their own, so Kubeflow can set them per run."""
from __future__ import annotations

from typing import Any

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.proto import trainer_pb2
from tfx.types.component_spec import ChannelParameter, ExecutionParameter
from tfx.types.standard_component_specs import TrainerSpec
from tfx.utils import json_utils

from tfx_bert_app.components.bert_trainer import executor
from tfx_bert_app.components.bert_trainer.executor import (DATA_DIR_KEY, MODEL_ROLE_KEY, MODEL_SIZE_KEY, TEACHER_KEY,
                                                           TRAIN_STEPS_KEY, ENCODER_KEY, DATA_GATE_KEY)
from tfx_bert_app.components.artifacts import DataGateResult


class BertTrainerSpec(TrainerSpec):
    """TrainerSpec plus ``train_steps``, ``model_size`` and ``data_dir`` (each may be a
    RuntimeParameter), ``model_role`` (published on the output Model), and an optional
    ``teacher_model`` input (a model the run_fn learns from besides ``base_model``: retrieval's
    cross-encoder; read as ``custom_config["teacher_model_dir"]``) and ``encoder`` (a fine-tuning
    Trainer's pretrained encoder: the run_fn's ``fn_args.base_model``, while the ``base_model``
    input, TFX's warm start, is the pipeline's latest blessed model, which the run_fn may continue
    from: ``custom_config["warm_start_model_dir"]``)."""

    INPUTS = {**TrainerSpec.INPUTS, TEACHER_KEY: ChannelParameter(type=types.standard_artifacts.Model, optional=True),
              ENCODER_KEY: ChannelParameter(type=types.standard_artifacts.Model, optional=True),
              DATA_GATE_KEY: ChannelParameter(type=DataGateResult, optional=True)}

    PARAMETERS = {
        **TrainerSpec.PARAMETERS,
        TRAIN_STEPS_KEY: ExecutionParameter(type=int, optional=True),
        MODEL_SIZE_KEY: ExecutionParameter(type=str, optional=True),
        DATA_DIR_KEY: ExecutionParameter(type=str, optional=True),
        MODEL_ROLE_KEY: ExecutionParameter(type=str, optional=True),
    }


class BertTrainer(base_component.BaseComponent):
    """Trainer for this project's ``run_fn``s.

    ``train_steps``, ``model_size`` and ``data_dir`` (the task data, for a ``run_fn`` that reads
    it itself: ``custom_config["task_data_dir"]``) are plain values or
    ``tfx.dsl.experimental.RuntimeParameter``s; ``vertex_job``, when given, is the Vertex
    custom-job spec (``worker_pool_specs``...) and training runs there instead of in this step's
    container. ``model_role`` ("student" for a distilled student) becomes the output Model's
    ``model_role`` custom property. ``eval_split``: the split ``run_fn`` validates on
    (``fn_args.eval_files``; fine-tuning's held-out ``validation``, so the eval split stays the
    Evaluator's).
    """

    SPEC_CLASS = BertTrainerSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(self, examples: types.BaseChannel, run_fn: str, train_steps: Any, eval_steps: int,
                 custom_config: dict | None = None, transform_graph: types.BaseChannel | None = None,
                 schema: types.BaseChannel | None = None, base_model: types.BaseChannel | None = None,
                 model_size: Any = None, vertex_job: dict | None = None, vertex_region: str = "",
                 data_dir: Any = None, teacher_model: types.BaseChannel | None = None, model_role: str = "",
                 eval_split: str = "eval", encoder: types.BaseChannel | None = None,
                 data_gate: types.BaseChannel | None = None, hyperparameters: types.BaseChannel | None = None):
        custom_config = dict(custom_config or {})
        custom_executor = None
        if vertex_job:
            from tfx.extensions.google_cloud_ai_platform import constants
            from tfx.extensions.google_cloud_ai_platform.trainer import executor as vertex

            from tfx_bert_app.components.bert_trainer import vertex_executor

            custom_config.update({vertex.TRAINING_ARGS_KEY: vertex_job, constants.ENABLE_VERTEX_KEY: True,
                                  constants.VERTEX_REGION_KEY: vertex_region})
            custom_executor = executor_spec.ExecutorClassSpec(vertex_executor.VertexExecutor)
        default_steps = train_steps if isinstance(train_steps, int) else 0
        spec = BertTrainerSpec(
            examples=examples, transform_graph=transform_graph, schema=schema, base_model=base_model,
            run_fn=run_fn, train_args=trainer_pb2.TrainArgs(num_steps=default_steps),
            eval_args=trainer_pb2.EvalArgs(num_steps=eval_steps, splits=[eval_split]),
            custom_config=json_utils.dumps(custom_config),
            train_steps=train_steps, model_size=model_size, data_dir=data_dir, teacher_model=teacher_model,
            encoder=encoder, data_gate=data_gate, hyperparameters=hyperparameters,
            model_role=model_role or None,
            model=types.Channel(type=types.standard_artifacts.Model),
            model_run=types.Channel(type=types.standard_artifacts.ModelRun),
        )
        super().__init__(spec=spec, custom_executor_spec=custom_executor)
