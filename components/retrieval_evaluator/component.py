"""RetrievalEvaluator: Recall@k / MRR@10 / nDCG@10 over a corpus, gating the blessing (see
executor.py); the retrieval counterpart of TFX's Evaluator."""
from __future__ import annotations

from tfx.dsl.components.base import base_beam_component, executor_spec
from tfx.types import channel, component_spec, standard_artifacts

from tfx_bert_app.components import input_fingerprint
from tfx_bert_app.components.artifacts import StudentBlessing, with_student_blessing
from tfx_bert_app.components.retrieval_evaluator import executor as ex


class RetrievalEvaluatorSpec(component_spec.ComponentSpec):
    PARAMETERS = {
        ex.DATA_DIR: component_spec.ExecutionParameter(type=str),
        ex.QRELS: component_spec.ExecutionParameter(type=str),
        ex.GATE_METRIC: component_spec.ExecutionParameter(type=str),
        ex.THRESHOLD: component_spec.ExecutionParameter(type=float),
        ex.BATCH_SIZE: component_spec.ExecutionParameter(type=int),
        # > 0: a student's gate, relative to its teacher (the baseline_model); see executor.py.
        ex.MIN_RETENTION: component_spec.ExecutionParameter(type=float, optional=True),
        # How far below the baseline's gate metric the candidate may fall and still be blessed.
        ex.MAX_REGRESSION: component_spec.ExecutionParameter(type=float, optional=True),
        "input_fingerprint": component_spec.ExecutionParameter(type=str, optional=True),
    }
    INPUTS = {"model": component_spec.ChannelParameter(type=standard_artifacts.Model),
              "baseline_model": component_spec.ChannelParameter(type=standard_artifacts.Model, optional=True),
              # The pretrained encoder the candidate was fine-tuned from: its zero-shot embeddings
              # (models/embedder.py) are a baseline the candidate must beat.
              "encoder": component_spec.ChannelParameter(type=standard_artifacts.Model, optional=True)}
    OUTPUTS = {"evaluation": component_spec.ChannelParameter(type=standard_artifacts.ModelEvaluation),
               "blessing": component_spec.ChannelParameter(type=standard_artifacts.ModelBlessing)}


class RetrievalEvaluator(base_beam_component.BaseBeamComponent):
    """Evaluates a dual encoder (``embed`` / ``embed_query`` signatures) on a BEIR-layout set.

    Example:
        RetrievalEvaluator(model=trainer.outputs["model"], baseline_model=resolver.outputs["model"],
                           data_dir="/data/scifact", qrels="qrels/test.tsv",
                           gate_metric="ndcg@10", threshold=0.5)
    """

    SPEC_CLASS = RetrievalEvaluatorSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(ex.Executor)
    BLESSING_TYPE = standard_artifacts.ModelBlessing

    def __init__(self, model, data_dir: str, qrels: str, baseline_model=None, gate_metric: str = "ndcg@10",
                 threshold: float = 0.0, batch_size: int = 64, encoder=None, min_retention: float = 0.0,
                 max_regression: float = 0.0):
        spec = self.SPEC_CLASS(
            model=model, baseline_model=baseline_model, encoder=encoder, data_dir=data_dir, qrels=qrels,
            gate_metric=gate_metric,
            threshold=float(threshold), batch_size=batch_size, min_retention=float(min_retention),
            max_regression=float(max_regression),
            input_fingerprint=input_fingerprint.fingerprint([data_dir]),
            evaluation=channel.Channel(type=standard_artifacts.ModelEvaluation),
            blessing=channel.Channel(type=self.BLESSING_TYPE))
        super().__init__(spec=spec)


class StudentRetrievalEvaluator(RetrievalEvaluator):
    """A distilled dual encoder's gate (``min_retention`` > 0, the teacher as baseline): its
    blessing is a StudentBlessing, as the StudentEvaluator's (components/student_evaluator)."""

    SPEC_CLASS = with_student_blessing(RetrievalEvaluatorSpec, "blessing")
    BLESSING_TYPE = StudentBlessing
