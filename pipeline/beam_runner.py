"""Runs a pipeline with TFX's BeamDagRunner (components as Beam stages; each component's own
data processing uses ``beam_pipeline_args``).

As a file for the ``tfx`` CLI: ``tfx pipeline create --engine beam --pipeline_path
pipeline/beam_runner.py`` with TFX_BERT_PIPELINE / TFX_BERT_CONFIG set as for local_runner.py.
"""
import os

from tfx.orchestration.beam.beam_dag_runner import BeamDagRunner

from tfx_bert_app.pipeline import runs


def execute(pipeline) -> None:
    """Runs a built pipeline with BeamDagRunner (``tfx-bert <pipeline> --runner beam`` runs this too)."""
    BeamDagRunner().run(pipeline)


def run(kind: str, config) -> None:
    """Builds the ``kind`` pipeline from ``config`` and runs it with BeamDagRunner."""
    runs.run(kind, config, execute)


if __name__ == "__main__":
    run(os.environ.get("TFX_BERT_PIPELINE", "pretrain"), runs.config_from_environment())
