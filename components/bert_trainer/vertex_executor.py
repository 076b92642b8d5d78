"""BertTrainer's executor for Vertex AI: starts a custom job (multi-worker, GPUs, TPUs) that runs
TFX's Trainer executor with ``run_fn``; Vertex sets the cluster spec (TF_CONFIG) on each worker.

A module of its own so the Google Cloud libraries are imported only where it is used.
"""
from tfx.extensions.google_cloud_ai_platform.trainer import executor as vertex_trainer_executor

from tfx_bert_app.components.bert_trainer.executor import fold_run_parameters


class VertexExecutor(vertex_trainer_executor.GenericExecutor):
    """TFX's Vertex Trainer executor, after folding the run-time parameters."""

    def Do(self, input_dict, output_dict, exec_properties):
        return super().Do(input_dict, output_dict, fold_run_parameters(exec_properties))
