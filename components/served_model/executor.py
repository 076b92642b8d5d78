"""ServedModel executor: a version pushed to a TF Serving model base path, as a Model artifact.

TFX's BulkInferrer takes a Model artifact (``<uri>/Format-Serving/saved_model.pb``); a pushed
version is ``<serving_base>/<model_name>/<version>/saved_model.pb``. This copies the version
(the newest when ``version`` is empty, resolved when the pipeline runs) into a new Model
artifact and records which version it is, so the scoring run's MLMD lineage names the exact
model that scored the data.
"""
from __future__ import annotations

import os

from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils
from tfx.utils import io_utils, path_utils

from tfx_bert.scoring import resolve_version

MODEL_BASE, VERSION = "model_base", "version"


class Executor(base_executor.BaseExecutor):
    def Do(self, input_dict, output_dict, exec_properties):
        base = exec_properties[MODEL_BASE]
        version = resolve_version(base, exec_properties.get(VERSION) or "")
        model = artifact_utils.get_single_instance(output_dict["model"])
        io_utils.copy_dir(os.path.join(base, version), path_utils.serving_model_dir(model.uri))
        model.set_string_custom_property("pushed_version", version)
        model.set_string_custom_property("pushed_destination", os.path.join(base, version))
