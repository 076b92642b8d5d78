"""BertTuner: TFX's Tuner (same spec, ``tuner_fn`` contract and outputs) whose results also list
every trial with its time (see executor.py); the fine-tuning Trainer takes its best values."""
from tfx import v1 as tfx
from tfx.dsl.components.base import executor_spec

from tfx_bert_app.components.bert_tuner import executor


class BertTuner(tfx.components.Tuner):
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)
