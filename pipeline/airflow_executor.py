"""An Airflow executor for one machine whose task processes do not each import TensorFlow.

Airflow's SequentialExecutor (the one executor it allows on sqlite) runs every task as
``airflow tasks run ...`` in a new interpreter, which imports Airflow, TensorFlow and TFX and
parses the DAG file (which builds the TFX pipeline) before the task starts: 8-9 s of CPU a task
here, most of a small component's time. ``PreloadedSequentialExecutor`` runs the same command,
one task at a time like its parent, in a process forked from a server that imported those modules
once (``tfx_bert.preloaded``). The process is still the task's own: it parses the DAG file, runs
Airflow's ``tasks run`` (which forks the raw task as usual) and exits with its code; nothing runs
in the server.

Use it where the scheduler and its tasks share one machine::

    AIRFLOW__CORE__EXECUTOR=tfx_bert_app.pipeline.airflow_executor.PreloadedSequentialExecutor

A deployment with workers (Celery, Kubernetes) keeps its executor: there each task is a worker's.
"""
from __future__ import annotations

import signal

from airflow.executors.sequential_executor import SequentialExecutor

from tfx_bert import preloaded

# What every task process of this project's DAGs imports before its own work: Airflow's task
# command, and what parsing a DAG file (building a TFX pipeline) and running a component import.
TASK_MODULES = ("airflow.cli.cli_parser", "airflow.cli.commands.task_command", "tensorflow", "tensorflow_text",
                "tensorflow_transform", "tensorflow_model_analysis", "apache_beam", "keras_hub",
                "tfx.orchestration.airflow.airflow_dag_runner", "tfx_bert_app.pipeline.airflow_runner")
# What the scheduler and the commands around it import (``make airflow-setup`` compiles both lists).
CLI_MODULES = ("airflow.cli.commands.scheduler_command", "airflow.cli.commands.dag_command",
               "airflow.cli.commands.db_command", "tfx_bert.cli")


def _run_task(command: list[str]) -> None:
    """In the forked process: what ``airflow tasks run ...`` does in a new interpreter."""
    from airflow import settings
    from airflow.cli.cli_parser import get_parser

    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    # The server's database engine is not this process's to share (what Airflow's own forked
    # task runner does): the task command connects anew.
    settings.engine.pool.dispose()
    settings.engine.dispose()
    args = get_parser().parse_args(command[1:])  # [0] is "airflow"
    args.func(args)


class PreloadedSequentialExecutor(SequentialExecutor):
    """SequentialExecutor whose task processes fork from a server that preloaded ``TASK_MODULES``."""

    def sync(self) -> None:
        for key, command in self.commands_to_run:
            self.log.info("Executing command (forked from the preloaded server): %s", command)
            process = preloaded.start(_run_task, (list(command),), TASK_MODULES)
            process.join()
            if process.exitcode == 0:
                self.success(key)
            else:
                self.fail(key)
                self.log.error("Task %s exited with code %s.", key, process.exitcode)
        self.commands_to_run = []
