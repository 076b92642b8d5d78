"""The pipelines as Apache Airflow DAGs: TFX's AirflowDagRunner, each component an Airflow task
(the scheduler runs each in an ``airflow tasks run`` process of its own).

``tfx-bert airflow-dag`` (in the Airflow environment, ``make airflow-setup``) calls
``write_dag_file``: it resolves the configuration once (written as YAML beside the DAG file) and
does what a local run prepares first (demo data written, the encoder found in MLMD), then writes
a DAG file that calls ``dag`` with the results. Airflow parses that file in the scheduler and in
every task process, so parsing it only builds the pipeline: it reads and writes nothing else.
"""
from __future__ import annotations

import datetime
import os
import time

from tfx_bert.config import ProjectConfig, load_config
from tfx_bert_app.pipeline import runs

# A DAG runs when it is triggered (the pipeline's own data decides what a run does); a user
# who wants a schedule passes Airflow's DAG arguments (``schedule``, ``start_date``, ...).
DAG_DEFAULTS = {"schedule": None, "start_date": datetime.datetime(2026, 1, 1), "catchup": False}

_TEMPLATE = '''"""Airflow DAG of the tfx-bert {kind} pipeline {name!r}, written by `tfx-bert airflow-dag` on {date}.

Regenerate it rather than edit it: its configuration is {config_path!r}, and {prepared!r}
was resolved when it was written (what a local run prepares first)."""
from tfx_bert_app.pipeline import airflow_runner

DAG = airflow_runner.dag({kind!r}, {config_path!r}, {prepared!r}, {dag_args!r})
'''


def dag(kind: str, config_path: str, prepared: dict, dag_args: dict | None = None):
    """The Airflow DAG of the ``kind`` pipeline built from the configuration file."""
    from tfx.orchestration.airflow.airflow_dag_runner import AirflowDagRunner, AirflowPipelineConfig

    config = load_config(config_path)
    pipeline = runs.build(kind, config, **prepared)
    airflow_dag = AirflowDagRunner(AirflowPipelineConfig(airflow_dag_config={**DAG_DEFAULTS, **(dag_args or {})})).run(
        pipeline)
    _stop_at_the_data_gate(airflow_dag, pipeline, config.metadata_path)
    return airflow_dag


def _stop_at_the_data_gate(airflow_dag, pipeline, metadata_path: str) -> None:
    """What ``tfx.dsl.Cond`` does on the local and Kubeflow runners, which TFX's Airflow runner
    ignores (its component launcher has no conditionals: every step after a stopped gate ran,
    training on the span the gate had stopped): a ``ShortCircuitOperator`` after each DataGate
    skips the steps inside the Cond unless the gate's result in MLMD says ``passed``."""
    from airflow.operators.python import ShortCircuitOperator
    from tfx.dsl.experimental.conditionals.conditional import CondContext

    from tfx_bert_app.components.data_gate.component import DataGate

    registry = pipeline.dsl_context_registry
    gated = [node for node in pipeline.components
             if any(isinstance(c, CondContext) for c in registry.get_contexts(node))]
    for gate in (node for node in pipeline.components if isinstance(node, DataGate)):
        check = ShortCircuitOperator(task_id=f"{gate.id}_passed", python_callable=gate_passed, dag=airflow_dag,
                                     op_kwargs={"metadata_path": metadata_path,
                                                "pipeline_name": pipeline.pipeline_info.pipeline_name,
                                                "gate_id": gate.id})
        check.set_upstream(airflow_dag.get_task(gate.id))
        for node in gated:
            airflow_dag.get_task(node.id).set_upstream(check)


def gate_passed(metadata_path: str, pipeline_name: str, gate_id: str, run_id: str) -> bool:
    """Whether this DAG run's ``gate_id`` let its data through (``run_id``: Airflow's context)."""
    from ml_metadata import metadata_store
    from ml_metadata.proto import metadata_store_pb2

    connection = metadata_store_pb2.ConnectionConfig()
    connection.sqlite.filename_uri = metadata_path
    store = metadata_store.MetadataStore(connection)
    context = store.get_context_by_type_and_name("component_run", f"{pipeline_name}.{run_id}.{gate_id}")
    results = [a for a in store.get_artifacts_by_context(context.id) if "passed" in a.custom_properties] \
        if context else []
    if not results:
        raise RuntimeError(f"no result of {gate_id} for run {run_id} in {metadata_path}")
    passed = results[-1].custom_properties["passed"].int_value == 1
    print(f"[data gate] {gate_id} {'passed' if passed else 'STOPPED: ' + results[-1].custom_properties['anomalies'].string_value}"
          f"; the steps after it {'run' if passed else 'are skipped'}", flush=True)
    return passed


def write_dag_file(kind: str, config: ProjectConfig, dags_folder: str, dag_args: dict | None = None) -> str:
    """Writes ``<dags_folder>/<pipeline name>.py`` and its configuration; returns the DAG file's path."""
    if not os.path.isabs(config.work_dir):
        raise ValueError(f"work_dir {config.work_dir!r} is relative: Airflow runs each task in a process of its "
                         "own, in a working directory of its own; give an absolute path.")
    prepared = runs.prepare(kind, config)
    runs.record_config(kind, config)
    name = runs.pipeline_name(kind, config)
    os.makedirs(dags_folder, exist_ok=True)
    base = os.path.join(os.path.abspath(dags_folder), name.replace("-", "_"))
    with open(base + ".yaml", "w", encoding="utf-8") as f:
        f.write(config.effective_yaml())
    with open(base + ".py", "w", encoding="utf-8") as f:
        f.write(_TEMPLATE.format(kind=kind, name=name, date=time.strftime("%Y-%m-%d %H:%M"),
                                 config_path=base + ".yaml", prepared=prepared, dag_args=dag_args or {}))
    return base + ".py"


def register_dag(path: str) -> None:
    """Parses the DAG file here and writes it to Airflow's database (what ``airflow dags
    reserialize`` does for a whole folder), so the scheduler runs it without waiting for its
    folder scan, and without another process importing TensorFlow and TFX to parse it."""
    from airflow.models.dagbag import DagBag

    bag = DagBag(dag_folder=path, include_examples=False)
    if bag.import_errors:
        raise RuntimeError(f"Airflow could not load {path}: {bag.import_errors[path]}")
    try:
        bag.sync_to_db()
    except Exception as e:  # noqa: BLE001 (the database is the user's to set up: say which)
        raise RuntimeError(f"could not register {path} in Airflow's database ({type(e).__name__}: {e}); "
                           "run `airflow db migrate` with the same AIRFLOW_HOME first") from None

