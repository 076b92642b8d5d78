"""``beam_pipeline_args`` for the configured Beam runner.

``beam.runner: direct`` uses ``beam_pipeline_args`` as written (DirectRunner; in-process or
multi-process). Dataflow, Flink and Spark get their runner flags from the ``beam`` section, plus
``--setup_file`` so the workers install this package (its components' Beam code lives here).
"""
from __future__ import annotations

import os

from tfx_bert.config import ProjectConfig

REPO_SETUP_FILE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "setup.py")


def _require(config: ProjectConfig, *keys: str) -> None:
    missing = [k for k in keys if not getattr(config.beam, k)]
    if missing:
        raise ValueError(
            f"beam.runner={config.beam.runner} needs " + ", ".join(f"beam.{k}" for k in missing)
            + " (set them in the YAML config or with --set beam.KEY=VALUE).")


def pipeline_args(config: ProjectConfig, setup_file: str | None = None) -> list[str]:
    """The Beam flags every Beam-based component of the pipeline runs with.

    ``setup_file`` overrides where setup.py is (the Kubeflow image has it at
    ``kubeflow.image_setup_file``).
    """
    b = config.beam
    if b.runner == "direct":
        return list(config.beam_pipeline_args) + list(b.extra_args)
    setup = setup_file or b.setup_file or REPO_SETUP_FILE
    args = [f"--setup_file={setup}"]
    if b.runner == "dataflow":
        _require(config, "project", "region", "temp_location")
        args = ["--runner=DataflowRunner", f"--project={b.project}", f"--region={b.region}",
                f"--temp_location={b.temp_location}",
                f"--staging_location={b.staging_location or b.temp_location.rstrip('/') + '/staging'}",
                *args]
        if b.machine_type:
            args.append(f"--machine_type={b.machine_type}")
        if b.max_num_workers:
            args.append(f"--max_num_workers={b.max_num_workers}")
        if b.sdk_container_image:
            args.append(f"--sdk_container_image={b.sdk_container_image}")
    elif b.runner == "flink":
        _require(config, "flink_master")
        args = ["--runner=FlinkRunner", f"--flink_master={b.flink_master}", *args]
        if b.parallelism:
            args.append(f"--parallelism={b.parallelism}")
    elif b.runner == "spark":
        _require(config, "spark_master")
        args = ["--runner=SparkRunner", f"--spark_master_url={b.spark_master}", *args]
        if b.parallelism:
            args.append(f"--spark_default_parallelism={b.parallelism}")
    if b.runner in ("flink", "spark"):
        if b.environment_type:
            args.append(f"--environment_type={b.environment_type}")
        if b.environment_config or b.sdk_container_image:
            args.append(f"--environment_config={b.environment_config or b.sdk_container_image}")
    return args + list(b.extra_args)
