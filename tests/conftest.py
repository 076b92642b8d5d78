"""Fixtures and hooks; shared helpers live in ``tests/helpers.py``."""
import os
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import pytest  # noqa: E402

from tests.helpers import (  # noqa: E402
    E2E_FINETUNES, REPO, BackgroundFinetunes, demo_encoder, harness_flags, ingest_corpus, learn_vocabulary,
    write_tiny_vocab)


@pytest.fixture
def tiny_vocab_dir(tmp_path):
    """A vocab dir (vocab.txt + tokenizer_config.json) with a handful of words."""
    return write_tiny_vocab(tmp_path / "vocab")


@pytest.fixture(scope="session")
def corpus_examples(tmp_path_factory):
    """TextExampleGen's output on a 60-document demo corpus (the vocabulary and pretraining
    data tests share it)."""
    from tfx_bert import demo_data

    tmp = tmp_path_factory.mktemp("corpus")
    demo_data.write_pretraining_corpus(str(tmp / "in" / "corpus.txt"), num_documents=60)
    return ingest_corpus(str(tmp / "in" / "*"), tmp)


@pytest.fixture(scope="session")
def vocabulary(corpus_examples, tmp_path_factory):
    """A 300-piece WordPiece vocabulary (3 [unused] slots) learned from ``corpus_examples``."""
    from tfx_bert_app.components.wordpiece_vocab import executor as vocab_ex

    return learn_vocabulary(corpus_examples, tmp_path_factory.mktemp("vocab"), **{vocab_ex.NUM_UNUSED: 3})


def pytest_collection_modifyitems(config, items):
    # Run the quick tests first so a broken basic breaks CI fast.
    items.sort(key=lambda item: item.get_closest_marker("slow") is not None)



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


@pytest.fixture(scope="session")
def finetuned(demo_run, tmp_path_factory):
    """Every end-to-end test's fine-tuning run (``E2E_FINETUNES``) and the task harness's run
    of each other registered task, from the demo's encoder, all started when first asked for
    and run two at a time in the background; ``finetuned.work(name)`` waits for one."""
    from tfx_bert import tasks

    work, _ = demo_run
    pushed_by_demo = {name for name in tasks.TASKS if os.path.isdir(os.path.join(work, "serving", name))}
    runs = dict(E2E_FINETUNES)
    runs.update({name: harness_flags(name) for name in sorted(tasks.TASKS) if name not in runs and name not in pushed_by_demo})
    background = BackgroundFinetunes(demo_encoder(work), tmp_path_factory.mktemp("finetuned"), runs)
    yield background
    background.close()
