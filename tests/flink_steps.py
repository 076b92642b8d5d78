"""Every Beam step of the pipelines, run by its TFX executor with the Beam flags given:
ingestion (TextExampleGen, TaskExampleGen), WordPiece vocabulary, pretraining instances,
StatisticsGen, Transform (the fine-tuning preprocessing_fn) and batch scoring (BulkInferrer).

``python tests/flink_steps.py IN OUT`` runs them with the Beam flags of the cluster ``tfx-bert
flink run`` started (``FLINK_CONFIG_OVERRIDES``); ``... IN OUT --direct`` on the DirectRunner;
``test_flink_cluster`` runs both and compares ``summary(OUT)`` of the two. Inputs are written
from the demo generators, so both runs read the same data."""
from __future__ import annotations

import glob
import json
import os
import shutil
import sys
from pathlib import Path

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

def write_inputs(directory: Path) -> None:
    from tfx_bert import demo_data

    for i in range(4):  # several files, so the work is really divided between the workers
        demo_data.write_pretraining_corpus(str(directory / "corpus" / f"part{i}.txt"), num_documents=30, seed=i)
    demo_data.write_sentiment_dataset(str(directory / "sentiment"), num_train=120, num_eval=40)


def _examples(out: Path, name: str):
    from tfx.types import standard_artifacts

    from tests.helpers import new_artifact

    return new_artifact(standard_artifacts.Examples, out / name)


def _pretraining_steps(inputs: Path, out: Path, beam_args: list[str]):
    from tests.helpers import ingest_corpus, learn_vocabulary, run_executor
    from tfx_bert_app.components.pretraining_data import executor as data_ex

    text = ingest_corpus(str(inputs / "corpus" / "*.txt"), out, beam_args)  # out/examples
    vocab = learn_vocabulary(text, out, beam_args)
    instances = _examples(out, "instances")
    run_executor(data_ex.Executor, {"examples": [text], "vocabulary": [vocab]}, {"pretraining_examples": [instances]},
                 {data_ex.MAX_SEQ_LENGTH: 32, data_ex.SHORT_SEQ_PROB: 0.1, data_ex.NSP_SHARDS: 2, data_ex.SEED: 5,
                  data_ex.MASKING: "static", data_ex.DUPE_FACTOR: 2, data_ex.MASKED_LM_PROB: 0.15,
                  data_ex.MAX_PREDICTIONS: 5, data_ex.WHOLE_WORD_MASKING: 1}, str(out / "t_instances"), beam_args)
    return vocab


def _task_examples(inputs: Path, out: Path, beam_args: list[str]):
    from tests.helpers import run_executor
    from tfx_bert_app.components.task_example_gen import executor as ex

    examples = _examples(out, "task_examples")
    props = {ex.INPUT_BASE: str(inputs / "sentiment"), ex.TRAIN_PATTERN: "train/*", ex.EVAL_PATTERN: "eval/*",
             ex.INPUT_FORMAT: "csv", ex.TEXT_FIELD: "text", ex.TEXT_B_FIELD: "", ex.LABEL_FIELD: "label",
             ex.LABEL_NAMES: "", ex.NUM_CLASSES: 2, ex.STRICT: 0}
    run_executor(ex.Executor, {}, {"examples": [examples]}, props, str(out / "t_task"), beam_args)
    return examples


def _statistics_and_schema(examples, out: Path, beam_args: list[str]):
    from tfx.components.schema_gen import executor as schema_ex
    from tfx.components.statistics_gen import executor as stats_ex
    from tfx.types import standard_artifacts

    from tests.helpers import new_artifact, run_executor

    stats = new_artifact(standard_artifacts.ExampleStatistics, out / "statistics")
    stats.split_names = examples.split_names
    run_executor(stats_ex.Executor, {"examples": [examples]}, {"statistics": [stats]}, {}, str(out / "t_stats"),
                 beam_args)
    schema = new_artifact(standard_artifacts.Schema, out / "schema")
    schema_ex.Executor().Do({"statistics": [stats]}, {"schema": [schema]}, {"infer_feature_shape": 0})
    return schema


def _transform(examples, schema, vocab, out: Path, beam_args: list[str]) -> None:
    from tfx.components.transform import executor as transform_ex
    from tfx.types import standard_artifacts

    from tests.helpers import new_artifact, run_executor
    from tfx_bert_app.models import encoder

    encoder_dir = out / "encoder"  # the tokenizer the preprocessing_fn loads: an encoder's vocabulary
    shutil.copytree(vocab.uri, encoder_dir / encoder.VOCAB_SUBDIR)
    graph = new_artifact(standard_artifacts.TransformGraph, out / "transform_graph")
    transformed = _examples(out, "transform")
    run_executor(transform_ex.Executor, {"examples": [examples], "schema": [schema]},
                 {"transform_graph": [graph], "transformed_examples": [transformed]},
                 {"preprocessing_fn": "tfx_bert_app.models.finetuning.preprocessing_fn", "disable_statistics": 1,
                  "custom_config": json.dumps({"task": "sentiment", "max_seq_length": 32,
                                               "encoder_dir": str(encoder_dir)})},
                 str(out / "t_transform"), beam_args)


def _inference(examples, out: Path, beam_args: list[str]) -> None:
    from tfx.types import standard_artifacts

    from tests.helpers import new_artifact, run_executor
    from tests.test_bulk_inferrer import _props
    from tests.test_scoring import _save_tiny_model
    from tfx_bert_app.components.bulk_inferrer import executor as ex

    model = new_artifact(standard_artifacts.Model, out / "model")
    _save_tiny_model(out / "model" / "Format-Serving")
    result = new_artifact(standard_artifacts.InferenceResult, out / "inference")
    props = _props()
    props["data_spec"] = props["data_spec"].replace('"score"', '"eval"')
    run_executor(ex.Executor, {"examples": [examples], "model": [model]}, {"inference_result": [result]}, props,
                 str(out / "t_inference"), beam_args)


def run_steps(inputs: Path, out: Path, beam_args: list[str]) -> None:
    vocab = _pretraining_steps(inputs, out, beam_args)
    examples = _task_examples(inputs, out, beam_args)
    schema = _statistics_and_schema(examples, out, beam_args)
    _transform(examples, schema, vocab, out, beam_args)
    _inference(examples, out, beam_args)


def _records(pattern: str) -> list[bytes]:
    """The tf.Examples, serialized deterministically: a feature map's order on the wire is the
    writing process's (Transform's output on Flink differed from the DirectRunner's only in it)."""
    import tensorflow as tf

    return sorted(tf.train.Example.FromString(r.numpy()).SerializeToString(deterministic=True)
                  for path in sorted(glob.glob(pattern)) for r in tf.data.TFRecordDataset(path, compression_type="GZIP"))


def summary(out: Path) -> dict:
    """What the two runners must agree on: every output record (sorted: the runners order
    records differently), the vocabulary, and the statistics' counts."""
    from tensorflow_metadata.proto.v0 import statistics_pb2

    from tfx_bert import scoring

    result = {step: {os.path.basename(os.path.dirname(p)): _records(os.path.join(os.path.dirname(p), "*"))
                     for p in glob.glob(str(out / step / "Split-*" / "*"))}
              for step in ("examples", "instances", "task_examples", "transform")}
    result["vocab"] = (out / "vocab" / "vocab.txt").read_text()
    result["statistics"] = {}
    for path in sorted(glob.glob(str(out / "statistics" / "Split-*" / "FeatureStats.pb"))):
        stats = statistics_pb2.DatasetFeatureStatisticsList()
        stats.ParseFromString(open(path, "rb").read())
        data = stats.datasets[0]
        result["statistics"][path.split("/")[-2]] = (data.num_examples, sorted(
            (f.path.step[0], f.num_stats.common_stats.num_non_missing or f.string_stats.common_stats.num_non_missing)
            for f in data.features))
    result["inference"] = sorted(log.SerializeToString(deterministic=True) for log in scoring.read_logs(
        str(out / "inference")))
    return result


def flink_args(out: Path) -> list[str]:
    """The Beam flags the project's configuration gives for the cluster ``tfx-bert flink run``
    started (its ``beam`` settings are in ``FLINK_CONFIG_OVERRIDES``)."""
    from tfx_bert import beam_options
    from tfx_bert import config as config_lib

    overrides = os.environ["FLINK_CONFIG_OVERRIDES"].splitlines()
    return beam_options.pipeline_args(config_lib.load_config(overrides=[f"work_dir={out}", *overrides]))


if __name__ == "__main__":
    inputs, out = Path(sys.argv[1]), Path(sys.argv[2])
    if sys.argv[3:] == ["--direct"]:
        from tests.helpers import BEAM_ARGS

        run_steps(inputs, out, BEAM_ARGS)
    else:
        run_steps(inputs, out, flink_args(out))
