"""pipeline/beam_runner.py: the pretraining pipeline under TFX's BeamDagRunner (`tfx-bert pretrain
--runner beam`), on the tiny configuration."""
import subprocess
import sys

import pytest

from tests.helpers import REPO, trainer_models, write_tiny_pretrain_config

pytestmark = pytest.mark.slow


def test_beam_dag_runner_runs_the_pretraining_pipeline(tmp_path):
    work = tmp_path / "work"
    config = write_tiny_pretrain_config(tmp_path, work)
    proc = subprocess.run([sys.executable, "-m", "tfx_bert.cli", "pretrain", "--runner", "beam", "--config", config],
                          capture_output=True, text=True, cwd=REPO, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "(beam runner)" in proc.stdout
    assert len(trainer_models(str(work))) == 1
