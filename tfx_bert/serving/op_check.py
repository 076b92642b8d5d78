"""Does a SavedModel use only op types TF Serving 2.16 can load?

TF Serving 2.16 links TensorFlow 2.16's core ops and an embedded tensorflow-text 2.12.1
(tensorflow/serving PR 4057), so tensorflow-text 2.16's ``TFText>RoundRobinTrim``,
``TFText>RoundRobinGenerateMasks`` and ``TFText>Utf8Binarize`` are missing there. The allowed
list (``tf_serving_ops.json``) was read off the installed packages.
"""
from __future__ import annotations

import functools
import json
import os

from tensorflow.core.protobuf import saved_model_pb2

OPS_FILE = os.path.join(os.path.dirname(__file__), "tf_serving_ops.json")


@functools.lru_cache(maxsize=1)
def allowed_ops() -> frozenset:
    """Op types TF Serving 2.16 has: TF 2.16 core + tensorflow-text 2.12.1."""
    with open(OPS_FILE, encoding="utf-8") as f:
        data = json.load(f)
    return frozenset(data["tensorflow_core_2_16"]) | frozenset(data["tensorflow_text_2_12"])


def read_saved_model(export_dir: str) -> saved_model_pb2.SavedModel:
    """The SavedModel proto of ``export_dir`` (local or gs://), without loading the model."""
    import tensorflow as tf

    path = os.path.join(export_dir, "saved_model.pb")
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(f"{export_dir} is not a SavedModel directory (no saved_model.pb).")
    saved_model = saved_model_pb2.SavedModel()
    with tf.io.gfile.GFile(path, "rb") as f:
        saved_model.ParseFromString(f.read())
    return saved_model


def saved_model_op_types(export_dir: str) -> set[str]:
    """Every op type in a SavedModel's graphs, function library included."""
    saved_model = read_saved_model(export_dir)
    ops: set[str] = set()
    for meta_graph in saved_model.meta_graphs:
        library = meta_graph.graph_def.library
        # A node may call a function of the graph's own library by name; that is no kernel.
        functions = {f.signature.name for f in library.function}
        ops.update(node.op for node in meta_graph.graph_def.node)
        for function in library.function:
            ops.update(node.op for node in function.node_def)
        ops -= functions
    return ops


def unsupported_ops(export_dir: str) -> list[str]:
    """Op types of the SavedModel that TF Serving 2.16 lacks (empty when it would load)."""
    allowed = allowed_ops()
    return sorted(op for op in saved_model_op_types(export_dir) if op not in allowed)


def check_servable(export_dir: str) -> None:
    """Raises ValueError naming the ops TF Serving 2.16 would refuse to load."""
    missing = unsupported_ops(export_dir)
    if missing:
        raise ValueError(
            f"{export_dir} uses op types TF Serving 2.16 does not have: {', '.join(missing)}. "
            "Replace them (e.g. keras-nlp's MultiSegmentPacker emits TFText>RoundRobinTrim; "
            "use tfx_bert.tokenization.WordPieceTokenizer.pack instead).")
