"""Fixtures and hooks; shared helpers live in ``tests/helpers.py``."""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import pytest  # noqa: E402

from tests.helpers import (  # noqa: E402
    E2E_FINETUNES, E2E_FOLLOW_UPS, PUBLISHED, BackgroundDemo, BackgroundFinetunes, BackgroundJob, demo_encoder, harness_flags,
    ingest_corpus, learn_vocabulary, with_follow_up, write_tiny_vocab)


@pytest.fixture
def tiny_vocab_dir(tmp_path):
    """A vocab dir (vocab.txt + tokenizer_config.json) with a handful of words."""
    return write_tiny_vocab(tmp_path / "vocab")


@pytest.fixture(scope="session")
def references():
    """What transformers / sentence-transformers computed on the published-format fixtures
    (``tests/fixtures/published/build_references.py``)."""
    import json

    with open(os.path.join(PUBLISHED, "references.json"), encoding="utf-8") as f:
        return json.load(f)


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
    # The quick tests first, so a broken basic breaks CI fast; then the slow ones that need no
    # demo run, then the demo's, then the end-to-end fine-tuning runs' (``finetuned``): these run
    # in the background from the demo's encoder on, and overlap everything before them.
    def order(item):
        fixtures = item.fixturenames  # with the fixtures they depend on
        return item.get_closest_marker("slow") is not None, "demo_run" in fixtures, "finetuned" in fixtures

    items.sort(key=order)


_BACKGROUND = {}
# Slow tests' self-contained work, started with the session when selected: fixture name ->
# "module:function" (function(work dir) -> what the test asserts on).
BACKGROUND_JOBS = {"kubeflow_steps": "tests.test_kubeflow:run_the_compiled_pipelines",
                   "airflow_runs": "tests.test_airflow_runner:run_the_airflow_pipelines",
                   "flink_runs": "tests.test_flink_cluster:run_every_beam_step_on_flink"}


def _import(path: str):
    import importlib

    module, name = path.split(":")
    return getattr(importlib.import_module(module), name)


def _tmp_dir(config, name):
    import tempfile

    factory = getattr(config, "_tmp_path_factory", None)  # the tmp_path_factory fixture's, kept like it
    return str(factory.mktemp(name)) if factory else tempfile.mkdtemp(prefix=f"tfx-bert-{name}-")


def pytest_collection_finish(session):
    """Starts the demo run in the background as soon as the selected tests need it (its
    pretraining then overlaps the quick tests), and prepares the fine-tuning runs."""
    if session.config.option.collectonly:
        return
    fixtures = {name for item in session.items for name in getattr(item, "fixturenames", ())}
    if "demo_run" in fixtures and not os.environ.get("TFX_BERT_TEST_DEMO_WORK"):
        _BACKGROUND["demo"] = BackgroundDemo(_tmp_dir(session.config, "demo"))
    for name, function in BACKGROUND_JOBS.items():
        if name in fixtures:
            _BACKGROUND[name] = BackgroundJob(_import(function), _tmp_dir(session.config, name))
    if "finetuned" in fixtures:
        from tfx_bert import config as config_lib
        from tfx_bert import tasks

        demo_task = config_lib.load_config(demo=True).finetune.task  # the demo fine-tunes and pushes it
        runs = {name: [flags, with_follow_up(flags, E2E_FOLLOW_UPS[name])] if name in E2E_FOLLOW_UPS else flags
                for name, flags in E2E_FINETUNES.items()}
        runs.update({name: harness_flags(name) for name in sorted(tasks.TASKS) if name not in runs and name != demo_task})
        _BACKGROUND["finetuned"] = BackgroundFinetunes(_demo_encoder, _tmp_dir(session.config, "finetuned"), runs)


def pytest_terminal_summary(terminalreporter):
    """The background runs' wall times: they are the suite's critical path, and pytest's own
    durations only show the tests that waited for them."""
    demo, pool = _BACKGROUND.get("demo"), _BACKGROUND.get("finetuned")
    jobs = {name: _BACKGROUND[name] for name in BACKGROUND_JOBS if name in _BACKGROUND}
    if demo is None and pool is None and not jobs:
        return
    write = terminalreporter.write_line
    terminalreporter.section("background runs (wall seconds)")
    if demo is not None and demo.seconds is not None:
        write(f"demo: encoder ready at {demo.encoder_seconds or 0:.0f} s, done at {demo.seconds:.0f} s")
    if pool is not None:
        for name, (start, seconds) in sorted(pool.timings.items(), key=lambda item: item[1][0]):
            write(f"{name:20} started at {start:6.0f} s, took {seconds:5.0f} s, ended at {start + seconds:6.0f} s")
    for name, job in jobs.items():
        if job.seconds is not None:
            write(f"{name:20} started at {job.start:6.0f} s, took {job.seconds:5.0f} s (a background job)")


def pytest_sessionfinish(session):
    for name in ("finetuned", *BACKGROUND_JOBS):
        if name in _BACKGROUND:
            _BACKGROUND[name].close()
    if "demo" in _BACKGROUND:
        _BACKGROUND["demo"].stop()


def _demo_encoder():
    """The demo's pretrained encoder, as soon as its pretraining is done (the fine-tuning runs
    start then; the demo's own fine-tuning and distillation go on beside them)."""
    reuse = os.environ.get("TFX_BERT_TEST_DEMO_WORK")
    return demo_encoder(reuse) if reuse else _BACKGROUND["demo"].encoder()


def _demo_result():
    reuse = os.environ.get("TFX_BERT_TEST_DEMO_WORK")
    if reuse:
        return reuse, ""
    return _BACKGROUND["demo"].result()


@pytest.fixture(scope="session")
def demo_run():
    """(work dir, output) of `tfx-bert demo` (what `make demo` runs), started in the background
    when the session began: its pretrained encoder is the one every end-to-end fine-tuning test
    and the task harness start from.

    ``TFX_BERT_TEST_DEMO_WORK=<dir>`` reuses the work dir of an earlier demo run instead (to
    rerun one end-to-end test while developing; CI never sets it)."""
    return _demo_result()


def _job_result(request, name: str):
    """(work dir, result) of the background job ``name``; run now where the session did not start it."""
    if name not in _BACKGROUND:
        _BACKGROUND[name] = BackgroundJob(_import(BACKGROUND_JOBS[name]), _tmp_dir(request.config, name))
    return _BACKGROUND[name].result()


@pytest.fixture(scope="session")
def kubeflow_steps(request):
    """(work dir, results) of ``tests/test_kubeflow.py``'s compiled pipelines run step by step."""
    return _job_result(request, "kubeflow_steps")


@pytest.fixture(scope="session")
def airflow_runs(request):
    """(work dir, results) of ``tests/test_airflow_runner.py``'s DAGs under Airflow's scheduler."""
    return _job_result(request, "airflow_runs")


@pytest.fixture(scope="session")
def flink_runs(request):
    """(work dir, results) of ``tests/test_flink_cluster.py``'s Beam steps on Flink and on the DirectRunner."""
    return _job_result(request, "flink_runs")


@pytest.fixture(scope="session")
def finetuned(demo_run):
    """Every end-to-end test's fine-tuning run (``E2E_FINETUNES``) and a few-step run of each
    other registered task for the task harness, from the demo's encoder, two at a time in the
    background from the demo's encoder on; ``finetuned.work(name)`` waits for one."""
    return _BACKGROUND["finetuned"]
