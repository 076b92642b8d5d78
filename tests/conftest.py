"""Fixtures and hooks; shared helpers live in ``tests/helpers.py``."""
import os
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import pytest  # noqa: E402

from tests.helpers import write_tiny_vocab  # noqa: E402


@pytest.fixture
def tiny_vocab_dir(tmp_path):
    """A vocab dir (vocab.txt + tokenizer_config.json) with a handful of words."""
    return write_tiny_vocab(tmp_path / "vocab")


def pytest_collection_modifyitems(config, items):
    # Run the quick tests first so a broken basic breaks CI fast.
    items.sort(key=lambda item: item.get_closest_marker("slow") is not None)


REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory):
    """Runs `tfx-bert demo` (what `make demo` runs) once into a temp work dir: its pretrained
    encoder is the one every end-to-end fine-tuning test and the task harness start from.

    ``TFX_BERT_TEST_DEMO_WORK=<dir>`` reuses the work dir of an earlier demo run instead (to
    rerun one end-to-end test while developing; CI never sets it)."""
    reuse = os.environ.get("TFX_BERT_TEST_DEMO_WORK")
    if reuse:
        return reuse, ""
    work = tmp_path_factory.mktemp("demo")
    proc = subprocess.run([sys.executable, "-m", "tfx_bert.cli", "demo", "--work-dir", str(work)],
                          capture_output=True, text=True, cwd=REPO, timeout=1500)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return work, proc.stdout
