"""components/bert_trainer/executor.py: run-time parameters folded into the Trainer's
properties, and ``finetune.epochs`` turned into steps from the training split's real size."""
import json
import os

import pytest
import tensorflow as tf
from tfx.proto import trainer_pb2
from tfx.types import standard_artifacts
from tfx.types import standard_component_specs as specs
from tfx.utils import proto_utils

from tests.helpers import new_artifact
from tfx_bert_app.components.bert_trainer import executor


def _examples(tmp_path, counts: dict):
    examples = new_artifact(standard_artifacts.Examples, tmp_path / "examples")
    examples.split_names = json.dumps(sorted(counts))
    for split, count in counts.items():
        os.makedirs(tmp_path / "examples" / f"Split-{split}")
        for shard in range(2):
            with tf.io.TFRecordWriter(str(tmp_path / "examples" / f"Split-{split}" / f"part-{shard}.gz"),
                                      options="GZIP") as writer:
                for _ in range(count // 2 + (shard == 0) * (count % 2)):
                    writer.write(tf.train.Example().SerializeToString())
    return [examples]


def _props(custom_config: dict, steps: int = 300) -> dict:
    return {specs.CUSTOM_CONFIG_KEY: json.dumps(custom_config),
            specs.TRAIN_ARGS_KEY: proto_utils.proto_to_json(trainer_pb2.TrainArgs(num_steps=steps))}


def _steps(props: dict) -> int:
    train_args = trainer_pb2.TrainArgs()
    proto_utils.json_to_proto(props[specs.TRAIN_ARGS_KEY], train_args)
    return train_args.num_steps


def test_epochs_become_steps_over_the_training_split(tmp_path):
    examples = _examples(tmp_path, {"train": 11, "eval": 5})
    props = executor.steps_for_epochs(_props({"epochs": 2.5, "batch_size": 4}), examples)
    assert _steps(props) == 7  # ceil(2.5 * 11 / 4), the eval split not counted
    assert _steps(executor.steps_for_epochs(_props({"epochs": 0, "batch_size": 4}), examples)) == 300


def test_epochs_over_an_empty_split_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="finetune.epochs=3, but the training split .* has no examples"):
        executor.steps_for_epochs(_props({"epochs": 3}), _examples(tmp_path, {"train": 0}))


def test_run_time_parameters_are_folded_back(tmp_path):
    props = executor.fold_run_parameters({**_props({"epochs": 0}), "train_steps": 42, "model_size": "mini"})
    assert _steps(props) == 42 and json.loads(props[specs.CUSTOM_CONFIG_KEY])["model_size"] == "mini"
    props = executor.fold_run_parameters({**_props({"epochs": 0}), "data_dir": "/data/beir"})
    assert json.loads(props[specs.CUSTOM_CONFIG_KEY])["task_data_dir"] == "/data/beir" and "data_dir" not in props


def test_a_fine_tuning_trainers_base_model_is_its_warm_start_and_its_encoder_what_the_run_fn_builds_on(tmp_path):
    """TFX's ``base_model`` input of a fine-tuning Trainer is the blessed model it may continue
    from (recorded so in MLMD); the run_fn gets the ``encoder`` input as ``fn_args.base_model``
    and the blessed model's serving dir in ``custom_config``; a teacher_model likewise."""
    for name in ("rerank", "blessed", "encoder"):
        os.makedirs(tmp_path / name / "Format-Serving")
    teacher, blessed, encoder = (new_artifact(standard_artifacts.Model, tmp_path / name)
                                 for name in ("rerank", "blessed", "encoder"))
    props = _props({"batch_size": 8})
    inputs = {executor.TEACHER_KEY: [teacher], specs.BASE_MODEL_KEY: [blessed], executor.ENCODER_KEY: [encoder]}
    folded_inputs, _, folded = executor.with_model_inputs(props, inputs, {})
    assert json.loads(folded[specs.CUSTOM_CONFIG_KEY]) == {
        "batch_size": 8, "teacher_model_dir": str(tmp_path / "rerank" / "Format-Serving"),
        "warm_start_model_dir": str(tmp_path / "blessed" / "Format-Serving")}
    assert folded_inputs[specs.BASE_MODEL_KEY] == [encoder] and inputs[specs.BASE_MODEL_KEY] == [blessed]
    # The first run (no blessed model yet): the encoder, no warm start.
    first_inputs, _, first = executor.with_model_inputs(props, {executor.ENCODER_KEY: [encoder]}, {})
    assert first_inputs[specs.BASE_MODEL_KEY] == [encoder] and first is props
    # A Trainer without an encoder input (pretraining, a student): nothing changes.
    assert executor.with_model_inputs(props, {specs.BASE_MODEL_KEY: [blessed]}, {})[2] is props


def test_the_model_a_run_continued_from_is_published_on_its_model(tmp_path):
    runs = [new_artifact(standard_artifacts.ModelRun, tmp_path / name) for name in ("warm", "cold")]
    for run, warm in zip(runs, (True, False)):
        os.makedirs(run.uri)
        with open(os.path.join(run.uri, executor.WARM_START_FILE), "w") as f:
            json.dump({"warm": warm, "from": "/pipelines/p/Trainer/model/7"}, f)
    models = [new_artifact(standard_artifacts.Model, tmp_path / f"model{i}") for i in range(2)]
    for run, model in zip(runs, models):
        executor.mark_warm_start({specs.MODEL_KEY: [model], specs.MODEL_RUN_KEY: [run]})
    assert models[0].get_string_custom_property("warm_started_from") == "/pipelines/p/Trainer/model/7"
    assert not models[1].has_custom_property("warm_started_from")
