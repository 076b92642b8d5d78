"""One loaded SavedModel version and the checks TF Serving makes on a request to it."""
from __future__ import annotations

import os

import grpc
import numpy as np
import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers the tensorflow-text ops TF Serving links in)
from tensorflow.core.protobuf import saved_model_pb2

from tfx_bert.serving import op_check, tensors

PREDICT_METHOD = "tensorflow/serving/predict"
CLASSIFY_METHOD = "tensorflow/serving/classify"
REGRESS_METHOD = "tensorflow/serving/regress"
DEFAULT_SIGNATURE = "serving_default"


class ServingError(Exception):
    """An error with the gRPC status code TF Serving would return."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code = code


def invalid(message: str) -> ServingError:
    return ServingError(grpc.StatusCode.INVALID_ARGUMENT, message)


def readable_error(error: Exception, limit: int = 500) -> str:
    """TensorFlow's reason for a failed graph run, without its "Graph execution error:" header,
    the Python stack of where the op was defined and the ``[[{{node ...}}]]`` annotations;
    trimmed to ``limit`` characters (a client's bytes may be echoed in it)."""
    if isinstance(error, UnicodeDecodeError):  # TF could not even format the message: bytes that are not UTF-8
        return "an input holds bytes the graph cannot read (not UTF-8 or not a serialized tf.Example)"
    text = getattr(error, "message", None) or str(error)
    kept = []
    for line in text.splitlines():
        stripped = line.strip()
        if (not stripped or stripped.startswith(("Graph execution error", "Detected at node", "File \"", "[["))
                or line.startswith("  ")):
            continue
        kept.append(stripped.split("\t [[")[0].split(" [[{{node")[0].split(" [Op:")[0].strip())
    message = ("; ".join(k for k in kept if k) or text.splitlines()[0]) if text else type(error).__name__
    return message if len(message) <= limit else message[:limit] + "..."


def list_versions(base_path: str) -> dict[int, str]:
    """Numeric version directories holding a SavedModel (TF Serving's layout)."""
    found = {}
    if tf.io.gfile.isdir(base_path):
        for entry in tf.io.gfile.listdir(base_path):
            entry = entry.rstrip("/")
            path = os.path.join(base_path, entry)
            if entry.isdigit() and tf.io.gfile.exists(os.path.join(path, "saved_model.pb")):
                found[int(entry)] = path
    return found


class LoadedVersion:
    """One loaded SavedModel version: its callable signatures and its SignatureDefs."""

    def __init__(self, name: str, version: int, path: str, check_ops: bool = True):
        if check_ops:
            op_check.check_servable(path)
        self.name, self.version, self.path = name, version, path
        self.model = tf.saved_model.load(path)
        self.signatures = dict(self.model.signatures)
        saved_model = saved_model_pb2.SavedModel()
        with tf.io.gfile.GFile(os.path.join(path, "saved_model.pb"), "rb") as f:
            saved_model.ParseFromString(f.read())
        self.signature_defs = {k: v for k, v in saved_model.meta_graphs[0].signature_def.items()
                               if k != "__saved_model_init_op"}
        # Looked up on every request: resolved once here.
        self._input_specs = {k: fn.structured_input_signature[1] for k, fn in self.signatures.items()}

    def signature(self, signature_name: str, method: str | None = None):
        """(concrete function, input specs) of a signature; checks its method like TF Serving."""
        name = signature_name or DEFAULT_SIGNATURE
        if name not in self.signatures:
            raise invalid(f"Serving signature name: \"{name}\" not found in signature def; "
                          f"available: {sorted(self.signatures)}")
        if method and self.signature_defs[name].method_name != method:
            raise invalid(f"Expected {method.rsplit('/', 1)[1]} signature method_name to be {method}. "
                          f"Was: {self.signature_defs[name].method_name}")
        return self.signatures[name], self._input_specs[name]

    def input_specs(self, signature_name: str) -> dict:
        return self.signature(signature_name)[1]

    def prepare(self, signature_name: str, arrays: dict[str, np.ndarray], method: str | None = None) -> dict:
        """Checks input names and shapes against the signature; returns tensors to call it with.

        ``arrays`` already have the signature's dtypes (see ``arrays_from_protos``).
        """
        _, specs = self.signature(signature_name, method)
        if set(arrays) != set(specs):
            raise invalid(f"input keys {sorted(arrays)} do not match signature "
                          f"{signature_name or DEFAULT_SIGNATURE!r} inputs {sorted(specs)}")
        feeds = {}
        for key, value in arrays.items():
            spec = specs[key]
            if not spec.shape.is_compatible_with(value.shape):
                raise invalid(f"input {key!r} has shape {list(value.shape)}, signature expects "
                              f"{spec.shape.as_list()}")
            feeds[key] = tf.constant(value, dtype=spec.dtype)
        return feeds

    def call(self, signature_name: str, tensors: dict, output_filter=()) -> dict[str, np.ndarray]:
        """Runs the signature on prepared tensors; returns the (filtered) outputs."""
        fn, _ = self.signature(signature_name)
        try:
            outputs = fn(**tensors)
        except (tf.errors.InvalidArgumentError, ValueError) as e:
            raise invalid(f"signature {signature_name or 'serving_default'!r}: {readable_error(e)}") from None
        wanted = list(output_filter) or sorted(outputs)
        unknown = [k for k in wanted if k not in outputs]
        if unknown:
            raise invalid(f"output_filter names unknown outputs {unknown}; available: {sorted(outputs)}")
        return {k: outputs[k].numpy() for k in wanted}

    def arrays_from_protos(self, signature_name: str, protos: dict) -> dict[str, np.ndarray]:
        """TensorProtos of a gRPC request -> arrays; dtypes must match the signature's."""
        specs = self.input_specs(signature_name)
        arrays = {}
        for key, proto in protos.items():
            try:
                arrays[key] = tensors.to_array(proto)
            except Exception as e:  # a malformed TensorProto
                raise invalid(f"input {key!r}: {e}") from None
            if key in specs and tf.as_dtype(proto.dtype) != specs[key].dtype:
                raise invalid(f"input {key!r} has dtype {tf.as_dtype(proto.dtype).name}, "
                              f"signature expects {specs[key].dtype.name}")
        return arrays
