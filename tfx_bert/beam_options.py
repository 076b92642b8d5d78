"""``beam_pipeline_args`` for the configured Beam runner.

``beam.runner: direct`` uses ``beam_pipeline_args`` (DirectRunner; in-process or multi-process),
plus the flag that stops TFX repackaging itself for every component (``direct_runner_args``) and
the one that keeps Beam from switching to a downloaded PrismRunner (``NO_PRISM``).
Dataflow, Flink and Spark get their runner flags from the ``beam`` section, plus
``--setup_file`` so the workers install this package (its components' Beam code lives here).
"""
from __future__ import annotations

import os

from tfx_bert import spans
from tfx_bert.config import ProjectConfig

REPO_SETUP_FILE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "setup.py")


# The flags TFX takes as "the user has supplied the workers' dependencies"
# (tfx.utils.dependency_utils.make_beam_dependency_flags).
_DEPENDENCY_FLAGS = ("extra_packages", "extra_package", "setup_file", "requirements_file",
                     "worker_harness_container_image", "sdk_container_image")


def direct_runner_args(args: list[str]) -> list[str]:
    """``args`` plus ``--sdk_container_image`` (Beam's own default image) unless a dependency
    flag is already there.

    Without one, every Beam-based TFX executor copies TFX's whole install (41 MB) into a new
    temp dir and builds an sdist of it, about 4 s, and never deletes it: a demo run or the test
    suite filled /tmp that way. The DirectRunner runs in this Python and stages nothing, so
    the flag changes nothing else; it names the image a portable runner would use anyway.
    """
    for arg in args:
        if arg.startswith("--") and arg[2:].split("=", 1)[0] in _DEPENDENCY_FLAGS:
            return list(args)
    from apache_beam.transforms.environments import DockerEnvironment

    return list(args) + [f"--sdk_container_image={DockerEnvironment.default_docker_image()}"]


def _require(config: ProjectConfig, *keys: str) -> None:
    missing = [k for k in keys if not getattr(config.beam, k)]
    if missing:
        raise ValueError(
            f"beam.runner={config.beam.runner} needs " + ", ".join(f"beam.{k}" for k in missing)
            + " (set them in the YAML config or with --set beam.KEY=VALUE).")


# Beam 2.72's DirectRunner first tries the PrismRunner, downloading its binary from GitHub at run
# time, for every pipeline unless unsafe triggers are allowed (apache/beam#33623). Offline it
# falls back to the FnApiRunner, the runner every test here ran on; online the components would
# run on Prism instead (a separate Go process), untested here. Allowing unsafe triggers (Beam
# otherwise refuses triggers that may drop late data; batch TFX components use the default
# trigger) keeps the FnApiRunner on every machine.
NO_PRISM = ["--allow_unsafe_triggers"]


def direct_mode_args(config: ProjectConfig, input_bytes: int | None = None) -> list[str]:
    """The DirectRunner's mode flags: the user's ``--direct_running_mode`` if given, else
    ``beam.direct_running_mode``, where ``auto`` runs in process below
    ``beam.direct_in_memory_below_mb`` of input and in one worker process per core above it
    (or when ``input_bytes`` is unknown)."""
    if any(a.startswith("--direct_running_mode") for a in config.beam_pipeline_args):
        return []
    mode = config.beam.direct_running_mode
    if mode == "auto":
        small = input_bytes is not None and input_bytes < config.beam.direct_in_memory_below_mb * 2**20
        mode = "in_memory" if small else "multi_processing"
    workers = [] if any(a.startswith("--direct_num_workers") for a in config.beam_pipeline_args) else [
        f"--direct_num_workers={1 if mode == 'in_memory' else 0}"]
    return [f"--direct_running_mode={mode}", *workers]


def input_size(patterns: list[str], stop_at: int) -> int:
    """Bytes in the files under / matching ``patterns`` (directories walked), counted up to
    ``stop_at`` (enough to choose a mode without listing a whole bucket)."""
    import tensorflow as tf

    total = 0
    for pattern in patterns:
        if not pattern:
            continue
        for path in tf.io.gfile.glob(spans.as_glob(pattern)):  # all spans: an upper bound
            walk = tf.io.gfile.walk(path) if tf.io.gfile.isdir(path) else [("", [], [path])]
            for root, _, names in walk:
                for name in names:
                    total += tf.io.gfile.stat(os.path.join(root, name)).length
                    if total >= stop_at:
                        return total
    return total


def pipeline_args(config: ProjectConfig, setup_file: str | None = None, input_bytes: int | None = None) -> list[str]:
    """The Beam flags every Beam-based component of the pipeline runs with.

    ``setup_file`` overrides where setup.py is (the Kubeflow image has it at
    ``kubeflow.image_setup_file``); ``input_bytes`` (measured by a local run's ``prepare``)
    lets the DirectRunner's ``auto`` mode pick in-process for small inputs.
    """
    b = config.beam
    if b.runner == "direct":
        return direct_runner_args(direct_mode_args(config, input_bytes) + list(config.beam_pipeline_args)
                                  + list(b.extra_args) + NO_PRISM)
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
        if not b.job_endpoint:
            _require(config, "flink_master")
        args = ["--runner=FlinkRunner", *([f"--job_endpoint={b.job_endpoint}"] if b.job_endpoint else
                                          [f"--flink_master={b.flink_master}"]), *args]
        if b.parallelism:
            args.append(f"--parallelism={b.parallelism}")
    elif b.runner == "spark":
        if not b.job_endpoint:
            _require(config, "spark_master")
        args = ["--runner=SparkRunner", *([f"--job_endpoint={b.job_endpoint}"] if b.job_endpoint else
                                          [f"--spark_master_url={b.spark_master}"]), *args]
        if b.parallelism:
            args.append(f"--spark_default_parallelism={b.parallelism}")
    if b.runner in ("flink", "spark"):
        from tfx_bert import beam_java_options  # noqa: F401 (declares Java-side flags; see there)

        if b.environment_type:
            args.append(f"--environment_type={b.environment_type}")
        if b.environment_config or b.sdk_container_image:
            args.append(f"--environment_config={b.environment_config or b.sdk_container_image}")
    return args + list(b.extra_args)
