import importlib
import os
import subprocess
import sys

import pytest
import yaml

from tfx_bert import cli, tasks


def test_help_lists_commands():
    out = subprocess.run([sys.executable, "-m", "tfx_bert.cli", "--help"], capture_output=True, text=True, check=True).stdout
    for command in ("demo", "pretrain", "finetune", "serve", "predict", "check-ops", "show-config"):
        assert command in out


def test_show_config_applies_flags_and_overrides(capsys):
    assert cli.main(["show-config", "--demo", "--model-size", "mini", "--set", "finetune.train_steps=5"]) == 0
    shown = yaml.safe_load(capsys.readouterr().out)
    assert shown["pretrain"]["model_size"] == "mini"
    assert shown["finetune"]["train_steps"] == 5
    assert shown["pretrain"]["vocab_size"] == 1000  # from the demo config


def test_bad_config_is_one_clear_line(capsys):
    assert cli.main(["show-config", "--set", "pretrain.nope=1"]) == 2
    err = capsys.readouterr().err
    assert "Unknown config key 'pretrain.nope'" in err and "Traceback" not in err


def test_check_ops_on_missing_dir(capsys, tmp_path):
    assert cli.main(["check-ops", str(tmp_path)]) == 2
    assert "not a SavedModel directory" in capsys.readouterr().err


def test_predict_against_no_server_says_unavailable(capsys):
    import portpicker

    port = portpicker.pick_unused_port()
    assert cli.main(["predict", "--target", f"127.0.0.1:{port}", "--timeout", "1", "hello"]) == 1
    assert "UNAVAILABLE" in capsys.readouterr().err


def test_finetune_without_pretraining_explains(capsys, tmp_path):
    assert cli.main(["finetune", "--demo", "--work-dir", str(tmp_path)]) == 2
    assert "No pretrained encoder found" in capsys.readouterr().err


@pytest.mark.parametrize("dotted", sorted({p for t in tasks.TASKS.values() for p in (t.preprocessing_fn, t.run_fn)}
                                          | {"tfx_bert_app.models.pretraining.run_fn"}))
def test_every_configured_user_function_imports(dotted):
    module, name = dotted.rsplit(".", 1)
    assert callable(getattr(importlib.import_module(module), name))


def test_finetune_task_flag_names_the_pipeline_and_set_still_wins(monkeypatch):
    seen = {}
    monkeypatch.setattr(cli, "_run_pipeline", lambda kind, config, runner: seen.update(config=config) or 0.0)
    assert cli.main(["finetune", "--demo", "--task", "qa", "--set", "finetune.model_name=squad"]) == 0
    f = seen["config"].finetune
    assert (f.task, f.model_name, f.pipeline_name) == ("qa", "squad", "tfx-bert-qa")


def test_predict_qa_needs_a_context(capsys):
    assert cli.main(["predict", "--task", "qa", "What is it?"]) == 2
    assert "--task qa needs --context" in capsys.readouterr().err


@pytest.mark.parametrize("task, evaluator", [("retrieval", "RetrievalEvaluator"), ("rerank", "Evaluator")])
def test_retrieval_and_rerank_pipelines_gate_the_push_with_their_evaluators(tmp_path, task, evaluator):
    from tfx_bert_app.pipeline.finetuning_pipeline import create_finetuning_pipeline
    from tfx_bert_app.pipeline.parameters import PipelineParameters
    from tfx_bert import config as config_lib

    indexing = [f"finetune.index_corpus={tmp_path}/corpus.jsonl"] if task == "retrieval" else []
    config = config_lib.load_config(overrides=[f"finetune.task={task}", f"work_dir={tmp_path}",
                                               "finetune.input_format=beir", "finetune.eval_pattern=qrels/dev.tsv",
                                               f"finetune.data_dir={tmp_path}", *indexing])
    pipeline = create_finetuning_pipeline(config, PipelineParameters(str(tmp_path), 10), str(tmp_path / "encoder"), [])
    components = {c.id: c for c in pipeline.components}
    assert type(components["Evaluator"]).__name__ == evaluator
    blessing = components["Evaluator"].outputs["blessing"]
    assert components["Pusher"].inputs["model_blessing"] is blessing
    if task == "retrieval":
        assert components["VectorIndexer"].inputs["model_blessing"] is blessing
        assert components["Evaluator"].exec_properties["qrels"] == "qrels/dev.tsv"
        assert components["Evaluator"].inputs["baseline_model"] is components["latest_blessed_model"].outputs["model"]
    else:  # a cross-encoder embeds nothing: indexing is a retrieval / similarity setting
        assert "VectorIndexer" not in components


def test_demo_loader_settings_fill_defaults_but_an_explicit_set_wins(tmp_path):
    from tfx_bert import config as config_lib

    config = config_lib.load_config(overrides=["finetune.task=retrieval", f"work_dir={tmp_path}",
                                               "finetune.accuracy_threshold=0.42"])
    f = config.finetune
    path = f.data_dir
    assert path == os.path.join(str(tmp_path), "data", "retrieval")
    assert not os.path.exists(path)  # resolved, not written: loading a configuration writes nothing
    assert (f.input_format, f.train_pattern, f.eval_pattern) == ("beir", "qrels/train.tsv", "qrels/dev.tsv")
    assert f.index_corpus == os.path.join(path, "corpus.jsonl")  # "{data}" filled in
    assert f.accuracy_threshold == 0.42  # the demo's 0.1 does not replace the user's value
    assert (f.model_name, f.pipeline_name) == ("retrieval", "tfx-bert-retrieval")
    rerank = config_lib.demo_config(["finetune.task=rerank", f"work_dir={tmp_path}"]).finetune
    assert (rerank.train_steps, rerank.num_negatives) == (600, 7)  # over demo.yaml's 200 steps
    explicit = config_lib.demo_config(["finetune.task=rerank", "finetune.train_steps=50"]).finetune
    assert explicit.train_steps == 50  # the user's value over the task's demo value


def test_show_config_prints_what_a_run_uses(capsys):
    """The issue's acceptance: the demo's retrieval threshold (0.1) yields to an explicit --set,
    --task works as for finetune, and a task's own settings are shown only for that task."""
    assert cli.main(["show-config", "--demo", "--set", "finetune.task=retrieval",
                     "--set", "finetune.accuracy_threshold=0.6"]) == 0
    import yaml

    shown = yaml.safe_load(capsys.readouterr().out)["finetune"]
    assert (shown["accuracy_threshold"], shown["model_name"], shown["train_steps"]) == (0.6, "retrieval", 600)
    assert "temperature" in shown and "crf" not in shown
    assert cli.main(["show-config", "--task", "nli"]) == 0
    shown = yaml.safe_load(capsys.readouterr().out)["finetune"]
    assert (shown["model_name"], shown["similarity_objective"], shown["num_classes"]) == ("nli", "classification", 3)


def test_serve_hands_the_server_tf_servings_batching_file_and_thread_flags(tmp_path, monkeypatch):
    """`tfx-bert serve` with serving.enable_batching hands the development server TF Serving's
    flags, a batching parameters file it reads back (num_batch_threads 0 -> the CPU cores), and
    the TensorFlow thread-pool flags that are set."""
    from tfx_bert.serving import server

    seen = {}
    monkeypatch.setattr(server, "main", lambda flags: seen.setdefault("flags", flags))
    assert cli.main(["serve", "--set", f"work_dir={tmp_path}", "--set", "serving.enable_batching=true",
                     "--set", "serving.batch_timeout_micros=0", "--set", "serving.max_batch_size=16",
                     "--set", "serving.inter_op_parallelism=2"]) == 0
    flags = seen["flags"]
    assert "--enable_batching" in flags
    assert "--tensorflow_inter_op_parallelism=2" in flags
    assert not any(f.startswith("--tensorflow_intra_op_parallelism") for f in flags)
    params = server.read_batching_parameters(flags[flags.index("--batching_parameters_file") + 1])
    assert (params.max_batch_size, params.batch_timeout_s, params.num_batch_threads) == (16, 0.0, os.cpu_count())
