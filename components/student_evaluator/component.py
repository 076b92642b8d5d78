"""StudentEvaluator: TFX's Evaluator (its executor: TFMA) gating a distilled student against
its teacher. Its blessing is a StudentBlessing (components/artifacts.py): no latest-blessed-model
resolver, TFX's or the query KFP v2 compiles, takes a student for a later teacher's baseline."""
from tfx import v1 as tfx
from tfx.dsl.components.base import base_beam_component, executor_spec
from tfx.types import channel, standard_artifacts, standard_component_specs
from tfx.utils import json_utils

from tfx_bert_app.components.artifacts import StudentBlessing, with_student_blessing
from tfx_bert_app.components import slice_gate

StudentEvaluatorSpec = with_student_blessing(standard_component_specs.EvaluatorSpec,
                                             standard_component_specs.BLESSING_KEY)


class StudentEvaluator(tfx.components.Evaluator):
    """``Evaluator(examples, model=student, baseline_model=teacher, eval_config)`` whose
    ``blessing`` output is a StudentBlessing."""

    SPEC_CLASS = StudentEvaluatorSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(slice_gate.Executor)  # the slice gate, as GatedEvaluator's

    def __init__(self, examples, model, baseline_model, eval_config):
        spec = StudentEvaluatorSpec(
            examples=examples, model=model, baseline_model=baseline_model, eval_config=eval_config,
            fairness_indicator_thresholds=json_utils.dumps(None), example_splits=json_utils.dumps(None),
            evaluation=channel.Channel(type=standard_artifacts.ModelEvaluation),
            blessing=channel.Channel(type=StudentBlessing))
        # Evaluator.__init__ would build the stock spec (a ModelBlessing output): its base's instead.
        base_beam_component.BaseBeamComponent.__init__(self, spec=spec)
