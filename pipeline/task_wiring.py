"""A task's pipeline wiring: the ExampleGen that reads its data and the Evaluator that gates it.

The task (``tfx_bert/tasks.py``) says what its ExampleGen reads (``example_gen_args``) and how it
is gated (``evaluates_by_retrieval``, ``zero_shot_gated``); the model code builds no components.
"""
from __future__ import annotations


from tfx_bert_app.components.gated_evaluator.component import GatedEvaluator
from tfx_bert_app.components.retrieval_evaluator.component import RetrievalEvaluator, StudentRetrievalEvaluator
from tfx_bert_app.components.student_evaluator.component import StudentEvaluator
from tfx_bert_app.components.task_example_gen.component import TaskExampleGen
from tfx_bert_app.models import slices
from tfx_bert.config import FinetuneConfig
from tfx_bert.tasks import Task


def example_gen(task: Task, f: FinetuneConfig, data_path, negative_model: str = "",
                score_pattern: str = "") -> TaskExampleGen:
    """The ExampleGen of ``task``'s data under ``data_path`` (``finetune.*`` loader settings;
    ``negative_model``: ``finetune.negative_model`` resolved to a path). With ``score_pattern``
    (batch scoring) it reads those files only, as one ``score`` split, and no label column."""
    args = task.example_gen_args(f, negative_model)
    if score_pattern:
        args["label_field"] = ""
    return TaskExampleGen(input_base=data_path, train_pattern=f.train_pattern, eval_pattern=f.eval_pattern,
                          validation_pattern=f.validation_pattern, validation_percent=f.validation_percent,
                          span_range=f.span_range, score_pattern=score_pattern, strict=f.strict,
                          slice_fields=[k for k in f.slices if k not in slices.DERIVED], **args)


def evaluator(task: Task, f: FinetuneConfig, data_path: str, examples, model, baseline_model, encoder=None):
    """TFMA's Evaluator with the task's EvalConfig, or (retrieval) search over the corpus, gated
    also on beating the pretrained ``encoder``'s zero-shot embeddings."""
    if task.evaluates_by_retrieval:
        return _retrieval_evaluator(f, data_path, model, baseline_model, encoder=encoder,
                                    max_regression=f.max_regression)
    return GatedEvaluator(examples=examples, model=model, baseline_model=baseline_model,
                          eval_config=slices.with_slices(task.eval_config(f), f.slices, f.min_slice_size))


def student_evaluator(task: Task, f: FinetuneConfig, data_path: str, examples, student, teacher,
                      min_retention: float):
    """The student's gate, relative to its ``teacher`` (the baseline), by the task's own
    evaluator: TFMA with every threshold turned into ``min_retention`` x the teacher's, or
    retrieval over the corpus with the same rule on its gate metric. Its blessing is a
    StudentBlessing (``components/artifacts.py``)."""
    if task.evaluates_by_retrieval:
        return _retrieval_evaluator(f, data_path, student, teacher, min_retention=min_retention,
                                    component=StudentRetrievalEvaluator)
    return StudentEvaluator(examples=examples, model=student, baseline_model=teacher,
                            eval_config=slices.with_slices(retention_eval_config(task.eval_config(f), min_retention),
                                                           f.slices, f.min_slice_size))


def retention_eval_config(eval_config, min_retention: float):
    """The task's TFMA EvalConfig with its gate turned relative to the teacher (the baseline):
    every metric that had a threshold now passes when it is at least ``min_retention`` times the
    teacher's (TFMA's relative change >= min_retention - 1); the absolute bar is the teacher's."""
    import tensorflow_model_analysis as tfma

    config = tfma.EvalConfig()
    config.CopyFrom(eval_config)
    gated = 0
    for spec in config.metrics_specs:
        for metric in spec.metrics:
            if metric.HasField("threshold"):
                metric.threshold.CopyFrom(tfma.MetricThreshold(change_threshold=tfma.GenericChangeThreshold(
                    direction=tfma.MetricDirection.HIGHER_IS_BETTER, relative={"value": min_retention - 1.0})))
                gated += 1
    if not gated:
        raise ValueError("The task's EvalConfig gates on no metric: there is nothing to keep of the teacher's.")
    return config



def _retrieval_evaluator(f: FinetuneConfig, data_path: str, model, baseline_model, component=RetrievalEvaluator,
                         **gate) -> RetrievalEvaluator:
    """``component`` (the RetrievalEvaluator, or a student's StudentRetrievalEvaluator) on the
    task's BEIR-layout eval set."""
    eval_dir = f.retrieval_eval_dir or data_path
    qrels = f.retrieval_eval_qrels or (f.eval_pattern if f.input_format == "beir" else "")
    if not qrels:
        raise ValueError("Retrieval evaluation needs a BEIR-layout eval set: set finetune.retrieval_eval_dir and "
                         "finetune.retrieval_eval_qrels (e.g. qrels/dev.tsv) when training on MS MARCO triples.")
    return component(model=model, baseline_model=baseline_model, data_dir=eval_dir, qrels=qrels,
                     gate_metric=f.retrieval_gate_metric, threshold=f.accuracy_threshold, **gate)


def zero_shot_gate(task: Task, f: FinetuneConfig, evaluator, model, examples, encoder):
    """The ZeroShotGate after TFMA's Evaluator for sentence similarity scored by cosine (the
    blessing then says the candidate also beats the pretrained encoder's zero-shot embeddings), or
    None where the Evaluator's blessing is the last word (retrieval's evaluator gates on it
    itself; classification heads have no zero-shot counterpart)."""
    if not task.zero_shot_gated(f):
        return None
    from tfx_bert_app.components.zero_shot_gate.component import ZeroShotGate

    return ZeroShotGate(model=model, blessing=evaluator.outputs["blessing"], examples=examples, encoder=encoder,
                        pooling=f.pooling, max_seq_length=f.max_seq_length).with_id("ZeroShotGate")
