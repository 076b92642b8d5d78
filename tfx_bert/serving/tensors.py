"""TensorProto <-> numpy for the request path, without TF's general-purpose converters.

``tf.make_tensor_proto`` / ``tf.make_ndarray`` handle every case and cost tens of microseconds
each; requests are mostly string batches in and float/int arrays out, which these build
directly. Anything else falls back to TF's converters.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2

_NUMERIC = {np.dtype(np.float32): types_pb2.DT_FLOAT, np.dtype(np.float64): types_pb2.DT_DOUBLE,
            np.dtype(np.int32): types_pb2.DT_INT32, np.dtype(np.int64): types_pb2.DT_INT64}
_FROM_DTYPE = {v: k for k, v in _NUMERIC.items()}


def _shape(dims) -> tensor_shape_pb2.TensorShapeProto:
    return tensor_shape_pb2.TensorShapeProto(dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in dims])


def to_proto(value) -> tensor_pb2.TensorProto:
    """A TensorProto of ``value`` (array-like)."""
    array = np.asarray(value)
    if array.dtype in _NUMERIC:
        return tensor_pb2.TensorProto(dtype=_NUMERIC[array.dtype], tensor_shape=_shape(array.shape),
                                      tensor_content=np.ascontiguousarray(array).tobytes())
    if array.dtype == object or array.dtype.kind in "SU":
        flat = [v.encode("utf-8") if isinstance(v, str) else v for v in array.reshape(-1).tolist()]
        if all(isinstance(v, bytes) for v in flat):
            return tensor_pb2.TensorProto(dtype=types_pb2.DT_STRING, tensor_shape=_shape(array.shape), string_val=flat)
    return tf.make_tensor_proto(array)


def to_array(proto: tensor_pb2.TensorProto) -> np.ndarray:
    """The numpy array of a TensorProto."""
    shape = [d.size for d in proto.tensor_shape.dim]
    if proto.dtype == types_pb2.DT_STRING and len(proto.string_val) == int(np.prod(shape)):
        array = np.empty(len(proto.string_val), dtype=object)
        array[:] = list(proto.string_val)
        return array.reshape(shape)
    if proto.dtype in _FROM_DTYPE and proto.tensor_content:
        return np.frombuffer(proto.tensor_content, dtype=_FROM_DTYPE[proto.dtype]).reshape(shape).copy()
    return tf.make_ndarray(proto)
