"""Shared fixtures: quiet TF, tiny vocabularies and corpora written into temp dirs."""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import pytest  # noqa: E402

from tfx_bert import tokenization  # noqa: E402

TINY_WORDS = ("the cat dog sat on mat a , . ! ? hello world play ##ed ##ing ##s run "
              "un ##believ ##able happy sad movie good bad very").split()


@pytest.fixture
def tiny_vocab_dir(tmp_path):
    """A vocab dir (vocab.txt + tokenizer_config.json) with a handful of words."""
    vocab = tokenization.reserved_tokens() + TINY_WORDS
    directory = tmp_path / "vocab"
    tokenization.write_vocab_dir(str(directory), vocab, tokenization.TokenizerConfig(lower_case=True))
    return str(directory)


def pytest_collection_modifyitems(config, items):
    # Run the quick tests first so a broken basic breaks CI fast.
    items.sort(key=lambda item: item.get_closest_marker("slow") is not None)


BEAM_ARGS = ["--direct_running_mode=in_memory", "--direct_num_workers=1"]


def run_executor(executor_cls, inputs: dict, outputs: dict, props: dict, tmp_dir: str,
                 beam_args=BEAM_ARGS):
    """Runs a Beam-based executor's Do() for real, as the TFX launcher would."""
    from tfx.dsl.components.base import base_beam_executor

    context = base_beam_executor.BaseBeamExecutor.Context(beam_pipeline_args=list(beam_args), tmp_dir=tmp_dir)
    executor_cls(context).Do(inputs, outputs, props)


def new_artifact(artifact_type, uri):
    artifact = artifact_type()
    artifact.uri = str(uri)
    return artifact


def read_examples(pattern: str):
    """All tf.Examples in gzip TFRecord files matching ``pattern``."""
    import glob

    import tensorflow as tf

    records = []
    for path in sorted(glob.glob(pattern)):
        for raw in tf.data.TFRecordDataset(path, compression_type="GZIP"):
            records.append(tf.train.Example.FromString(raw.numpy()))
    return records
