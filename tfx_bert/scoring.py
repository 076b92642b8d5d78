"""Batch scoring's two ends: the served model's ``score_examples`` input (tf.Examples whose
features are ``serving_default``'s inputs) and the scored file (one decoded row per input).

BulkInferrer (``components/bulk_inferrer``) writes one PredictionLog per input example; each
is decoded here with the task's own ``decode``, the one ``tfx-bert predict`` uses, so a row of
the scored file has the same fields and names as a served ``Predict`` answer decoded.
"""
from __future__ import annotations

import csv
import json
import os
from typing import Iterable, Iterator

import numpy as np

from tfx_bert import signatures as sig

FORMATS = ("jsonl", "csv")
PREDICTION_LOGS = "prediction_logs-*.gz"  # BulkInferrer's file names in its InferenceResult
# Features TaskExampleGen writes that name a row (QA's question id, retrieval's query and
# document ids): kept in the scored row beside the decoded output.
ID_FEATURES = ("id", "question_id", "query_id", "doc_id")


def serialized_examples(inputs: dict[str, Iterable[str]]) -> list[bytes]:
    """``serving_default`` inputs ({name: texts}) -> the serialized tf.Examples ``score_examples``
    reads (one per row, a bytes feature per input)."""
    import tensorflow as tf

    columns = {name: list(texts) for name, texts in inputs.items()}
    rows = len(next(iter(columns.values()), []))
    examples = []
    for i in range(rows):
        example = tf.train.Example()
        for name, texts in columns.items():
            text = texts[i]
            example.features.feature[name].bytes_list.value.append(text.encode("utf-8") if isinstance(text, str) else text)
        examples.append(example.SerializeToString())
    return examples


def _feature_values(feature) -> list:
    kind = feature.WhichOneof("kind")
    return list(getattr(feature, kind).value) if kind else []


def decode_log(task, log) -> dict:
    """One BulkInferrer PredictionLog (a ``score_examples`` request of one example and its
    response) -> the task's decoded row, with the example's id features."""
    import tensorflow as tf

    (request_tensor,) = log.predict_log.request.inputs.values()
    example = tf.train.Example.FromString(request_tensor.string_val[0])
    feature = example.features.feature
    inputs = {name: np.array([_first(feature[name]) if name in feature else b""], dtype=object)
              for name in task.signature.inputs}
    outputs = {name: tf.make_ndarray(tensor) for name, tensor in log.predict_log.response.outputs.items()}
    (row,) = task.decode(inputs, outputs)
    ids = {name: _text(_first(feature[name])) for name in ID_FEATURES if name in feature}
    return {**ids, **row}


def _first(feature):
    values = _feature_values(feature)
    return values[0] if values else b""


def _text(value) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def read_logs(inference_dir: str) -> Iterator:
    """The PredictionLogs under a BulkInferrer's InferenceResult directory, in file order."""
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    files = sorted(tf.io.gfile.glob(os.path.join(inference_dir, PREDICTION_LOGS)))
    if not files:
        raise FileNotFoundError(f"no BulkInferrer output ({PREDICTION_LOGS}) in {inference_dir}")
    for record in tf.data.TFRecordDataset(files, compression_type="GZIP").as_numpy_iterator():
        yield prediction_log_pb2.PredictionLog.FromString(record)


def skipped_records(examples_uri: str) -> dict[str, int]:
    """The bad records TaskExampleGen skipped, by kind (its ``ingestion_report.json``)."""
    import tensorflow as tf

    with tf.io.gfile.GFile(os.path.join(examples_uri, "ingestion_report.json")) as f:
        counts = json.load(f)["counts"]
    return {name[len("skipped_"):]: n for name, n in counts.items() if name.startswith("skipped_") and n}


def write_rows(rows: Iterable[dict], path: str, fmt: str = "jsonl") -> int:
    """Writes decoded rows to ``path`` (JSON lines, or CSV with lists and nested values as JSON);
    the number written."""
    import tensorflow as tf

    if fmt not in FORMATS:
        raise ValueError(f"--format {fmt!r} is not one of {FORMATS}")
    parent = os.path.dirname(path)
    if parent:
        tf.io.gfile.makedirs(parent)
    count, writer = 0, None
    with tf.io.gfile.GFile(path, "w") as f:
        for row in rows:
            if fmt == "jsonl":
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
            else:
                if writer is None:
                    writer = csv.DictWriter(f, fieldnames=list(row))
                    writer.writeheader()
                writer.writerow({k: v if isinstance(v, (str, int, float)) else json.dumps(v, ensure_ascii=False)
                                 for k, v in row.items()})
            count += 1
    return count


def resolve_version(model_base: str, version: str) -> str:
    """``version`` if it is pushed under ``model_base``, or the newest one for ""; otherwise an
    error listing what is there."""
    from tfx_bert.serving.servable import list_versions

    versions = [str(v) for v in sorted(list_versions(model_base))]
    if not versions:
        raise FileNotFoundError(f"no pushed versions under {model_base}: push a model there first "
                                "(tfx-bert finetune), or name another one with --model.")
    if version and version not in versions:
        raise FileNotFoundError(f"version {version} is not under {model_base} (it has {', '.join(versions)}).")
    return version or versions[-1]


def signature_defs(model_dir: str) -> dict:
    """{name: SignatureDef} of the SavedModel in ``model_dir``, read without loading the model."""
    from tfx_bert.serving.op_check import read_saved_model

    return dict(read_saved_model(model_dir).meta_graphs[0].signature_def)


def check_scorable(task, model_dir: str) -> None:
    """A model without ``score_examples`` (exported before batch scoring existed), or one whose
    inputs are not what ``task`` sends (``task`` None: any), is a clear error before scoring starts."""
    defs = signature_defs(model_dir)
    if sig.SCORE_EXAMPLES not in defs:
        raise ValueError(f"{model_dir} has no {sig.SCORE_EXAMPLES} signature: it was exported before batch scoring "
                         "existed; fine-tune (and push) it again to score with it.")
    inputs = sorted(defs[sig.SERVING_DEFAULT].inputs)
    if task is not None and inputs != sorted(task.signature.inputs):
        raise ValueError(f"{model_dir}: its serving_default takes {inputs}, but task {task.name} sends "
                         f"{sorted(task.signature.inputs)}: set finetune.task to the model's task.")
