"""Flags of ``tfx-bert compile`` (kept free of TFX imports so ``--help`` is fast)."""
import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``tfx-bert compile`` flags."""
    parser.add_argument("--pipeline", choices=["pretrain", "finetune"], required=True)
    parser.add_argument("--config", help="YAML config (see tfx_bert/configs/)")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    parser.add_argument("--work-dir", help="as the other pipeline commands' --work-dir (work_dir=...)")
    parser.add_argument("--demo", action="store_true", help="start from the tiny demo configuration")
    parser.add_argument("--image", help="container image (default: kubeflow.image)")
    parser.add_argument("--output", default="", help="compiled JSON (default: <pipeline>_pipeline.json)")
    parser.add_argument("--endpoint", default="", help="KFP endpoint; when set, a run is submitted")
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                        help="runtime parameter of the submitted run, e.g. train_steps=5000")
    parser.add_argument("--pipeline-root", default="", help="pipeline root of the submitted run")
    parser.add_argument("--run-name", default=None)
    parser.add_argument("--experiment", default=None)
