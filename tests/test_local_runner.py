"""pipeline/local_runner.py: the file TFX's own CLI takes (`tfx pipeline create --engine local`)
builds the pretraining pipeline and registers it. Running it: `tfx-bert pretrain` (the demo) runs
the same ``local_runner.execute``; `tfx run create` is run end to end in test_beam_runner.py."""
import os
import subprocess
import sys

import pytest

from tests.helpers import REPO, trainer_models, write_tiny_pretrain_config

pytestmark = pytest.mark.slow  # a tfx CLI process: about 15 s


def test_tfx_cli_creates_the_pipeline_from_the_file(tmp_path):
    work = tmp_path / "work"
    env = dict(os.environ, TFX_BERT_CONFIG=write_tiny_pretrain_config(tmp_path, work), TFX_BERT_PIPELINE="pretrain",
               HOME=str(tmp_path / "home"))
    tfx = os.path.join(os.path.dirname(sys.executable), "tfx")
    create = subprocess.run([tfx, "pipeline", "create", "--engine", "local", "--pipeline_path",
                             os.path.join(REPO, "pipeline", "local_runner.py")],
                            capture_output=True, text=True, cwd=REPO, env=env, timeout=600)
    assert "created successfully" in create.stdout, create.stdout[-2000:] + create.stderr[-2000:]
    assert trainer_models(str(work)) == []  # registered, not run
