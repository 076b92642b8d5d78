"""The values of a pipeline that a run may change without recompiling.

Locally they are plain values from the config. Compiled for Kubeflow they become
``RuntimeParameter``s whose defaults are the config's values, shown in the KFP / Vertex UI and
settable per run (``--param train_steps=5000``). The pipeline root is set per run too, but KFP
keeps it in the run's configuration, not as a parameter: ``--pipeline-root`` at submission.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from tfx.orchestration import data_types


@dataclasses.dataclass
class PipelineParameters:
    """Per-run values; each is a plain value or a RuntimeParameter."""

    data_path: Any  # pretraining: the corpus glob; fine-tuning: the task data directory
    train_steps: Any
    model_size: Any = None  # pretraining only (fine-tuning takes the encoder's size)

    def as_runtime_parameters(self, kind: str) -> "PipelineParameters":
        """The same values as Kubeflow runtime parameters with these values as defaults."""
        data_name = "corpus_pattern" if kind == "pretrain" else "data_dir"
        return PipelineParameters(
            data_path=data_types.RuntimeParameter(name=data_name, ptype=str, default=str(self.data_path)),
            train_steps=data_types.RuntimeParameter(name="train_steps", ptype=int, default=int(self.train_steps)),
            model_size=(data_types.RuntimeParameter(name="model_size", ptype=str, default=self.model_size)
                        if self.model_size is not None else None),
        )


def runtime_parameter_names(kind: str) -> list[str]:
    """The names the compiled ``kind`` pipeline exposes."""
    return ["corpus_pattern", "train_steps", "model_size"] if kind == "pretrain" else ["data_dir", "train_steps"]
