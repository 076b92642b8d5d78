"""The fine-tuning Evaluator's baseline: the latest blessed model of this pipeline that is not a
distilled student.

With distillation on, a pipeline's blessed students are Model artifacts of the pipeline too, and
TFX's LatestBlessedModelStrategy selects by artifact type only, so from the second run on it
could hand the teacher's Evaluator the last student as its baseline. BertTrainer marks a
student's Model (``model_role: student``); this strategy skips those. Kubeflow (KFP v2) compiles
only TFX's stock strategies into its own queries, so a pipeline built for it keeps the stock one
(``baseline_strategy``).
"""
from __future__ import annotations

from tfx.dsl.input_resolution.strategies.latest_blessed_model_strategy import LatestBlessedModelStrategy

from tfx_bert_app.components.bert_trainer.executor import MODEL_ROLE_KEY, STUDENT_ROLE


def is_student(model) -> bool:
    return model.has_custom_property(MODEL_ROLE_KEY) and model.get_string_custom_property(MODEL_ROLE_KEY) == STUDENT_ROLE


class LatestBlessedTeacherStrategy(LatestBlessedModelStrategy):
    """LatestBlessedModelStrategy over the models that are not distilled students."""

    def _resolve(self, input_dict, model_channel_key, model_blessing_channel_key):
        teachers = [model for model in input_dict[model_channel_key] if not is_student(model)]
        return super()._resolve({**input_dict, model_channel_key: teachers}, model_channel_key,
                                model_blessing_channel_key)


def baseline_strategy(kubeflow: bool):
    """The resolver strategy of a pipeline's baseline: the stock one where only that compiles."""
    return LatestBlessedModelStrategy if kubeflow else LatestBlessedTeacherStrategy
