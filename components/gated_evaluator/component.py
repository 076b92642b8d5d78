"""GatedEvaluator: TFX's Evaluator whose gate leaves slices below ``finetune.min_slice_size``
ungated (its executor, ``components/slice_gate.py``, which the StudentEvaluator shares); otherwise
the stock component."""
from tfx import v1 as tfx
from tfx.dsl.components.base import executor_spec

from tfx_bert_app.components import slice_gate


class GatedEvaluator(tfx.components.Evaluator):
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(slice_gate.Executor)
