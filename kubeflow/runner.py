"""Compiles the pipelines for Kubeflow Pipelines v2 / Vertex AI Pipelines (and submits them).

    python -m kubeflow.runner --pipeline pretrain --config prod.yaml \
        --image gcr.io/my-project/tfx-bert:0.1.0 --output pretrain.json [--endpoint https://kfp...]

The same factories as the local runners build the pipeline; only the orchestrator changes.
On a cluster, paths in the config must be shared storage (gs://...), and the fine-tuning
pipeline needs ``finetune.encoder_uri`` (there is no local MLMD to look the encoder up in).
"""
from __future__ import annotations

import argparse
import os
import sys

from tfx import v1 as tfx

from pipeline import common
from tfx_bert import config as config_lib

DEFAULT_IMAGE = "tfx-bert:latest"


def compile_pipeline(kind: str, config, image: str, output_path: str) -> str:
    """Writes the KFP v2 pipeline spec (JSON) of the ``kind`` pipeline; returns its path."""
    pipeline = common.build(kind, config)
    runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
        config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(default_image=image),
        output_dir=os.path.dirname(os.path.abspath(output_path)),
        output_filename=os.path.basename(output_path),
    )
    runner.run(pipeline, write_out=True)
    return output_path


def submit(spec_path: str, endpoint: str, run_name: str | None = None):
    """Submits a compiled spec to a Kubeflow Pipelines endpoint with the kfp client."""
    import kfp

    client = kfp.Client(host=endpoint)
    return client.create_run_from_pipeline_package(spec_path, arguments={}, run_name=run_name)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pipeline", choices=["pretrain", "finetune"], required=True)
    parser.add_argument("--config")
    parser.add_argument("--set", action="append", default=[])
    parser.add_argument("--image", default=DEFAULT_IMAGE)
    parser.add_argument("--output", default="")
    parser.add_argument("--endpoint", default="", help="KFP endpoint; when set, the run is submitted")
    args = parser.parse_args(argv)
    config = config_lib.load_config(args.config, args.set)
    output = args.output or f"{args.pipeline}_pipeline.json"
    compile_pipeline(args.pipeline, config, args.image, output)
    print(f"Compiled {args.pipeline} pipeline to {output} (image {args.image})")
    if args.endpoint:
        run = submit(output, args.endpoint)
        print(f"Submitted run {getattr(run, 'run_id', run)} to {args.endpoint}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
