"""BulkInferrer: TFX's component (its spec, inputs and parameters) with the executor in
executor.py, which loads the project's TF2 SavedModels on the Beam workers."""
from __future__ import annotations

from tfx.components import BulkInferrer as TfxBulkInferrer
from tfx.dsl.components.base import executor_spec

from tfx_bert_app.components.bulk_inferrer import executor as ex


class BulkInferrer(TfxBulkInferrer):
    """Example (score a split with a served model's ``score_examples`` signature):
        BulkInferrer(examples=gen.outputs["examples"], model=served.outputs["model"],
                     data_spec=bulk_inferrer_pb2.DataSpec(example_splits=["score"]),
                     model_spec=bulk_inferrer_pb2.ModelSpec(model_signature_name=["score_examples"]))
    """

    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(ex.Executor)
