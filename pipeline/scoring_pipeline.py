"""The batch-scoring pipeline (``tfx-bert score``): a pushed model over files.

TaskExampleGen (the task's loader, ``finetune``'s settings, labels not read; bad records skipped
and counted) -> ServedModel (the pushed version as a Model artifact) -> TFX's BulkInferrer
(``score_examples`` signature, on Beam: local, Dataflow, Flink or Spark with the ``beam``
settings) -> PredictionLogs, which ``tfx_bert.scoring`` decodes into the scored file.
"""
from __future__ import annotations

import os

from tfx.proto import bulk_inferrer_pb2

from tfx_bert import signatures as sig
from tfx_bert import tasks
from tfx_bert.config import ProjectConfig
from tfx_bert_app.components.bulk_inferrer.component import BulkInferrer
from tfx_bert_app.components.served_model.component import ServedModel
from tfx_bert_app.components.task_example_gen import executor as gen_ex
from tfx_bert_app.pipeline import common, task_wiring


def input_location(config: ProjectConfig) -> tuple[str, str]:
    """(input_base, score_pattern) of ``score.input_pattern``: the pattern is absolute; BEIR's
    qrels are read against ``finetune.data_dir`` (its corpus and queries)."""
    pattern = config.score.input_pattern
    if "://" not in pattern:
        pattern = os.path.abspath(pattern)
    return (config.finetune.data_dir if config.finetune.input_format == "beir" else ""), pattern


def create_scoring_pipeline(config: ProjectConfig, version: str, beam_args: list[str]):
    """The pipeline scoring ``score.input_pattern`` with pushed ``version`` of ``score.model_name``."""
    f = config.finetune
    task = tasks.get_task(f.task)
    input_base, pattern = input_location(config)
    gen = task_wiring.example_gen(task, f, input_base, score_pattern=pattern)
    served = ServedModel(model_base=os.path.join(config.serving_base, config.score.model_name), version=version)
    inferrer = BulkInferrer(
        examples=gen.outputs["examples"], model=served.outputs["model"],
        data_spec=bulk_inferrer_pb2.DataSpec(example_splits=[gen_ex.SCORE]),
        model_spec=bulk_inferrer_pb2.ModelSpec(model_signature_name=[sig.SCORE_EXAMPLES]))
    return common.make_pipeline(config, config.score.pipeline_name, [gen, served, inferrer], beam_args)
