"""Kubeflow Pipelines v2 / Vertex compilation, resources, runtime parameters, Beam runner flags
and the image, checked for real (no cluster or Docker engine runs here)."""
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile

import pytest
import yaml

from tests.helpers import REPO
from tfx_bert import accelerators, beam_options
from tfx_bert import config as config_lib
from tfx_bert_app.components.bert_trainer import executor as bert_trainer_executor
from tfx_bert_app.kubeflow import runner

CLUSTER_PATHS = ["pretrain.corpus_pattern=gs://bucket/corpus/*.txt", "finetune.data_dir=gs://bucket/sst2",
                 "finetune.encoder_uri=gs://bucket/encoder"]


def _config(tmp_path, *overrides):
    return config_lib.load_config(config_lib.DEMO_CONFIG, [f"work_dir={tmp_path}", *CLUSTER_PATHS, *overrides])


def _compile(kind, config, tmp_path, image="gcr.io/p/tfx-bert:1"):
    path = runner.compile_pipeline(kind, config, str(tmp_path / f"{kind}.json"), image)
    return json.load(open(path))


def _executors(job):
    return job["pipelineSpec"]["deploymentSpec"]["executors"]


def _container(job, step):
    return _executors(job)[f"{step}_executor"]["container"]


def _trainer_config(job, step="Trainer"):
    value = job["pipelineSpec"]["root"]["dag"]["tasks"][step]["inputs"]["parameters"]["custom_config"]
    return json.loads(value["runtimeValue"]["constant"])


def test_pretraining_spec_has_components_dependencies_and_image(tmp_path):
    job = _compile("pretrain", _config(tmp_path), tmp_path)
    tasks = job["pipelineSpec"]["root"]["dag"]["tasks"]
    assert {"TextExampleGen", "StatisticsGen", "SchemaGen", "ExampleValidator", "DataGate", "WordPieceVocabGen",
            "PretrainingDataGen", "Trainer"} == set(tasks)
    assert set(tasks["PretrainingDataGen"]["dependentTasks"]) == {"TextExampleGen", "WordPieceVocabGen", "DataGate"}
    assert set(tasks["Trainer"]["dependentTasks"]) == {"PretrainingDataGen", "DataGate"}
    # The corpus's gate: KFP runs the steps after it only where it passed.
    for step in ("WordPieceVocabGen", "PretrainingDataGen", "Trainer"):
        assert "DataGate.result" in tasks[step]["triggerPolicy"]["condition"]
        assert tasks[step]["triggerPolicy"]["condition"].endswith("metadata['passed'] == 1.0)")
    images = {e["container"]["image"] for e in _executors(job).values() if "container" in e}
    assert images == {"gcr.io/p/tfx-bert:1"}


def test_continued_pretraining_imports_the_checkpoint_as_a_step(tmp_path):
    """pretrain.init_from compiles to a CheckpointImport step (it runs on the cluster, reading the
    checkpoint where the cluster can: gs://) whose model and vocabulary feed the instances and
    the Trainer; no vocabulary is learned."""
    from tests.helpers import PUBLISHED

    source = os.path.join(PUBLISHED, "hf_pretraining_gelu")
    config = config_lib.load_config(overrides=[f"work_dir={tmp_path}", *CLUSTER_PATHS, f"pretrain.init_from={source}"],
                                    demo=True)  # demo.yaml as the layer below (as a user file, its vocab_size contradicts)
    job = _compile("pretrain", config, tmp_path)
    tasks = job["pipelineSpec"]["root"]["dag"]["tasks"]
    assert "WordPieceVocabGen" not in tasks and "CheckpointImport" in tasks
    assert set(tasks["PretrainingDataGen"]["dependentTasks"]) >= {"CheckpointImport"}
    assert set(tasks["Trainer"]["dependentTasks"]) >= {"CheckpointImport", "PretrainingDataGen"}
    assert tasks["CheckpointImport"]["inputs"]["parameters"]["source"]["runtimeValue"]["constant"] == source
    assert _trainer_config(job)["learning_rate"] == 2e-5  # the continued-pretraining recipe


def test_finetuning_spec_wires_the_encoder_and_blessing(tmp_path):
    work = tmp_path / "work"
    tasks = _compile("finetune", _config(work, "finetune.tuning.trials=4"), tmp_path)["pipelineSpec"]["root"]["dag"][
        "tasks"]
    assert not work.exists()  # compiling reads and writes nothing but its output: no demo data, no MLMD
    assert {"TaskExampleGen", "Transform", "pretrained_encoder", "Trainer", "Evaluator", "Pusher"} <= set(tasks)
    assert set(tasks["Trainer"]["dependentTasks"]) >= {"Transform", "pretrained_encoder"}
    # The baseline: KFP's two-step resolution of the latest blessed model feeds the Evaluator.
    assert "latest_blessed_model-model-resolver" in tasks["Evaluator"]["dependentTasks"]
    assert "baseline_model" in tasks["Evaluator"]["inputs"]["artifacts"]
    # The Pusher reads the run's examples, data gate and evaluation for the model card.
    assert set(tasks["Pusher"]["dependentTasks"]) == {"Evaluator", "Trainer", "TaskExampleGen", "DataGate"}
    # The data gate: the warm start and the gate's drift baseline are the latest blessed model too;
    # KFP runs everything after the gate only where it passed.
    assert "latest_blessed_model-model-resolver" in tasks["DataGate"]["dependentTasks"]
    assert {"base_model", "encoder"} <= set(tasks["Trainer"]["inputs"]["artifacts"])  # TFX's warm start; the encoder
    for step in ("Transform", "Tuner", "Trainer", "Evaluator", "Pusher"):
        assert tasks[step]["triggerPolicy"]["condition"].endswith("metadata['passed'] == 1.0)")
    # finetune.tuning: the Tuner runs before the Trainer and hands it the best values.
    assert {"Transform", "pretrained_encoder"} <= set(tasks["Tuner"]["dependentTasks"])
    assert "Tuner" in tasks["Trainer"]["dependentTasks"] and "hyperparameters" in tasks["Trainer"]["inputs"]["artifacts"]


def test_the_distillation_branch_compiles_after_the_teacher(tmp_path):
    spec = _compile("finetune", _config(tmp_path, "distill.enabled=true"), tmp_path)["pipelineSpec"]
    tasks = spec["root"]["dag"]["tasks"]
    # The teacher's baseline is KFP's query for the latest blessed tfx.ModelBlessing; the
    # student's blessing is another type, so that query never hands a teacher a student.
    [query] = spec["deploymentSpec"]["executors"]["latest_blessed_model-model-blessing-resolver_executor"][
        "resolver"]["outputArtifactQueries"].values()
    assert query["filter"].startswith('schema_title="tfx.ModelBlessing" AND')

    def title(component, direction, key):
        return spec["components"][component][direction]["artifacts"][key]["artifactType"]["instanceSchema"].split("\n")[0]

    assert title("Evaluator", "outputDefinitions", "blessing") == "title: tfx.ModelBlessing"
    assert title("StudentEvaluator", "outputDefinitions", "blessing") == "title: tfx_bert.StudentBlessing"
    assert title("StudentPusher", "inputDefinitions", "model_blessing") == "title: tfx_bert.StudentBlessing"
    assert {"StudentTrainer", "StudentEvaluator", "StudentPusher"} <= set(tasks)
    assert "Trainer" in tasks["StudentTrainer"]["dependentTasks"]
    assert set(tasks["StudentEvaluator"]["dependentTasks"]) >= {"Trainer", "StudentTrainer"}
    assert "baseline_model" in tasks["StudentEvaluator"]["inputs"]["artifacts"]
    assert set(tasks["StudentPusher"]["dependentTasks"]) == {"StudentEvaluator", "StudentTrainer", "TaskExampleGen",
                                                             "DataGate"}
    assert _trainer_config({"pipelineSpec": {"root": {"dag": {"tasks": tasks}}}}, "StudentTrainer")["distill"]["enabled"]


@pytest.mark.parametrize("kind,expected", [
    ("pretrain", {"corpus_pattern": "gs://bucket/corpus/*.txt", "train_steps": 1000, "model_size": "tiny"}),
    ("finetune", {"data_dir": "gs://bucket/sst2", "train_steps": 200}),
])
def test_runtime_parameters_are_exposed_with_defaults_and_bound_to_steps(tmp_path, kind, expected):
    job = _compile(kind, _config(tmp_path), tmp_path)
    spec = job["pipelineSpec"]
    declared = spec["root"]["inputDefinitions"]["parameters"]
    assert {name: p["defaultValue"] for name, p in declared.items()} == expected
    assert set(job["runtimeConfig"]["parameterValues"]) == set(expected)
    tasks = spec["root"]["dag"]["tasks"]
    bound = {(task, name): p["componentInputParameter"]
             for task, t in tasks.items() for name, p in t.get("inputs", {}).get("parameters", {}).items()
             if "componentInputParameter" in p}
    data_step = ("TextExampleGen", "input_pattern") if kind == "pretrain" else ("TaskExampleGen", "input_base")
    assert bound[data_step] == ("corpus_pattern" if kind == "pretrain" else "data_dir")
    assert bound[("Trainer", "train_steps")] == "train_steps"
    assert (("Trainer", "model_size") in bound) == (kind == "pretrain")


def test_runtime_parameters_can_be_turned_off(tmp_path):
    job = _compile("pretrain", _config(tmp_path, "kubeflow.runtime_parameters=false"), tmp_path)
    assert "inputDefinitions" not in job["pipelineSpec"]["root"]


def test_pipeline_root_from_config_is_the_runs_output_directory(tmp_path):
    job = _compile("pretrain", _config(tmp_path, "kubeflow.pipeline_root=gs://bucket/root"), tmp_path)
    assert job["runtimeConfig"]["gcsOutputDirectory"] == "gs://bucket/root"


def test_folding_run_parameters_sets_steps_and_model_size():
    props = bert_trainer_executor.fold_run_parameters({
        "train_args": '{"num_steps": 10}', "custom_config": '{"batch_size": 8}',
        "train_steps": 5000.0, "model_size": "base"})
    assert json.loads(props["train_args"]) == {"num_steps": 5000}
    assert json.loads(props["custom_config"]) == {"batch_size": 8, "model_size": "base"}
    assert "train_steps" not in props and "model_size" not in props


def test_gpu_resources_only_on_the_trainer_and_beam_resources_on_beam_steps(tmp_path):
    config = _config(tmp_path, "resources.trainer.accelerator_type=nvidia.com/gpu",
                     "resources.trainer.accelerator_count=4", "resources.trainer.memory_gb=60",
                     "resources.beam.cpu=8", "resources.beam.memory_gb=32")
    job = _compile("pretrain", config, tmp_path)
    trainer = _container(job, "Trainer")["resources"]
    assert trainer["accelerator"] == {"type": "nvidia.com/gpu", "count": "4"}
    assert trainer["memoryLimit"] == 60
    for step in ("TextExampleGen", "StatisticsGen", "WordPieceVocabGen", "PretrainingDataGen"):
        assert _container(job, step)["resources"] == {"cpuLimit": 8.0, "memoryLimit": 32.0}
    assert "resources" not in _container(job, "SchemaGen")
    # Four GPUs on one machine: MirroredStrategy with fp16 mixed precision.
    assert _trainer_config(job)["distribution"] == "mirrored"
    assert _trainer_config(job)["mixed_precision"] == "mixed_float16"


def test_no_accelerators_when_none_are_configured(tmp_path):
    job = _compile("finetune", _config(tmp_path), tmp_path)
    assert not any("accelerator" in e["container"].get("resources", {})
                   for e in _executors(job).values() if "container" in e)
    assert _trainer_config(_compile("pretrain", _config(tmp_path), tmp_path))["distribution"] == "default"


def test_tpu_on_vertex_trains_with_tpu_strategy_and_bfloat16(tmp_path):
    config = _config(tmp_path, "kubeflow.platform=vertex", "resources.trainer.accelerator_type=TPU_V3",
                     "resources.trainer.accelerator_count=8", "pretrain.batch_size_per_replica=64")
    job = _compile("pretrain", config, tmp_path)
    assert _container(job, "Trainer")["resources"]["accelerator"] == {"type": "TPU_V3", "count": "8"}
    settings = _trainer_config(job)
    assert (settings["distribution"], settings["mixed_precision"]) == ("tpu", "mixed_bfloat16")
    assert settings["batch_size_per_replica"] == 64


def test_multi_worker_training_runs_as_a_vertex_custom_job(tmp_path):
    config = _config(tmp_path, "kubeflow.platform=vertex", "kubeflow.project=my-project",
                     "kubeflow.region=europe-west4", "resources.trainer.replicas=3",
                     "resources.trainer.machine_type=a2-highgpu-1g",
                     "resources.trainer.accelerator_type=NVIDIA_TESLA_A100", "resources.trainer.accelerator_count=1")
    job = _compile("pretrain", config, tmp_path, image="gcr.io/p/tfx-bert:2")
    settings = _trainer_config(job)
    assert settings["distribution"] == "multi_worker"
    pools = settings["ai_platform_training_args"]["worker_pool_specs"]
    assert [p["replica_count"] for p in pools] == [1, 2]
    assert {p["container_spec"]["image_uri"] for p in pools} == {"gcr.io/p/tfx-bert:2"}
    assert pools[0]["machine_spec"] == {"machine_type": "a2-highgpu-1g",
                                        "accelerator_type": "NVIDIA_TESLA_A100", "accelerator_count": 1}
    assert settings["ai_platform_vertex_region"] == "europe-west4"
    args = _container(job, "Trainer")["args"]
    assert args[args.index("--executor_class_path") + 1].endswith("vertex_executor.VertexExecutor")
    # The launching step itself needs no accelerator.
    assert "accelerator" not in _container(job, "Trainer").get("resources", {})


def test_multi_worker_needs_vertex_and_a_project(tmp_path):
    with pytest.raises(ValueError, match="kubeflow.platform=vertex"):
        _config(tmp_path, "resources.trainer.replicas=2")
    with pytest.raises(ValueError, match="kubeflow.project"):
        _compile("pretrain", _config(tmp_path, "kubeflow.platform=vertex", "resources.trainer.replicas=2"), tmp_path)


@pytest.mark.parametrize("gpus,tpu,replicas,expected", [
    (0, False, 1, ("default", "")), (1, False, 1, ("default", "mixed_float16")),
    (8, False, 1, ("mirrored", "mixed_float16")), (1, False, 4, ("multi_worker", "mixed_float16")),
    (8, True, 1, ("tpu", "mixed_bfloat16")),
])
def test_auto_strategy_follows_the_trainer_resources(tmp_path, gpus, tpu, replicas, expected):
    overrides = ["kubeflow.platform=vertex", f"resources.trainer.replicas={replicas}"]
    if gpus:
        overrides += [f"resources.trainer.accelerator_type={'TPU_V3' if tpu else 'nvidia.com/gpu'}",
                      f"resources.trainer.accelerator_count={gpus}"]
    assert accelerators.training_strategy(_config(tmp_path, *overrides)) == expected
    explicit = _config(tmp_path, *overrides, "pretrain.distribution=default", "pretrain.mixed_precision=float32")
    assert accelerators.training_strategy(explicit) == ("default", "")


def test_dataflow_args_ship_the_package_to_workers_in_the_compiled_spec(tmp_path):
    config = _config(tmp_path, "beam.runner=dataflow", "beam.project=p", "beam.region=us-central1",
                     "beam.temp_location=gs://bucket/tmp", "beam.max_num_workers=50")
    job = _compile("pretrain", config, tmp_path)
    args = _container(job, "TextExampleGen")["args"]
    assert "--runner=DataflowRunner" in args and "--setup_file=/tfx-bert/setup.py" in args
    assert "--staging_location=gs://bucket/tmp/staging" in args and "--max_num_workers=50" in args


@pytest.mark.parametrize("overrides,runner_name,expected", [
    (["beam.runner=dataflow", "beam.project=p", "beam.region=r", "beam.temp_location=gs://b/t"],
     "DataflowRunner", {"project": "p", "region": "r", "temp_location": "gs://b/t"}),
    (["beam.runner=flink", "beam.flink_master=flink:8081", "beam.parallelism=16",
      "beam.environment_type=DOCKER", "beam.sdk_container_image=gcr.io/p/tfx-bert:1"],
     "FlinkRunner", {"flink_master": "flink:8081", "parallelism": 16, "environment_type": "DOCKER",
                     "environment_config": "gcr.io/p/tfx-bert:1"}),
    (["beam.runner=flink", "beam.job_endpoint=127.0.0.1:8099", "beam.environment_type=EXTERNAL",
      "beam.environment_config=127.0.0.1:50000", "beam.extra_args=--environment_cache_millis=30000"],
     "FlinkRunner", {"job_endpoint": "127.0.0.1:8099", "environment_type": "EXTERNAL",
                     "environment_config": "127.0.0.1:50000", "environment_cache_millis": "30000"}),
    (["beam.runner=spark", "beam.spark_master=spark://spark:7077"],
     "SparkRunner", {"spark_master_url": "spark://spark:7077"}),
])
def test_beam_runner_presets_parse_as_beam_pipeline_options(tmp_path, overrides, runner_name, expected):
    from apache_beam.options.pipeline_options import (
        PipelineOptions,
        SetupOptions,
        StandardOptions,
    )

    args = beam_options.pipeline_args(_config(tmp_path, *overrides))
    options = PipelineOptions(args)
    assert options.view_as(StandardOptions).runner == runner_name
    assert options.view_as(SetupOptions).setup_file == beam_options.REPO_SETUP_FILE
    parsed = options.get_all_options(retain_unknown_options=True)
    for key, value in expected.items():
        assert parsed[key] == value, key


def test_distributed_runner_without_its_settings_names_them(tmp_path):
    with pytest.raises(ValueError, match="beam.project, beam.region, beam.temp_location"):
        beam_options.pipeline_args(_config(tmp_path, "beam.runner=dataflow"))
    with pytest.raises(ValueError, match="beam.flink_master"):
        beam_options.pipeline_args(_config(tmp_path, "beam.runner=flink"))


def test_setup_file_ships_every_package_beam_workers_import(tmp_path):
    """What Dataflow does with --setup_file: build an sdist; it must hold all our packages."""
    subprocess.run([sys.executable, "setup.py", "-q", "sdist", "--dist-dir", str(tmp_path)],
                   cwd=REPO, check=True, capture_output=True)
    (sdist,) = tmp_path.glob("*.tar.gz")
    names = tarfile.open(sdist).getnames()
    for module in ("tfx_bert/tokenization.py", "tfx_bert/configs/demo.yaml", "components/text_example_gen/executor.py",
                   "components/wordpiece_vocab/executor.py", "components/pretraining_data/executor.py",
                   "models/pretraining.py", "pipeline/common.py", "components/bert_trainer/executor.py"):
        assert any(n.endswith(module) for n in names), module


def test_spec_loads_with_the_kfp_sdk(tmp_path):
    from kfp import components

    spec = _compile("pretrain", _config(tmp_path), tmp_path)["pipelineSpec"]
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    component = components.load_component_from_file(str(path))
    assert component.pipeline_spec.root.dag.tasks["Trainer"]
    assert set(component.component_spec.inputs) == {"corpus_pattern", "train_steps", "model_size"}


def test_compile_cli_writes_the_spec_and_bare_pipeline_spec(tmp_path):
    from tfx_bert import cli

    output = tmp_path / "ft.json"
    # --demo and --work-dir, as every other pipeline command takes them.
    assert cli.main(["compile", "--pipeline", "finetune", "--demo", "--work-dir", str(tmp_path),
                     *sum((["--set", o] for o in CLUSTER_PATHS), []),
                     "--image", "gcr.io/p/img:3", "--output", str(output)]) == 0
    job = json.load(open(output))
    assert _container(job, "Trainer")["image"] == "gcr.io/p/img:3"
    spec = yaml.safe_load(open(runner.pipeline_spec_file(str(output))))
    assert spec["root"]["dag"]["tasks"]["Trainer"] and spec["pipelineInfo"]["name"] == "tfx-bert-sentiment"
    assert runner.parse_params(["train_steps=50", "data_dir=gs://x"]) == {"train_steps": 50, "data_dir": "gs://x"}


def test_two_phase_pretraining_wires_phase_two_after_phase_one(tmp_path):
    config = _config(tmp_path, "pretrain.phase2_max_seq_length=128", "pretrain.phase2_train_steps=50")
    tasks = _compile("pretrain", config, tmp_path)["pipelineSpec"]["root"]["dag"]["tasks"]
    assert set(tasks["TrainerPhase2"]["dependentTasks"]) == {"Trainer", "PretrainingDataGenPhase2", "DataGate"}


def test_phase_two_must_be_longer():
    with pytest.raises(ValueError, match="phase2_max_seq_length must exceed max_seq_length"):
        config_lib.load_config(overrides=["pretrain.phase2_max_seq_length=64", "pretrain.phase2_train_steps=5"])


# The image ---------------------------------------------------------------------------------

def _dockerfile():
    return open(os.path.join(REPO, "kubeflow", "Dockerfile"), encoding="utf-8").read()


def _locked_version(package):
    lock = open(os.path.join(REPO, "uv.lock"), encoding="utf-8").read()
    return re.search(rf'\n\[\[package\]\]\nname = "{package}"\nversion = "([^"]+)"', lock).group(1)


def test_dockerfile_builds_from_the_tfx_image_of_the_locked_version_with_the_pinned_uv():
    dockerfile = _dockerfile()
    tfx_image_tag = re.search(r"ARG TFX_IMAGE=gcr.io/tfx-oss-public/tfx:(\S+)", dockerfile).group(1)
    assert tfx_image_tag == _locked_version("tfx")
    makefile_uv = re.search(r"UV_VERSION := (\S+)", open(os.path.join(REPO, "Makefile")).read()).group(1)
    assert re.search(r"ARG UV_VERSION=(\S+)", dockerfile).group(1) == makefile_uv
    python = re.search(r"ARG PYTHON_VERSION=(\S+)", dockerfile).group(1)
    assert f"{sys.version_info.major}.{sys.version_info.minor}" == python  # the lock's interpreter
    syncs = re.findall(r"uv sync ([^\n]+)", dockerfile)
    assert syncs and all("--frozen" in s and "--no-dev" in s for s in syncs)  # never re-resolves
    copied = set(re.findall(r"^COPY (\S+) ", dockerfile, re.M))
    include = re.search(r"find_packages\(include=\[(.*?)\]", open(os.path.join(REPO, "setup.py")).read(), re.S).group(1)
    packages = {p for p in re.findall(r'"([a-z_]+)"', include)}
    assert packages <= copied, packages - copied
    assert "/tfx-bert/setup.py" == config_lib.KubeflowConfig().image_setup_file


def test_the_lock_exports_for_the_image_with_the_versions_tested_here():
    uv = os.path.join(REPO, ".tools", "bin", "uv")  # what `make setup` installs
    uv = uv if os.path.exists(uv) else shutil.which("uv")
    assert uv, "uv not found: run `make setup`"
    exported = subprocess.run([uv, "export", "--frozen", "--no-dev", "--no-emit-project", "--no-hashes"],
                              cwd=REPO, check=True, capture_output=True, text=True).stdout
    from importlib import metadata

    for package in ("tensorflow", "tfx", "keras-hub", "tensorflow-text", "apache-beam", "kfp"):
        assert f"\n{package}=={metadata.version(package)}" in exported, package
    assert "\npytest==" not in exported  # the test extra stays out of the image


# A compiled step, run the way a KFP v2 launcher runs it ---------------------------------

def _runtime_artifact(schema_title, uri, **metadata):
    return {"artifacts": [{"name": f"{schema_title}-{os.path.basename(uri)}", "uri": uri,
                           "type": {"schemaTitle": schema_title}, "metadata": metadata}]}


def run_the_compiled_pipelines(root: str) -> dict:
    """The compiled pretraining pipeline from a corpus, then the compiled fine-tuning pipeline from
    its encoder, step by step under ``root``: {"pretrain" / "finetune": run_compiled's results,
    "lines": the launcher's progress}. A background job (``kubeflow_steps`` in conftest.py): it
    needs nothing from the session and its steps are one process at a time, so it runs beside the
    other tests instead of alone at the suite's end."""
    from pathlib import Path

    from tfx_bert import demo_data
    from tfx_bert_app.kubeflow import local_launcher

    tmp_path, lines, preload = Path(root), [], local_launcher.TFX_STEP_MODULES
    corpus = tmp_path / "corpus" / "corpus.txt"
    demo_data.write_pretraining_corpus(str(corpus), num_documents=40)
    # The corpus's gate is off here (four step processes less); fine-tuning's gate runs below.
    config = _config(tmp_path, "pretrain.batch_size=8", "pretrain.eval_steps=2", "pretrain.max_seq_length=32",
                     "pretrain.checkpoint_every=1000", "pretrain.max_predictions_per_seq=5", "pretrain.vocab_size=200",
                     "pretrain.enable_statistics=false")
    pretrain = local_launcher.run_compiled(
        _compile("pretrain", config, tmp_path), str(tmp_path / "kfp"), cwd=REPO, progress=lines.append, preload=preload,
        parameters={"corpus_pattern": str(corpus.parent / "*.txt"), "train_steps": 3, "model_size": "tiny"})
    if "Trainer" not in pretrain or pretrain["Trainer"]["state"] != "COMPLETE":
        return {"pretrain": pretrain, "finetune": {}, "lines": lines}
    data = tmp_path / "sentiment"
    demo_data.write_sentiment_dataset(str(data), num_train=300, num_eval=100)
    [model] = pretrain["Trainer"]["outputs"]["model"]
    config = config_lib.load_config(overrides=[
        f"work_dir={tmp_path / 'work'}", f"finetune.data_dir={data}", f"finetune.encoder_uri={model['uri']}",
        "finetune.train_steps=20", "finetune.accuracy_threshold=0", f"serving.serving_base={tmp_path / 'serving'}"],
        demo=True)
    finetune = local_launcher.run_compiled(_compile("finetune", config, tmp_path), str(tmp_path / "kfp-finetune"),
                                           cwd=REPO, progress=lines.append, preload=preload)
    return {"pretrain": pretrain, "finetune": finetune, "lines": lines}


@pytest.mark.slow
def test_the_compiled_pipelines_run_step_by_step_from_corpus_to_a_pushed_model(kubeflow_steps):
    """Every step of the compiled pretraining spec, then of the fine-tuning spec from its encoder
    (``run_the_compiled_pipelines``), each in its own process with TFX's KFP v2 container
    entrypoint and the command and arguments from the spec, in DAG order
    (kubeflow/local_launcher.py; each process forked from a server that imported TensorFlow, TFX
    and Beam, 55 s instead of 134 s alone): only artifacts pass between steps, the data gates'
    conditions are evaluated on their outputs, the run's parameters (corpus, train_steps,
    model_size) reach the steps that read them, the resolvers find no blessed model (a first run),
    and the fine-tuned model is pushed and answers."""
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (the served graph's tokenizer ops)

    root, runs = kubeflow_steps
    results, lines = runs["pretrain"], runs["lines"]
    assert {name: r["state"] for name, r in results.items()} == {name: "COMPLETE" for name in results}, lines
    trainer_log = open(os.path.join(root, "kfp", "Trainer", "log.txt"), encoding="utf-8").read()
    assert "step 3/3" in trainer_log  # train_steps from the run, not the 1000 compiled in
    [model] = results["Trainer"]["outputs"]["model"]
    encoder_config = json.load(open(os.path.join(model["uri"], "Format-Serving", "config.json")))
    assert encoder_config["config"]["num_layers"] == 2  # the tiny size the run asked for
    [vocabulary] = results["WordPieceVocabGen"]["outputs"]["vocabulary"]
    assert encoder_config["config"]["vocabulary_size"] == len(open(os.path.join(vocabulary["uri"], "vocab.txt")).read().split())

    results = runs["finetune"]
    assert results and {name: r["state"] for name, r in results.items()} == {name: "COMPLETE" for name in results}, lines
    assert all(not found for name, r in results.items() if "resolver" in name for found in r["outputs"].values())
    [gate] = results["DataGate"]["outputs"]["result"]
    assert gate["metadata"]["passed"] == 1.0  # what the Cond before Transform, Trainer, ... read
    [pushed] = results["Pusher"]["outputs"]["pushed_model"]
    assert pushed["metadata"]["pushed"] == 1.0
    served = tf.saved_model.load(pushed["metadata"]["pushed_destination"]).signatures["serving_default"]
    probabilities = served(text=tf.constant(["the soup was wonderful ."]))["probabilities"].numpy()
    assert probabilities.shape == (1, 2) and abs(probabilities.sum() - 1) < 1e-5


def test_each_custom_artifact_type_is_what_the_kfp_entrypoint_imports_for_its_title():
    """TFX's KFP v2 entrypoint imports a custom type by its schema title before a step runs (the
    compiled pipeline's DataGate and WordPieceVocabGen failed there before the types moved)."""
    import tfx_bert
    from tfx.orchestration.kubeflow.v2.container import kubeflow_v2_entrypoint_utils
    from tfx.utils import import_utils
    from kfp.pipeline_spec import pipeline_spec_pb2

    from tfx_bert import artifacts

    assert set(artifacts.NAMES) == set(tfx_bert._ARTIFACT_TYPES)
    for name in artifacts.NAMES:
        cls = getattr(artifacts, name)
        schema = pipeline_spec_pb2.ArtifactTypeSchema(instance_schema=f"title: {cls.TYPE_NAME}\ntype: object\n")
        assert import_utils.import_class_by_path(kubeflow_v2_entrypoint_utils._retrieve_class_path(schema)) is cls


@pytest.mark.parametrize("preload", [(), ("json",)])
def test_a_step_runs_its_module_with_its_arguments_log_directory_and_exit_code(tmp_path, preload):
    """Forked from the preloading server or started as an interpreter, a ``python -m`` step is
    the same process to its module: its arguments, working directory, environment, log and exit."""
    from tfx_bert_app.kubeflow import local_launcher

    (tmp_path / "kfp_step_probe.py").write_text(
        "import os, sys\nprint('args', sys.argv[1:], os.getcwd(), os.environ.get('PROBE'), __name__)\n"
        "print('to stderr', file=sys.stderr)\nsys.exit(int(sys.argv[1]))\n")
    log = tmp_path / "log.txt"
    code = local_launcher._run([sys.executable, "-m", "kfp_step_probe", "3", "x y"], str(log),
                               dict(os.environ, PROBE="p1"), str(tmp_path), preload)
    assert code == 3
    # (sorted: how the two streams interleave depends on buffering)
    assert sorted(log.read_text().splitlines()) == [f"args ['3', 'x y'] {tmp_path} p1 __main__", "to stderr"]


def test_the_launcher_skips_what_a_condition_stops_and_everything_after_it():
    from tfx_bert_app.kubeflow import local_launcher

    condition = "(inputs.artifacts['_DataGate.result'].artifacts[0].metadata['passed'] == 1.0)"
    passed = {"_DataGate.result": {"artifacts": [{"metadata": {"passed": 1.0}}]}}
    stopped = {"_DataGate.result": {"artifacts": [{"metadata": {"passed": 0.0}}]}}
    assert local_launcher._condition_holds(condition, passed, "Trainer")
    assert not local_launcher._condition_holds(condition, stopped, "Trainer")
    with pytest.raises(ValueError, match="Trainer: trigger condition 'size\\(x\\) > 1' is not one"):
        local_launcher._condition_holds("size(x) > 1", passed, "Trainer")
    assert local_launcher._order({"c": {"dependentTasks": ["b"]}, "b": {"dependentTasks": ["a"]}, "a": {}}) == ["a", "b", "c"]


class _KfpApi:
    """The few Kubeflow Pipelines REST endpoints the kfp client calls to start a run, on
    127.0.0.1 (no KFP cluster runs here); it records what it receives."""

    def __init__(self):
        import http.server
        import threading

        api = self
        self.runs = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _reply(self, body):
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):  # noqa: N802
                if self.path.startswith("/apis/v2beta1/healthz"):
                    return self._reply({"multi_user": False})
                if self.path.startswith("/apis/v2beta1/experiments"):
                    return self._reply({"experiments": [{"experiment_id": "exp-1", "display_name": "Default"}],
                                        "total_size": 1})
                self.send_error(404)

            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if self.path.startswith("/apis/v2beta1/runs"):
                    api.runs.append(body)
                    return self._reply(dict(body, run_id="run-1", state="PENDING"))
                if self.path.startswith("/apis/v2beta1/experiments"):
                    return self._reply(dict(body, experiment_id="exp-1"))
                self.send_error(404)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self):
        self.server.shutdown()


def test_compile_cli_submits_a_run_with_parameters_and_pipeline_root(tmp_path, capsys):
    from tfx_bert import cli

    api = _KfpApi()
    try:
        assert cli.main(["compile", "--pipeline", "pretrain", "--config", config_lib.DEMO_CONFIG,
                         "--set", f"work_dir={tmp_path}", "--set", CLUSTER_PATHS[0],
                         "--output", str(tmp_path / "p.json"), "--endpoint", api.endpoint,
                         "--param", "train_steps=50", "--param", "model_size=small",
                         "--pipeline-root", "gs://bucket/runs", "--run-name", "nightly"]) == 0
    finally:
        api.close()
    (run,) = api.runs
    assert run["display_name"] == "nightly" and run["experiment_id"] == "exp-1"
    assert set(run["pipeline_spec"]["root"]["dag"]["tasks"]) >= {"TextExampleGen", "Trainer"}
    assert run["runtime_config"]["parameters"] == {"train_steps": 50, "model_size": "small"}
    assert run["runtime_config"]["pipeline_root"] == "gs://bucket/runs"
    assert "Submitted run run-1" in capsys.readouterr().out
