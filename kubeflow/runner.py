"""Compiles the pipelines for Kubeflow Pipelines v2 / Vertex AI Pipelines, and submits runs.

    tfx-bert compile --pipeline pretrain --config prod.yaml --image gcr.io/my-project/tfx-bert:0.1.0 \\
        [--output pretrain.json] [--endpoint https://kfp.example.com --param train_steps=5000 \\
         --pipeline-root gs://bucket/runs]

The same factories as the local runners build the pipeline; only the orchestrator changes, plus
what only a cluster has: the image, per-step resources (``resources.*``: CPU, memory, GPUs,
TPUs), runtime parameters (data path, step count, model size), Beam's ``--setup_file`` inside
the image, and Vertex custom jobs for multi-worker training. On a cluster, paths in the config
must be shared storage (gs://...), and the fine-tuning pipeline needs ``finetune.encoder_uri``
(there is no local MLMD to look the encoder up in).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys

from kfp.pipeline_spec import pipeline_spec_pb2
from tfx import v1 as tfx
from tfx.components.trainer.executor import GenericExecutor
from tfx.dsl.components.base import base_beam_executor, base_component
from tfx.orchestration import data_types

from tfx_bert_app.kubeflow import arguments
from tfx_bert_app.pipeline import runs
from tfx_bert import config as config_lib
from tfx_bert.config import ProjectConfig, ResourceConfig

ResourceSpec = pipeline_spec_pb2.PipelineDeploymentConfig.PipelineContainerSpec.ResourceSpec


def resource_spec(resources: ResourceConfig) -> ResourceSpec | None:
    """The KFP ResourceSpec for ``resources``; None when nothing is asked for."""
    spec = ResourceSpec()
    if resources.cpu:
        spec.cpu_limit = float(resources.cpu)
    if resources.memory_gb:
        spec.memory_limit = float(resources.memory_gb)
    if resources.accelerator_type and resources.accelerator_count:
        spec.accelerator.type = resources.accelerator_type
        spec.accelerator.count = int(resources.accelerator_count)
    return spec if spec.ByteSize() else None


def step_kind(component: base_component.BaseComponent) -> str:
    """trainer, beam or default: which ``resources.*`` section a step takes."""
    executor_class = getattr(component.executor_spec, "executor_class", None)
    if executor_class and issubclass(executor_class, GenericExecutor):
        return "trainer"
    if executor_class and issubclass(executor_class, base_beam_executor.BaseBeamExecutor):
        return "beam"
    return "default"


def apply_resources(pipeline, config: ProjectConfig) -> dict[str, str]:
    """Sets each step's platform config from ``config.resources``; returns {step id: kind}.

    A Trainer that trains as a Vertex custom job (``resources.trainer.replicas > 1``) only
    launches and waits, so its own step gets the default resources.
    """
    kinds = {}
    for component in pipeline.components:
        if not isinstance(component, base_component.BaseComponent):
            continue  # Importer and resolver nodes run in the driver
        kind = step_kind(component)
        if kind == "trainer" and config.resources.trainer.replicas > 1:
            kind = "default"
        spec = resource_spec(getattr(config.resources, kind))
        if spec is not None:
            component.with_platform_config(spec)
        kinds[component.id] = kind
    return kinds


def compile_pipeline(kind: str, config: ProjectConfig, output_path: str, image: str | None = None) -> str:
    """Writes the KFP v2 pipeline job (JSON: pipelineSpec + runtimeConfig) of the ``kind``
    pipeline; returns its path."""
    if image:  # one image everywhere: steps and Vertex training workers alike
        config = dataclasses.replace(config, kubeflow=dataclasses.replace(config.kubeflow, image=image))
    image = config.kubeflow.image
    pipeline = runs.build(kind, config, runtime_parameters=config.kubeflow.runtime_parameters,
                            setup_file=config.kubeflow.image_setup_file)
    if config.kubeflow.pipeline_root:
        pipeline.pipeline_info.pipeline_root = config.kubeflow.pipeline_root
    apply_resources(pipeline, config)
    runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
        config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(
            default_image=image, use_pipeline_spec_2_1=True),
        output_dir=os.path.dirname(os.path.abspath(output_path)),
        output_filename=os.path.basename(output_path),
    )
    defaults = runtime_parameter_defaults(pipeline)
    runner.run(pipeline, parameter_values=defaults, write_out=True)
    # TFX leaves the parameters without defaults in the spec; KFP's UI and API show and use these.
    with open(output_path, encoding="utf-8") as f:
        job = json.load(f)
    declared = job["pipelineSpec"]["root"].get("inputDefinitions", {}).get("parameters", {})
    for name, value in defaults.items():
        declared[name].update(defaultValue=value, isOptional=True)
    with open(output_path, "w", encoding="utf-8") as f:
        json.dump(job, f, indent=2, sort_keys=True)
    return output_path


def runtime_parameter_defaults(pipeline) -> dict:
    """{name: default} of the RuntimeParameters the pipeline's steps use."""
    defaults = {}
    for component in pipeline.components:
        for value in component.exec_properties.values():
            if isinstance(value, data_types.RuntimeParameter):
                defaults[value.name] = value.default
    return defaults


def pipeline_spec_file(job_path: str) -> str:
    """Writes the bare pipeline spec (what the KFP API and client take, as YAML) next to the
    compiled job."""
    import yaml

    with open(job_path, encoding="utf-8") as f:
        job = json.load(f)
    spec_path = os.path.splitext(job_path)[0] + ".pipeline_spec.yaml"
    with open(spec_path, "w", encoding="utf-8") as f:
        yaml.safe_dump(job["pipelineSpec"], f, sort_keys=False)
    return spec_path


def submit(job_path: str, endpoint: str, arguments: dict | None = None, pipeline_root: str | None = None,
           run_name: str | None = None, experiment: str | None = None, namespace: str | None = None):
    """Submits a compiled pipeline to a Kubeflow Pipelines endpoint with the kfp client."""
    import kfp

    with open(job_path, encoding="utf-8") as f:
        job = json.load(f)
    client = kfp.Client(host=endpoint, namespace=namespace)
    return client.create_run_from_pipeline_package(
        pipeline_spec_file(job_path), arguments=arguments or {}, run_name=run_name,
        experiment_name=experiment,
        pipeline_root=pipeline_root or job.get("runtimeConfig", {}).get("gcsOutputDirectory"))


def parse_params(pairs: list[str]) -> dict:
    """``["train_steps=5000", "model_size=base"]`` -> typed values (ints stay ints)."""
    params = {}
    for pair in pairs:
        if "=" not in pair:
            raise ValueError(f"--param {pair!r} must look like name=value.")
        name, value = pair.split("=", 1)
        params[name] = int(value) if value.lstrip("-").isdigit() else value
    return params


def run(args) -> int:
    """Compiles (and submits) per parsed ``args``."""
    overrides = ([f"work_dir={args.work_dir}"] if args.work_dir else []) + list(args.set)
    config = config_lib.load_config(args.config, overrides, demo=args.demo)
    output = args.output or f"{args.pipeline}_pipeline.json"
    compile_pipeline(args.pipeline, config, output, args.image)
    with open(output, encoding="utf-8") as f:
        root = json.load(f)["pipelineSpec"]["root"]
    params = sorted(root.get("inputDefinitions", {}).get("parameters", {}))
    print(f"Compiled the {args.pipeline} pipeline to {output} (image {args.image or config.kubeflow.image}; "
          f"runtime parameters: {', '.join(params) or 'none'})")
    if args.endpoint:
        result = submit(output, args.endpoint, parse_params(args.param), args.pipeline_root or None,
                        args.run_name, args.experiment)
        print(f"Submitted run {getattr(result, 'run_id', result)} to {args.endpoint}")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    arguments.add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
