"""pipeline/airflow_runner.py: the pretraining and a fine-tuning pipeline as Airflow DAGs, run by
Airflow's own scheduler (sqlite; one task at a time, each an ``airflow tasks run`` process forked
from a preloaded server: pipeline/airflow_executor.py) to a pushed model that answers; the data
gate's stop, which TFX's Airflow runner does not carry out itself, skips the steps after a stopped
gate.

Marked ``airflow`` and ``slow``: it needs the Airflow environment (``.tools/airflow``, which its
background job sets up where it is missing); ``make test-airflow`` runs it alone."""
import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from tests.helpers import make_setup

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
AIRFLOW_BIN = os.path.join(REPO, ".tools", "airflow", "bin")

pytestmark = [pytest.mark.airflow, pytest.mark.slow]
# One task at a time like Airflow's SequentialExecutor, each forked from a server that imported
# TensorFlow and TFX once (pipeline/airflow_executor.py) instead of a new interpreter per task.
EXECUTOR = "tfx_bert_app.pipeline.airflow_executor.PreloadedSequentialExecutor"


def _env(home) -> dict:
    return dict(os.environ, AIRFLOW_HOME=str(home), AIRFLOW__CORE__LOAD_EXAMPLES="False",
                AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="False", AIRFLOW__CORE__EXECUTOR=EXECUTOR,
                # A DAG file imports TensorFlow and TFX: more than Airflow's 30 s on a busy 2-core machine.
                AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT="300", AIRFLOW__CORE__DAG_FILE_PROCESSOR_TIMEOUT="300",
                AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC="2", AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL="600",
                PATH=AIRFLOW_BIN + os.pathsep + os.environ["PATH"])


def _airflow(home, *args, timeout=300) -> str:
    out = subprocess.run([os.path.join(AIRFLOW_BIN, "airflow"), *args], env=_env(home), capture_output=True,
                         text=True, timeout=timeout)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def _write_dag(home, work, pipeline, *sets) -> str:
    out = subprocess.run([os.path.join(AIRFLOW_BIN, "tfx-bert"), "airflow-dag", "--demo", "--work-dir", str(work),
                          "--pipeline", pipeline, "--dags-folder", str(home / "dags"), "--register",
                          *[a for s in sets for a in ("--set", s)]],
                         env=_env(home), capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def _task_states(home, dag_id) -> dict:
    with sqlite3.connect(home / "airflow.db") as db:
        return dict(db.execute("SELECT task_id, state FROM task_instance WHERE dag_id = ?", (dag_id,)))


def _run_to_end(home, dag_id, timeout=900) -> str:
    """Triggers ``dag_id`` and waits for the scheduler to finish its run; returns its state."""
    _airflow(home, "dags", "trigger", dag_id)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with sqlite3.connect(home / "airflow.db") as db:
            state = db.execute("SELECT state FROM dag_run WHERE dag_id = ? ORDER BY id DESC", (dag_id,)).fetchone()
        if state and state[0] in ("success", "failed"):
            return state[0]
        time.sleep(3)
    raise TimeoutError(f"{dag_id} still running after {timeout} s: {_task_states(home, dag_id)}")


@contextlib.contextmanager
def _scheduler(root: Path):
    """Airflow's scheduler on a new sqlite database under ``root``; stopped (its process group) on exit."""
    home = root / "airflow"
    _airflow(home, "db", "migrate")
    with open(root / "scheduler.log", "w") as log:
        # --skip-serve-logs: no log server (it would listen on every interface); the logs are files.
        process = subprocess.Popen([os.path.join(AIRFLOW_BIN, "airflow"), "scheduler", "--skip-serve-logs"],
                                   env=_env(home), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            yield home
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def run_the_airflow_pipelines(root: str) -> dict:
    """The pretraining DAG, then the sentiment fine-tuning DAG written from its encoder, under
    Airflow's scheduler; then the data gate's check on this run's result, and on one made to say
    stopped. A background job (``airflow_runs`` in conftest.py): it needs nothing from the
    session, and it is mostly one task process at a time, so it runs beside the other tests.
    Sets up the Airflow environment first where it is missing (``make airflow-setup``)."""
    if not os.path.exists(os.path.join(AIRFLOW_BIN, "airflow")):
        setup = make_setup("airflow-setup")
        if setup.returncode:
            raise RuntimeError(f"make airflow-setup failed:\n{(setup.stdout + setup.stderr)[-2000:]}")
    root = Path(root)
    work, serving = root / "work", root / "serving"
    result = {"work": work, "serving": serving}
    with _scheduler(root) as home:
        _write_dag(home, work, "pretrain", "pretrain.train_steps=5", "pretrain.batch_size=8", "pretrain.eval_steps=2",
                   "pretrain.max_seq_length=32", "pretrain.vocab_size=300", "pretrain.enable_statistics=false")
        result["pretrain"] = _run_to_end(home, "tfx-bert-pretrain"), _task_states(home, "tfx-bert-pretrain")
        if result["pretrain"][0] != "success":
            return result
        # Written after pretraining: the DAG file names the encoder that run produced (found in MLMD).
        result["printed"] = _write_dag(home, work, "finetune", "finetune.train_steps=20",
                                       "finetune.accuracy_threshold=0", f"serving.serving_base={serving}")
        result["dag_file"] = (home / "dags" / "tfx_bert_sentiment.py").read_text()
        result["finetune"] = _run_to_end(home, "tfx-bert-sentiment"), _task_states(home, "tfx-bert-sentiment")
    result["gate_check"] = _check_the_gate(home, work)
    return result


def _check_the_gate(home: Path, work: Path) -> subprocess.CompletedProcess:
    """The gate's check on this run's DataGate result in MLMD, then on that result made to say stopped."""
    return subprocess.run([os.path.join(AIRFLOW_BIN, "python"), "-c", f"""
import json, sqlite3
from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2
from tfx_bert_app.pipeline import airflow_runner
path = {str(work / "metadata.sqlite")!r}
run_id = sqlite3.connect({str(home / "airflow.db")!r}).execute(
    "SELECT run_id FROM dag_run WHERE dag_id = 'tfx-bert-sentiment'").fetchone()[0]
passed = airflow_runner.gate_passed(path, "tfx-bert-sentiment", "DataGate", run_id)
connection = metadata_store_pb2.ConnectionConfig()
connection.sqlite.filename_uri = path
store = metadata_store.MetadataStore(connection)
context = store.get_context_by_type_and_name("component_run", f"tfx-bert-sentiment.{{run_id}}.DataGate")
[result] = [a for a in store.get_artifacts_by_context(context.id) if "passed" in a.custom_properties]
result.custom_properties["passed"].int_value = 0
result.custom_properties["anomalies"].string_value = "label distribution drifted"
store.put_artifacts([result])
print(json.dumps([passed, airflow_runner.gate_passed(path, "tfx-bert-sentiment", "DataGate", run_id)]))
"""], env=_env(home), capture_output=True, text=True, timeout=300)


def test_airflow_schedules_pretraining_then_fine_tuning_to_a_pushed_model(airflow_runs):
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (the served graph's tokenizer ops)

    _, result = airflow_runs
    state, states = result["pretrain"]
    assert state == "success" and set(states.values()) == {"success"}, states
    assert "registered it in Airflow's database\nDAG id: tfx-bert-sentiment" in result["printed"]
    assert str(result["work"] / "pipelines" / "tfx-bert-pretrain" / "Trainer" / "model") in result["dag_file"]
    state, states = result["finetune"]
    assert state == "success", states
    assert states["DataGate_passed"] == "success" and states["Pusher"] == "success", states
    assert set(states.values()) == {"success"}

    serving = result["serving"]
    [version] = os.listdir(serving / "sentiment")
    served = tf.saved_model.load(str(serving / "sentiment" / version)).signatures["serving_default"]
    probabilities = served(text=tf.constant(["the soup was wonderful ."]))["probabilities"].numpy()
    assert probabilities.shape == (1, 2) and abs(probabilities.sum() - 1) < 1e-5

    # The gate's check reads this run's DataGate result from MLMD: passed here; a result that
    # says stopped makes it return False, and Airflow then skips every step after it.
    check = result["gate_check"]
    assert check.returncode == 0, check.stderr[-3000:]
    assert json.loads(check.stdout.strip().splitlines()[-1]) == [True, False]
    assert "STOPPED: label distribution drifted; the steps after it are skipped" in check.stdout
