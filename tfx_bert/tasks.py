"""Task registry: what each fine-tuning task plugs into the fine-tuning pipeline.

A task names its Transform ``preprocessing_fn`` and Trainer ``run_fn`` (dotted paths into this
installed package, so containers and Beam workers import them the same way), its serving
outputs, and its TFMA evaluation config. Adding a task is adding an entry here and a module
under ``models/``.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import tensorflow_model_analysis as tfma

from tfx_bert import features


@dataclasses.dataclass(frozen=True)
class Task:
    name: str
    preprocessing_fn: str
    run_fn: str
    text_keys: tuple
    eval_config: Callable[..., tfma.EvalConfig]
    description: str


def classification_eval_config(accuracy_threshold: float, **_) -> tfma.EvalConfig:
    """TFMA config: accuracy with a blessing threshold, plus example count and AUC-free metrics."""
    return tfma.EvalConfig(
        model_specs=[tfma.ModelSpec(
            signature_name="serving_tf_example",
            label_key=features.LABEL,
            prediction_key=features.PROBABILITIES,
        )],
        slicing_specs=[tfma.SlicingSpec()],
        metrics_specs=[tfma.MetricsSpec(metrics=[
            tfma.MetricConfig(class_name="ExampleCount"),
            tfma.MetricConfig(
                class_name="SparseCategoricalAccuracy",
                threshold=tfma.MetricThreshold(
                    value_threshold=tfma.GenericValueThreshold(lower_bound={"value": accuracy_threshold}))),
        ])],
    )


TASKS: dict[str, Task] = {
    "sentiment": Task(
        name="sentiment",
        preprocessing_fn="models.classification.preprocessing_fn",
        run_fn="models.classification.run_fn",
        text_keys=(features.TEXT,),
        eval_config=classification_eval_config,
        description="Sequence classification: [CLS] -> Dense -> softmax",
    ),
}


def get_task(name: str) -> Task:
    try:
        return TASKS[name]
    except KeyError:
        raise ValueError(f"Unknown task {name!r}; known tasks: {', '.join(TASKS)}.") from None
