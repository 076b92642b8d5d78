"""Compilation of both pipelines for Kubeflow Pipelines v2 / Vertex, checked for real."""
import json

import pytest
import yaml

from kubeflow import runner
from tfx_bert import config as config_lib


@pytest.fixture
def config(tmp_path):
    return config_lib.load_config(config_lib.DEMO_CONFIG, [
        f"work_dir={tmp_path}", "pretrain.corpus_pattern=gs://bucket/corpus/*.txt",
        "finetune.data_dir=gs://bucket/sst2", "finetune.encoder_uri=gs://bucket/encoder"])


def _compile(kind, config, tmp_path, image="gcr.io/p/tfx-bert:1"):
    path = runner.compile_pipeline(kind, config, image, str(tmp_path / f"{kind}.json"))
    return json.load(open(path))


def test_pretraining_spec_has_components_dependencies_and_image(config, tmp_path):
    job = _compile("pretrain", config, tmp_path)
    spec = job["pipelineSpec"]
    tasks = spec["root"]["dag"]["tasks"]
    assert {"TextExampleGen", "WordPieceVocabGen", "PretrainingDataGen", "Trainer"} <= set(tasks)
    assert set(tasks["PretrainingDataGen"]["dependentTasks"]) == {"TextExampleGen", "WordPieceVocabGen"}
    assert tasks["Trainer"]["dependentTasks"] == ["PretrainingDataGen"]
    images = {e["container"]["image"] for e in spec["deploymentSpec"]["executors"].values() if "container" in e}
    assert images == {"gcr.io/p/tfx-bert:1"}


def test_finetuning_spec_wires_the_encoder_and_blessing(config, tmp_path):
    spec = _compile("finetune", config, tmp_path)["pipelineSpec"]
    tasks = spec["root"]["dag"]["tasks"]
    assert {"CsvExampleGen", "Transform", "pretrained_encoder", "Trainer", "Evaluator", "Pusher"} <= set(tasks)
    assert set(tasks["Trainer"]["dependentTasks"]) >= {"Transform", "pretrained_encoder"}
    assert set(tasks["Pusher"]["dependentTasks"]) == {"Evaluator", "Trainer"}


def test_spec_loads_with_the_kfp_sdk(config, tmp_path):
    from kfp import components

    spec = _compile("pretrain", config, tmp_path)["pipelineSpec"]
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    component = components.load_component_from_file(str(path))
    assert component.pipeline_spec.root.dag.tasks["Trainer"]


def test_two_phase_pretraining_wires_phase_two_after_phase_one(tmp_path):
    config = config_lib.load_config(config_lib.DEMO_CONFIG, [
        f"work_dir={tmp_path}", "pretrain.corpus_pattern=gs://bucket/corpus/*.txt",
        "pretrain.phase2_max_seq_length=128", "pretrain.phase2_train_steps=50"])
    tasks = _compile("pretrain", config, tmp_path)["pipelineSpec"]["root"]["dag"]["tasks"]
    assert set(tasks["TrainerPhase2"]["dependentTasks"]) == {"Trainer", "PretrainingDataGenPhase2"}


def test_phase_two_must_be_longer():
    with pytest.raises(ValueError, match="phase2_max_seq_length must exceed max_seq_length"):
        config_lib.load_config(overrides=["pretrain.phase2_max_seq_length=64", "pretrain.phase2_train_steps=5"])
