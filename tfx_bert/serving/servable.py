"""One loaded SavedModel version and the checks TF Serving makes on a request to it."""
from __future__ import annotations

import os

import grpc
import numpy as np
import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers the tensorflow-text ops TF Serving links in)

from tfx_bert.serving import op_check, tensors

PREDICT_METHOD = "tensorflow/serving/predict"
CLASSIFY_METHOD = "tensorflow/serving/classify"
REGRESS_METHOD = "tensorflow/serving/regress"
DEFAULT_SIGNATURE = "serving_default"
MAX_ELEMENTS = 1 << 28  # values in one input tensor; a larger declared shape is refused before allocation


MAX_MESSAGE = 1000  # characters of an error message: it travels in gRPC's metadata (8 KB in all)


class ServingError(Exception):
    """An error with the gRPC status code TF Serving would return; its message is cut to
    ``MAX_MESSAGE`` characters, since clients' strings are echoed in it."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message if len(message) <= MAX_MESSAGE else message[:MAX_MESSAGE] + "...")
        self.code = code


def echo(text: str, limit: int = 200) -> str:
    """A client's name as it is quoted back in an error: cut, so the rest of the message stays."""
    return text if len(text) <= limit else text[:limit] + "..."


def invalid(message: str) -> ServingError:
    return ServingError(grpc.StatusCode.INVALID_ARGUMENT, message)


class RowLimitError(ServingError):
    """More rows than the server takes in one request (INVALID_ARGUMENT; REST answers 413)."""

    def __init__(self, message: str):
        super().__init__(grpc.StatusCode.INVALID_ARGUMENT, message)


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
        saved_model = op_check.read_saved_model(path)
        self.signature_defs = {k: v for k, v in saved_model.meta_graphs[0].signature_def.items()
                               if k != "__saved_model_init_op"}
        # Looked up on every request: resolved once here.
        self._input_specs = {k: fn.structured_input_signature[1] for k, fn in self.signatures.items()}

    def signature(self, signature_name: str, method: str | None = None):
        """(concrete function, input specs) of a signature; checks its method like TF Serving."""
        name = signature_name or DEFAULT_SIGNATURE
        if name not in self.signatures:
            raise invalid(f"Serving signature name: \"{echo(name)}\" not found in signature def; "
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
            raise invalid(f"input keys {[echo(k) for k in sorted(arrays)]} do not match signature "
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

    def arrays_from_protos(self, signature_name: str, protos: dict,
                           max_rows: int | None = None) -> dict[str, np.ndarray]:
        """TensorProtos of a gRPC request -> arrays. Shapes are checked before any array is built
        (TF Serving's "tensor parsing error" for a negative or unknown dimension; the signature's
        shape; at most ``max_rows`` rows), since a proto's few values may declare a huge shape;
        dtypes must match the signature's."""
        specs = self.input_specs(signature_name)
        arrays = {}
        for key, proto in protos.items():
            if key in specs:
                _check_proto_shape(key, proto, specs[key], max_rows)
                if _dtype_name(proto.dtype) != specs[key].dtype.name:
                    raise invalid(f"input {key!r} has dtype {_dtype_name(proto.dtype)}, "
                                  f"signature expects {specs[key].dtype.name}")
            try:
                arrays[key] = tensors.to_array(proto)
            except Exception as e:  # values that do not fill the declared shape, an unknown dtype
                raise invalid(f"input {key!r}: tensor parsing error: {readable_error(e, 200)}") from None
        return arrays


def _dtype_name(enum_value: int) -> str:
    try:
        return tf.as_dtype(enum_value).name
    except TypeError:
        return f"<unknown DataType {enum_value}>"


def _check_proto_shape(key: str, proto, spec, max_rows: int | None) -> None:
    if proto.tensor_shape.unknown_rank:
        raise invalid(f"input {key!r}: tensor parsing error: the shape has an unknown rank")
    dims = [d.size for d in proto.tensor_shape.dim]
    if any(d < 0 for d in dims):
        raise invalid(f"input {key!r}: tensor parsing error: shape {dims} has a negative dimension")
    if not spec.shape.is_compatible_with(dims):
        raise invalid(f"input {key!r} has shape {dims}, signature expects {spec.shape.as_list()}")
    if max_rows is not None and dims and dims[0] > max_rows:
        raise RowLimitError(f"input {key!r}: {dims[0]} rows in one request; the limit is {max_rows} "
                            "(serving.max_rows, --max_rows): split the request")
    if int(np.prod(dims, dtype=np.float64)) > MAX_ELEMENTS:
        raise invalid(f"input {key!r}: shape {dims} holds more than {MAX_ELEMENTS} values")
