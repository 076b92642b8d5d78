"""The one fine-tuning loop (models/finetuning.py): the blessing gate, the best checkpoint and
early stopping."""
from __future__ import annotations

import pytest

from tfx_bert import tasks
from tfx_bert.config import FinetuneConfig


def _blessed(eval_config, candidate: float, baseline: float) -> bool:
    """TFMA's own verdict on ``eval_config``'s gated metric with these values, as its Evaluator
    reaches it with a baseline model."""
    import tensorflow_model_analysis as tfma
    from tensorflow_model_analysis.evaluators import metrics_validator
    from tensorflow_model_analysis.metrics import metric_types

    config = tfma.utils.update_eval_config_with_defaults(eval_config, has_baseline=True)
    gated = [m.class_name for s in config.metrics_specs for m in s.metrics if m.HasField("threshold")]
    assert gated == ["SparseCategoricalAccuracy"]
    key = lambda **kw: metric_types.MetricKey("sparse_categorical_accuracy", **kw)  # noqa: E731
    metrics = {key(model_name="candidate"): candidate, key(model_name="baseline"): baseline,
               key(model_name="candidate", is_diff=True): candidate - baseline}
    return metrics_validator.validate_metrics(((), metrics), config).validation_ok


@pytest.mark.parametrize("max_regression, candidate, blessed", [
    (0.0, 0.80, True), (0.0, 0.79, False), (0.02, 0.78, True), (0.02, 0.77, False)])
def test_max_regression_is_how_far_below_the_baseline_tfma_still_blesses(max_regression, candidate, blessed):
    f = FinetuneConfig.for_task("sentiment", accuracy_threshold=0.5, max_regression=max_regression)
    assert _blessed(tasks.get_task("sentiment").eval_config(f), candidate, baseline=0.80) is blessed


def test_the_value_threshold_still_holds_with_a_regression_allowed():
    f = FinetuneConfig.for_task("sentiment", accuracy_threshold=0.5, max_regression=0.5)
    assert not _blessed(tasks.get_task("sentiment").eval_config(f), 0.45, baseline=0.6)
