"""Runs a pipeline with TFX's LocalDagRunner.

As a file for the ``tfx`` CLI::

    TFX_BERT_PIPELINE=pretrain TFX_BERT_CONFIG=configs/demo.yaml \
      tfx pipeline create --engine local --pipeline_path pipeline/local_runner.py
    TFX_BERT_PIPELINE=pretrain TFX_BERT_CONFIG=configs/demo.yaml \
      tfx run create --engine local --pipeline_name tfx-bert-pretrain
"""
import os

from tfx import v1 as tfx

from tfx_bert_app.pipeline import runs


def execute(pipeline) -> None:
    """Runs a built pipeline in this process (``tfx-bert <pipeline>`` runs this too)."""
    tfx.orchestration.LocalDagRunner().run(pipeline)


def run(kind: str, config) -> None:
    """Builds the ``kind`` pipeline from ``config`` and runs it in this process."""
    runs.run(kind, config, execute)


if __name__ == "__main__":
    run(os.environ.get("TFX_BERT_PIPELINE", "pretrain"), runs.config_from_environment())
