"""pipeline/local_runner.py: the file TFX's own CLI takes (`tfx pipeline create --engine local`)
builds the pretraining pipeline and registers it. Running it: `tfx-bert pretrain` (the demo) runs
the same ``local_runner.execute``; `tfx run create` is run end to end in test_beam_runner.py."""
import os

import pytest

from tests.helpers import REPO, tfx_cli, trainer_models

pytestmark = pytest.mark.slow  # a tfx CLI process: about 15 s


def test_tfx_cli_creates_the_pipeline_from_the_file(tmp_path):
    work = tmp_path / "work"
    create = tfx_cli(tmp_path, work, "pipeline", "create", "--engine", "local", "--pipeline_path",
                     os.path.join(REPO, "pipeline", "local_runner.py"))
    assert "created successfully" in create.stdout, create.stdout[-2000:] + create.stderr[-2000:]
    assert trainer_models(str(work)) == []  # registered, not run
