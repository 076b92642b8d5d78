"""TFX's Evaluator executor (TFMA), with the slice gate of ``finetune.min_slice_size``: the
executor of both TFMA evaluators, ``GatedEvaluator`` (components/gated_evaluator) and
``StudentEvaluator`` (components/student_evaluator).

TFMA omits a slice with fewer than ``options.min_slice_size`` examples (no metric is aggregated
for it) and then fails each of its thresholds as "Metric not found.", so any small slice would
block the blessing. After TFMA has run, those failures are dropped (``models/slices.py``) and
the blessing rewritten as TFX's executor writes it: every slice of at least the minimum size
must pass, smaller ones are not gated.
"""
from __future__ import annotations

import os

from absl import logging
from tfx.components.evaluator import constants
from tfx.components.evaluator import executor as tfx_evaluator
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import io_utils

from tfx_bert_app.models import slices


class Executor(tfx_evaluator.Executor):
    def Do(self, input_dict, output_dict, exec_properties) -> None:
        super().Do(input_dict, output_dict, exec_properties)
        blessings = output_dict.get(standard_component_specs.BLESSING_KEY) or []
        evaluation = artifact_utils.get_single_uri(output_dict[standard_component_specs.EVALUATION_KEY])
        if not blessings or not os.path.exists(os.path.join(evaluation, "eval_config.json")):
            return
        if slices.forgive_omitted_slices(evaluation):
            bless(blessings[0])


def bless(blessing) -> None:
    """Turns TFX's NOT_BLESSED ``blessing`` into BLESSED (file and property)."""
    not_blessed = os.path.join(blessing.uri, constants.NOT_BLESSED_FILE_NAME)
    if os.path.exists(not_blessed):
        os.remove(not_blessed)
    io_utils.write_string_file(os.path.join(blessing.uri, constants.BLESSED_FILE_NAME), "")
    blessing.set_int_custom_property(constants.ARTIFACT_PROPERTY_BLESSED_KEY, constants.BLESSED_VALUE)
    logging.info("Blessed after all: only slices below finetune.min_slice_size had failed (not gated).")
