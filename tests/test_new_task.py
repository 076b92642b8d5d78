"""A task the project does not have, defined here as one class: single-text regression (a
review's rating). Registering it is all it takes: the shared task harness (``test_tasks.py``)
then runs it through its real pipeline (TaskExampleGen -> Transform -> Trainer -> Evaluator ->
ServingPusher with the op check -> the development server -> Predict -> this class's decoding),
from the demo's encoder, like every built-in task. No other file knows it exists.

README ("Adding a task") shows this class.
"""
from __future__ import annotations

import csv
import dataclasses
import os
import random

import pytest

from tfx_bert import config as config_lib
from tfx_bert import demo_data, features, signatures, tasks


def write_ratings(directory: str, num_train: int = 600, num_eval: int = 120, seed: int = 3) -> None:
    """``<split>/data.csv`` with ``text,rating``: a review of four adjectives, rated by how many
    of them are positive (0-4)."""
    rng = random.Random(seed)
    for split, n in (("train", num_train), ("eval", num_eval)):
        os.makedirs(os.path.join(directory, split), exist_ok=True)
        with open(os.path.join(directory, split, "data.csv"), "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["text", "rating"])
            for _ in range(n):
                good = rng.randint(0, 4)
                words = rng.sample(demo_data.POSITIVE, good) + rng.sample(demo_data.NEGATIVE, 4 - good)
                rng.shuffle(words)
                writer.writerow([f"the film was {', '.join(words)} .", good])


@dataclasses.dataclass
class RatingSettings(tasks.TaskSettings):
    max_rating: float = 4.0  # ratings are divided by this: the model predicts 0..1

    def checks(self, finetune) -> list[tuple[bool, str]]:
        return [(self.max_rating > 0, f"finetune.max_rating must be > 0; got {self.max_rating}")]


class RatingTask(tasks.Task):
    """Single-text regression: [CLS] -> Dense(1), mean squared error on rating / max_rating."""

    name = "rating"
    description = "Single-text regression: [CLS] -> Dense(1) -> a rating"
    module = __name__
    signature = signatures.Signature((signatures.TEXT,), (signatures.SCORE,))
    Settings = RatingSettings
    model_kind = "regressor"
    distillable = False
    data_defaults = (("input_format", "csv"), ("train_pattern", "train/*.csv"), ("eval_pattern", "eval/*.csv"),
                     ("text_field", "text"), ("label_field", "rating"))
    demo = tasks.DemoData("ratings", write_ratings, "eval/data.csv")

    def example_gen_args(self, finetune, negative_model: str = "") -> dict:
        return {**super().example_gen_args(finetune), "label_dtype": "float"}

    def preprocess(self, inputs, settings, tokenizer):
        import tensorflow as tf

        from tfx_bert_app.models import finetuning

        packed = tokenizer.encode(finetuning.dense_strings(inputs[features.TEXT]), settings.max_seq_length)
        outputs = {k: tf.cast(v, tf.int64) for k, v in packed.items()}
        if features.LABEL in inputs:
            label = inputs[features.LABEL]
            label = tf.sparse.to_dense(label) if isinstance(label, tf.SparseTensor) else label
            outputs[features.LABEL] = tf.reshape(tf.cast(label, tf.float32), [-1])
        return outputs

    def build_model(self, encoder_dir, settings, tokenizer):
        import keras_hub

        from tfx_bert_app.models import encoder as encoder_lib

        return keras_hub.models.BertClassifier(backbone=encoder_lib.load_backbone(encoder_dir), num_classes=1,
                                               preprocessor=None, dropout=settings.dropout)

    def build_inputs(self, data, files, training):
        import tensorflow as tf

        from tfx_bert_app.models import finetuning

        scale = float(data.settings.max_rating)
        return data.dataset(files, training, label_key=features.LABEL).map(
            lambda x, y: (finetuning.model_inputs(x), tf.reshape(tf.cast(y, tf.float32), [-1, 1]) / scale))

    def build_losses(self, model, settings):
        import keras

        return keras.losses.MeanSquaredError()

    def build_metrics(self, settings):
        import keras

        return [keras.metrics.MeanAbsoluteError(name="mae")]

    def describe(self, settings, encoder_dir):
        return f"fine-tuning a rating regressor from {encoder_dir}"

    def export(self, model, data, tokenizer, precision):
        import tensorflow as tf

        from tfx_bert_app.models import compression, export, finetuning

        served, scale = compression.for_serving(model, precision), float(data.settings.max_rating)

        def outputs_fn(transformed):
            prediction = served(finetuning.model_inputs(transformed), training=False)
            return {signatures.SCORE: tf.reshape(tf.cast(prediction, tf.float32), [-1]) * scale}

        export.export_text_model(served, data.transform_output, data.fn_args.serving_model_dir, outputs_fn)

    def eval_config(self, settings):
        """Blessed when the mean absolute error is at most (1 - accuracy_threshold) x max_rating."""
        import tensorflow_model_analysis as tfma

        from tfx_bert_app.models import finetuning

        bound = tfma.MetricThreshold(value_threshold=tfma.GenericValueThreshold(
            upper_bound={"value": (1 - settings.accuracy_threshold) * settings.max_rating}))
        return finetuning.gated_eval_config(signatures.SCORE, tfma.MetricConfig(
            class_name="MeanAbsoluteError", threshold=bound))

    def decode(self, inputs, outputs):
        return [{"text": t.decode() if isinstance(t, bytes) else str(t), "rating": float(s)}
                for t, s in zip(inputs[signatures.TEXT], outputs[signatures.SCORE])]


tasks.register(RatingTask)
REFERENCE = f"{__name__}:{RatingTask.__name__}"  # what another process (a pipeline run) names it by


def test_the_task_is_registered_and_its_settings_are_a_one_of():
    assert isinstance(tasks.get_task("rating"), RatingTask) and isinstance(tasks.get_task(REFERENCE), RatingTask)
    f = config_lib.load_config(overrides=[f"finetune.task={REFERENCE}", "finetune.max_rating=5"]).finetune
    assert isinstance(f.task_settings, RatingSettings) and f.max_rating == 5.0
    assert (f.model_name, f.pipeline_name, f.input_format, f.label_field) == (
        "rating", "tfx-bert-rating", "csv", "rating")
    assert "max_rating" in config_lib.trainer_settings(f)
    with pytest.raises(ValueError, match=r"finetune.max_rating must be > 0; got -1.0"):
        config_lib.load_config(overrides=[f"finetune.task={REFERENCE}", "finetune.max_rating=-1"])
    with pytest.raises(ValueError, match=r"finetune.max_rating is a setting of the rating task\(s\), but "
                                         r"finetune.task is sentiment"):
        config_lib.load_config(overrides=["finetune.max_rating=5"])


def test_the_task_reaches_the_pipeline_through_its_own_methods(tmp_path):
    from tfx_bert_app.components.task_example_gen import executor as ex
    from tfx_bert_app.pipeline import task_wiring

    task = tasks.get_task(REFERENCE)
    f = config_lib.load_config(overrides=[f"finetune.task={REFERENCE}", f"work_dir={tmp_path}"]).finetune
    props = task_wiring.example_gen(task, f, "/data").exec_properties
    assert (props[ex.INPUT_FORMAT], props[ex.LABEL_DTYPE], props[ex.LABEL_FIELD]) == ("csv", "float", "rating")
    assert f.data_dir == os.path.join(str(tmp_path), "data", "ratings")
    paths = demo_data.write_demo_data(str(tmp_path / "data"))
    assert os.path.exists(os.path.join(paths["ratings"], "train", "data.csv"))
