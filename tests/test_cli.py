import importlib
import json
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
                                          | {t.distill_run_fn for t in tasks.TASKS.values() if t.distillable}
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


def test_distill_runs_the_fine_tuning_pipeline_with_its_student_branch(monkeypatch, capsys, tmp_path):
    seen = []
    monkeypatch.setattr(cli, "_run_pipeline", lambda kind, config, runner: seen.append((kind, config)) or 0.0)
    assert cli.main(["distill", "--demo", "--work-dir", str(tmp_path), "--set", "distill.student_layers=1"]) == 0
    [(kind, config)] = seen
    assert kind == "finetune" and config.distill.enabled and config.distill.student_layers == 1
    assert "== Distillation: teacher vs student ==" in capsys.readouterr().out
    assert cli.main(["distill", "--demo", "--work-dir", str(tmp_path), "--set", "distill.enabled=false"]) == 0
    assert not seen[-1][1].distill.enabled  # --set wins over the command's own setting
    assert cli.main(["distill", "--demo", "--task", "retrieval", "--set", "distill.hidden_weight=1"]) == 2
    assert "retrieval task's model is not fed one sequence" in capsys.readouterr().err


def test_predict_qa_needs_a_context(capsys):
    assert cli.main(["predict", "--task", "qa", "What is it?"]) == 2
    assert "--task qa needs --context" in capsys.readouterr().err


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
    out = capsys.readouterr().out
    shown = yaml.safe_load(out)["finetune"]
    assert (shown["model_name"], shown["similarity_objective"], shown["num_classes"]) == ("nli", "classification", 3)
    # Grouped by owner: the shared settings, then a comment, then the task's own.
    lines = out.splitlines()
    marker = lines.index("  # the nli task's own settings (NliSettings)")
    assert lines.index("  num_classes: 3") < marker < lines.index("  pooling: mean")


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


def test_retrieve_bm25_ranks_the_corpus_file_saves_its_index_and_explains_what_is_missing(capsys, tmp_path):
    from tfx_bert.lexical import BM25Index

    corpus = {"d1": "the red car is fast", "d2": "a blue boat", "d3": "red boats and a red car"}
    path = tmp_path / "corpus.jsonl"
    path.write_text("".join(json.dumps({"_id": k, "title": "", "text": v}) + "\n" for k, v in corpus.items()))
    index_dir = str(tmp_path / "bm25")
    args = ["retrieve", "red car", "--mode", "bm25", "--k", "2", "--bm25-index", index_dir]
    assert cli.main([*args, "--corpus", str(path)]) == 0
    hits = json.loads(capsys.readouterr().out)["hits"]
    expected = BM25Index.build(corpus).search(["red car"], 2)[0]
    assert [(h["id"], h["score"]) for h in hits] == [(d, pytest.approx(s, abs=1e-6)) for d, s in expected]
    assert cli.main(args) == 0  # the saved index, without the corpus
    assert json.loads(capsys.readouterr().out)["hits"] == hits
    assert cli.main(["retrieve", "red car", "--mode", "bm25"]) == 2
    assert "give --corpus" in capsys.readouterr().err
    assert cli.main(["retrieve", "red car", "--mode", "hybrid", "--model-dir", str(tmp_path)]) == 2
    assert "give --collection" in capsys.readouterr().err
