"""pipeline/beam_runner.py: TFX's own CLI (`tfx pipeline create` / `tfx run create --engine beam`)
runs the pretraining pipeline under BeamDagRunner on the tiny configuration. `tfx-bert pretrain
--runner beam` runs the same ``beam_runner.execute``."""
import os
import subprocess
import sys

import pytest

from tests.helpers import REPO, trainer_models, write_tiny_pretrain_config

pytestmark = pytest.mark.slow


def test_tfx_cli_runs_the_pipeline_under_the_beam_dag_runner(tmp_path):
    work = tmp_path / "work"
    env = dict(os.environ, TFX_BERT_CONFIG=write_tiny_pretrain_config(tmp_path, work), TFX_BERT_PIPELINE="pretrain",
               HOME=str(tmp_path / "home"))
    tfx = os.path.join(os.path.dirname(sys.executable), "tfx")
    create = subprocess.run([tfx, "pipeline", "create", "--engine", "beam", "--pipeline_path",
                             os.path.join(REPO, "pipeline", "beam_runner.py")],
                            capture_output=True, text=True, cwd=REPO, env=env, timeout=600)
    assert "created successfully" in create.stdout, create.stdout[-2000:] + create.stderr[-2000:]
    run = subprocess.run([tfx, "run", "create", "--engine", "beam", "--pipeline_name", "tfx-bert-pretrain"],
                         capture_output=True, text=True, cwd=REPO, env=env, timeout=900)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert len(trainer_models(str(work))) == 1
