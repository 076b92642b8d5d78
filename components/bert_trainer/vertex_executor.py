"""BertTrainer's executor for Vertex AI: starts a custom job (multi-worker, GPUs, TPUs) that runs
TFX's Trainer executor with ``run_fn``; Vertex sets the cluster spec (TF_CONFIG) on each worker.

A module of its own so the Google Cloud libraries are imported only where it is used.
"""
from tfx.extensions.google_cloud_ai_platform.trainer import executor as vertex_trainer_executor

from tfx.types import standard_component_specs as specs

from tfx_bert_app.components.bert_trainer.executor import (fold_run_parameters, keep_data_profile, mark_model_role,
                                                           mark_warm_start, steps_for_epochs, with_model_inputs)


class VertexExecutor(vertex_trainer_executor.GenericExecutor):
    """TFX's Vertex Trainer executor, after folding the run-time parameters (and epochs into
    steps: the training split is counted here, where it is readable, before the job starts)."""

    def Do(self, input_dict, output_dict, exec_properties):
        props = steps_for_epochs(fold_run_parameters(exec_properties), input_dict[specs.EXAMPLES_KEY])
        super().Do(*with_model_inputs(props, input_dict, output_dict))
        mark_model_role(output_dict, exec_properties)
        mark_warm_start(output_dict)
        keep_data_profile(input_dict, output_dict)
