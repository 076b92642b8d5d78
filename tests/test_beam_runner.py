"""pipeline/beam_runner.py: TFX's own CLI (`tfx pipeline create` / `tfx run create --engine beam`)
runs the pretraining pipeline under BeamDagRunner on the tiny configuration. `tfx-bert pretrain
--runner beam` runs the same ``beam_runner.execute``."""
import os

import pytest

from tests.helpers import REPO, tfx_cli, trainer_models

pytestmark = pytest.mark.slow


def test_tfx_cli_runs_the_pipeline_under_the_beam_dag_runner(tmp_path):
    work = tmp_path / "work"
    create = tfx_cli(tmp_path, work, "pipeline", "create", "--engine", "beam", "--pipeline_path",
                     os.path.join(REPO, "pipeline", "beam_runner.py"))
    assert "created successfully" in create.stdout, create.stdout[-2000:] + create.stderr[-2000:]
    run = tfx_cli(tmp_path, work, "run", "create", "--engine", "beam", "--pipeline_name", "tfx-bert-pretrain")
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert len(trainer_models(str(work))) == 1
