"""The one fine-tuning loop (models/finetuning.py): the blessing gate, the best checkpoint and
early stopping."""
from __future__ import annotations

import os

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


def _contradicting_run(tmp_path, rounds: int, patience: int = 0):
    """A classifier of x in [-1, 1] that starts right on the validation labels (x < 0) and is
    trained on the opposite ones (x > 0): each round makes validation worse, so the best round is
    the first. Returns (fit's metrics, the weights after each round, the final weights)."""
    import types

    import keras
    import numpy as np
    import tensorflow as tf

    from tfx_bert_app.models import finetuning

    keras.utils.set_random_seed(1)
    x = np.linspace(-1, 1, 256, dtype="float32")[:, None]
    train = tf.data.Dataset.from_tensor_slices((x, (x[:, 0] > 0).astype("int32"))).shuffle(256, seed=1).repeat().batch(32)
    validation = tf.data.Dataset.from_tensor_slices((x, (x[:, 0] < 0).astype("int32"))).batch(64)
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(
        2, kernel_initializer=keras.initializers.Constant([[0.3, -0.3]]))])
    model.compile(optimizer=keras.optimizers.SGD(0.5), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")])
    after_round = []
    model.fit(x[:1], np.zeros(1), epochs=0, verbose=0)  # builds the optimizer variables before the callback reads
    fn_args = types.SimpleNamespace(train_steps=rounds * 4, eval_steps=4, model_run_dir=str(tmp_path))
    recorder = keras.callbacks.LambdaCallback(on_epoch_end=lambda *_: after_round.append(model.get_weights()))
    metrics = finetuning.fit(model, fn_args, train, validation, rounds=rounds, monitor="accuracy", patience=patience,
                             callbacks=[recorder])
    return metrics, after_round, model.get_weights()


def test_a_run_whose_last_evaluation_is_worse_exports_the_best_rounds_weights(tmp_path):
    import numpy as np

    metrics, after_round, final = _contradicting_run(tmp_path, rounds=4)
    accuracy = [point["val_accuracy"] for point in metrics["validation_curve"]]
    assert len(accuracy) == len(after_round) == 4 and metrics["steps_run"] == 16
    best = int(np.argmax(accuracy))
    assert accuracy[-1] < accuracy[best] and best < 3, accuracy  # the setup: later rounds are worse
    assert metrics["best_step"] == 4 * (best + 1) and metrics["val_accuracy"] == accuracy[best]
    for exported, kept in zip(final, after_round[best]):
        np.testing.assert_array_equal(exported, kept)
    assert not np.array_equal(final[0], after_round[-1][0])


def test_patience_stops_training_after_that_many_evaluations_without_improvement(tmp_path):
    metrics, after_round, _ = _contradicting_run(tmp_path, rounds=6, patience=2)
    accuracy = [point["val_accuracy"] for point in metrics["validation_curve"]]
    best = accuracy.index(max(accuracy))
    assert len(accuracy) == best + 3 < 6 and metrics["steps_run"] == 4 * len(accuracy), accuracy


@pytest.mark.parametrize("train_steps, eval_every, validated, plan", [
    (300, 0, True, (5, 60)), (300, 100, True, (3, 100)), (30, 7, True, (5, 6)), (7, 0, True, (1, 7)),
    (3, 0, True, (3, 1)), (100, 30, True, (4, 25)), (103, 0, True, (5, 21)), (300, 0, False, (1, 300))])
def test_the_evaluation_plan_splits_the_run_into_rounds_of_equal_steps(train_steps, eval_every, validated, plan):
    from tfx_bert_app.models import finetuning

    assert finetuning.evaluation_plan(train_steps, eval_every, validated) == plan


@pytest.fixture
def tiny_encoder(tmp_path, tiny_vocab_dir):
    """A one-layer keras-hub preset with the tiny vocabulary, as a pretrained encoder dir."""
    import keras

    from tests.helpers import tiny_backbone
    from tfx_bert import tokenization

    vocab = tokenization.read_vocab(os.path.join(tiny_vocab_dir, tokenization.VOCAB_FILENAME))
    keras.utils.set_random_seed(3)
    tiny_backbone(len(vocab), 16).save_to_preset(str(tmp_path / "encoder"))
    tokenization.write_vocab_dir(str(tmp_path / "encoder" / "vocab"), vocab,
                                 tokenization.read_tokenizer_config(tiny_vocab_dir))
    return str(tmp_path / "encoder")


def _save_blessed(tmp_path, encoder, settings):
    """A classifier for ``settings`` saved as a blessed model would be; (its serving dir, weights)."""
    from tfx_bert_app.models import encoder as encoder_lib
    from tfx_bert_app.models import finetuning

    task, tokenizer = tasks.get_task("sentiment"), encoder_lib.load_tokenizer(encoder)
    blessed = task.build_model(encoder, settings, tokenizer)
    blessed.set_weights([w * 0.5 + 0.25 for w in blessed.get_weights()])  # unlike any fresh model's
    serving = str(tmp_path / "blessed" / "Format-Serving")
    finetuning.save_task_model(blessed, task, settings, serving, tokenizer)
    return serving, blessed.get_weights()


def _start(tmp_path, encoder, serving, run_settings, name):
    """A fresh classifier for ``run_settings`` given the blessed model by ``warm_start``: (the
    note, the record, the weights before, after)."""
    import json
    import types

    from tfx_bert.config import WARM_START_MODEL_DIR
    from tfx_bert_app.models import encoder as encoder_lib
    from tfx_bert_app.models import finetuning

    task, tokenizer = tasks.get_task("sentiment"), encoder_lib.load_tokenizer(encoder)
    fresh = task.build_model(encoder, run_settings, tokenizer)
    before = fresh.get_weights()
    os.makedirs(tmp_path / name)
    fn_args = types.SimpleNamespace(custom_config={WARM_START_MODEL_DIR: serving}, model_run_dir=str(tmp_path / name))
    note = finetuning.warm_start(fresh, task, run_settings, fn_args, tokenizer)
    return note, json.load(open(tmp_path / name / "warm_start.json")), before, fresh.get_weights()


def test_warm_start_continues_from_the_blessed_model_head_included_and_a_changed_label_set_starts_cold(
        tmp_path, tiny_encoder):
    import numpy as np

    settings = FinetuneConfig.for_task("sentiment", max_seq_length=16, label_names=["neg", "pos"])
    serving, blessed = _save_blessed(tmp_path, tiny_encoder, settings)
    note, record, _, after = _start(tmp_path, tiny_encoder, serving, settings, "same")
    assert record == {"warm": True, "from": str(tmp_path / "blessed"), "reason": ""}
    assert note == f", continuing from the blessed model {tmp_path / 'blessed'}"
    for mine, theirs in zip(after, blessed, strict=True):
        np.testing.assert_array_equal(mine, theirs)

    for name, change, reason in (
            ("three", {"label_names": ["neg", "pos", "mixed"], "num_classes": 3},
             "the label set changed: num_classes was 2, is 3; label_names was ['neg', 'pos'], is "
             "['neg', 'pos', 'mixed']"),
            ("renamed", {"label_names": ["negative", "positive"]},
             "label_names was ['neg', 'pos'], is ['negative', 'positive']"),
            ("off", {"warm_start": "off"}, "finetune.warm_start=off")):
        run_settings = FinetuneConfig.for_task("sentiment", **{"max_seq_length": 16, "label_names": ["neg", "pos"],
                                                               **change})
        note, record, before, after = _start(tmp_path, tiny_encoder, serving, run_settings, name)
        assert not record["warm"] and reason in record["reason"] and note == "", (name, record)
        for mine, fresh in zip(after, before, strict=True):
            np.testing.assert_array_equal(mine, fresh)
