"""The task registry, and the shared task harness every registered task runs through.

The harness takes each entry of ``tfx_bert.tasks.TASKS`` through its real fine-tuning pipeline
on its embedded demo data, from the demo's pretrained encoder: TaskExampleGen -> Transform (its
``preprocessing_fn``) -> Trainer (its ``run_fn``) -> Evaluator (blessing) -> ServingPusher (op
check, load check) -> the development server -> ``Predict`` with exactly the inputs its signature
declares -> the client's decoding. A new task is tested by registering it. The pipelines are
the ``finetuned`` fixture's runs (conftest.py): the end-to-end tests' (which check that the tasks
learn) and a few-step run of every other task, two at a time in the background.
"""
import glob
import os

import numpy as np
import pytest
import yaml

from tfx_bert import config as config_lib
from tfx_bert import scoring, signatures, tasks
from tfx_bert.serving import task_clients

SENTENCES = ["the chef bakes the bread . the rocket reaches the moon .", "anna sails the boat to the harbor ."]
SECOND = ["the chef slices the bread .", "the captain steers the boat ."]


def harness_request(task):
    """(texts, text_b, context, query) for whatever inputs the task's signature declares."""
    inputs = task.signature.inputs
    texts = ["who sails the boat ?", "what does the chef bake ?"] if signatures.QUESTION in inputs else SENTENCES
    return (texts, SECOND if signatures.TEXT_B in inputs else None,
            " ".join(SENTENCES) if signatures.CONTEXT in inputs else None,
            "who bakes bread ?" if signatures.QUERY in inputs else None)


def test_every_task_is_complete_and_consistent():
    from tfx_bert import demo_data

    shared = {f.name for f in config_lib.dataclasses.fields(config_lib.FinetuneConfig)}
    for name, task in tasks.TASKS.items():
        assert task.name == name and callable(task.decode)
        writer = task.demo.writer
        assert task.demo.dataset in demo_data.demo_paths("/d") and callable(
            getattr(demo_data, writer) if isinstance(writer, str) else writer)
        fields = shared | tasks.field_names(task.Settings)
        assert {k for k, _ in task.demo.settings + task.data_defaults} | set(task.transform_settings) <= fields
        assert not tasks.field_names(task.Settings) & shared  # a task's setting never shadows a shared one
        config = config_lib.load_config(overrides=[f"finetune.task={name}"])  # its demo configuration validates
        assert (config.finetune.model_name, config.finetune.pipeline_name) == (name, f"tfx-bert-{name}")
        assert isinstance(config.finetune.task_settings, task.Settings)


def test_request_inputs_follow_the_signature():
    pair = tasks.get_task("pair_classification")
    inputs = task_clients.request_inputs(pair, ["a", "b"], ["c", "d"])
    assert sorted(inputs) == ["text", "text_b"] and list(inputs["text_b"]) == ["c", "d"]
    with pytest.raises(ValueError, match=r"--task pair_classification takes text pairs: give one --text-b per text"):
        task_clients.request_inputs(pair, ["a", "b"], ["c"])
    qa = task_clients.request_inputs(tasks.get_task("qa"), ["q1", "q2"], context="ctx")
    assert list(qa[signatures.CONTEXT]) == ["ctx", "ctx"] and list(qa[signatures.QUESTION]) == ["q1", "q2"]
    with pytest.raises(ValueError, match="--task rerank needs --query"):
        task_clients.request_inputs(tasks.get_task("rerank"), ["p"])


LONG_TEXT = " ".join(["the chef bakes the warm bread in the oven ."] * 40)  # past every harness max_seq_length


def _with_a_long_row(inputs: dict) -> dict:
    """``inputs`` with a first row of long texts (questions and queries stay within their own limits)."""
    short = {signatures.QUESTION: "who bakes the bread ?", signatures.QUERY: "who bakes bread ?"}
    return {k: np.array([short.get(k, LONG_TEXT)] + list(v), dtype=object) for k, v in inputs.items()}


def _assert_close(actual, expected, path="row"):
    """Decoded rows equal, floats within 1e-5."""
    if isinstance(expected, float):
        assert actual == pytest.approx(expected, abs=1e-5), path
    elif isinstance(expected, dict):
        assert sorted(actual) == sorted(expected), path
        for key in expected:
            _assert_close(actual[key], expected[key], f"{path}.{key}")
    elif isinstance(expected, list):
        assert len(actual) == len(expected), path
        for i, (a, e) in enumerate(zip(actual, expected)):
            _assert_close(a, e, f"{path}[{i}]")
    else:
        assert actual == expected, path


def _pushed_version(work, name):
    versions = glob.glob(os.path.join(work, "serving", name, "*"))
    return max(versions, key=lambda p: int(os.path.basename(p))) if versions else None


@pytest.fixture(scope="module")
def served(demo_run, finetuned, tmp_path_factory):
    """Every registered task's model pushed (the demo pushed sentiment; the ``finetuned`` runs,
    the end-to-end tests' and a few-step one for each other task, pushed the rest), then one
    development server over all of them (a model_config_file). {task: its work dir}, target."""
    from tfx_bert.cli import DevServer
    from tfx_bert.serving import model_config

    demo_work, _ = demo_run
    works = {name: finetuned.work(name) if name in finetuned else demo_work for name in sorted(tasks.TASKS)}
    path = tmp_path_factory.mktemp("serving") / "models.config"
    path.write_text(model_config.to_text([model_config.ModelConfig(name, os.path.join(work, "serving", name))
                                          for name, work in works.items()]))
    with DevServer(None, None, model_config_file=str(path)) as server:
        yield works, server.target


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(tasks.TASKS))
def test_every_registered_task_trains_is_pushed_serves_and_decodes(name, served, capsys):
    """Its pipeline ran (preprocessing_fn -> run_fn -> Evaluator -> ServingPusher), the pushed
    model passes the op check, the run recorded its configuration, the server answers Predict
    with exactly the signature's outputs for exactly its inputs, and `tfx-bert predict --task`
    decodes the answer."""
    import json

    from tfx_bert import cli
    from tfx_bert.serving import op_check
    from tfx_bert.serving.client import ServingClient

    works, target = served
    work = works[name]
    version = _pushed_version(work, name)
    assert version is not None, f"{name}: nothing pushed (not blessed?)"
    assert op_check.unsupported_ops(version) == []
    with open(os.path.join(work, "pipelines", f"tfx-bert-{name}", "effective_config.yaml")) as f:
        task = tasks.get_task(name)
        assert yaml.safe_load(f)["finetune"]["task"] == task.reference  # the run recorded what it used

    texts, text_b, context, query = harness_request(task)
    inputs = task_clients.request_inputs(task, texts, text_b, context, query)
    with ServingClient(target) as client:
        client.wait_until_available(name)
        outputs = client.predict(name, inputs)
        # Batch scoring's signature (BulkInferrer's input: tf.Examples of the same inputs)
        # answers exactly what serving_default does.
        scored = client.predict(name, {"examples": np.array(scoring.serialized_examples(inputs), dtype=object)},
                                signature_name=signatures.SCORE_EXAMPLES)
        # Length-aware packing: beside a row past max_seq_length (the fixed-length width), each
        # row answers what it does alone (cut to its own bucket).
        mixed = _with_a_long_row(inputs)
        beside_long = client.predict(name, mixed)
        alone = [client.predict(name, {k: v[i:i + 1] for k, v in inputs.items()}) for i in range(len(texts))]
    assert set(task.signature.outputs) <= set(outputs), sorted(outputs)
    assert set(outputs) <= set(task.signature.outputs) | set(task.signature.optional_outputs)
    assert sorted(scored) == sorted(outputs)
    for key, value in outputs.items():
        if value.dtype == object:
            assert scored[key].tolist() == value.tolist(), key
        else:
            np.testing.assert_allclose(scored[key], value, atol=1e-5, err_msg=key)
    for i, answer in enumerate(alone):
        row = task.decode({k: v[i + 1:i + 2] for k, v in mixed.items()}, {k: v[i + 1:i + 2] for k, v in beside_long.items()})
        _assert_close(row, task.decode({k: v[i:i + 1] for k, v in inputs.items()}, answer))
    # Each row decoded alone (as the scored file's rows are) is the batch's row (retrieval and
    # rerank order a batch by score).
    alone = [task.decode({k: v[i:i + 1] for k, v in inputs.items()}, {k: v[i:i + 1] for k, v in scored.items()})
             for i in range(len(texts))]
    assert sorted(json.dumps(row) for (row,) in alone) == sorted(json.dumps(row) for row in task.decode(inputs, scored))

    args = ["predict", "--target", target, "--model-name", name, "--task", name, *texts]
    args += [a for b in (text_b or []) for a in ("--text-b", b)]
    args += ["--context", context] if context else []
    args += ["--query", query] if query else []
    capsys.readouterr()
    assert cli.main(args) == 0
    decoded = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(decoded) == len(texts) and all(isinstance(row, dict) and row for row in decoded)


@pytest.mark.slow
def test_batch_scoring_skips_and_counts_bad_rows_and_answers_as_served_predict(served, tmp_path):
    """`tfx-bert score`: the demo's pushed classifier over a CSV with bad rows (TaskExampleGen ->
    ServedModel -> BulkInferrer on Beam): the bad rows are skipped and counted, every other row is
    scored, and each scored row is what the server's Predict answers for its text (within 1e-5)."""
    import json
    import subprocess
    import sys

    from tests.helpers import REPO
    from tfx_bert.serving.client import ServingClient

    works, target = served
    name = config_lib.load_config(demo=True).finetune.task  # what the demo pushed
    good = ["the soup was really wonderful .", "what a dull match , very awful .", "zoë's café , naïve but fine ."]
    (tmp_path / "in.csv").write_text("text,label\n" + f'"{good[0]}",1\n"one","too",many\n' + f'"{good[1]}",\n'
                                     + " ,0\n" + f'"{good[2]}",7\n', encoding="utf-8")
    output = tmp_path / "scores.jsonl"
    proc = subprocess.run(
        [sys.executable, "-m", "tfx_bert.cli", "score", "--demo", "--work-dir", str(tmp_path / "work"),
         "--set", f"serving.serving_base={os.path.join(works[name], 'serving')}", "--model", name,
         "--input", str(tmp_path / "in.csv"), "--output", str(output)],
        capture_output=True, text=True, cwd=REPO, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "skipped 2 bad records: {'empty_text': 1, 'malformed_row': 1}" in proc.stdout
    rows = {row["text"]: row for row in map(json.loads, output.read_text(encoding="utf-8").splitlines())}
    assert sorted(rows) == sorted(good)  # labels are not read: an empty or unknown one is no reason to skip
    with ServingClient(target) as client:
        served_rows = task_clients.predict(client, name, name, good)
    for row in served_rows:
        scored = rows[row["text"]]
        assert scored["class_id"] == row["class_id"]
        np.testing.assert_allclose(scored["probabilities"], row["probabilities"], atol=1e-5)
