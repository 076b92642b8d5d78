"""tfx_bert.serving.grpc_api against malformed requests on a real gRPC server on 127.0.0.1:
tensor shapes are checked as TF Serving checks them before any tensor is built, the row limit
holds without batching, every refusal names the input, and valid requests keep working."""
import grpc
import numpy as np
import pytest
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
from tensorflow_serving.apis import classification_pb2, predict_pb2, prediction_service_pb2_grpc

from tests.helpers import save_text_model
from tfx_bert.serving import server, tensors


@pytest.fixture(scope="module")
def stub(tmp_path_factory):
    from tests.helpers import write_tiny_vocab

    root = tmp_path_factory.mktemp("grpc")
    save_text_model(root / "toy" / "1", write_tiny_vocab(root / "vocab"), 1.0)
    running = server.start_server({"toy": str(root / "toy")}, port=0, max_rows=8)
    yield prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(f"127.0.0.1:{running.port}"))
    running.stop()


def _string_proto(dims, values=(), dtype=types_pb2.DT_STRING, unknown_rank=False):
    shape = tensor_shape_pb2.TensorShapeProto(dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in dims],
                                              unknown_rank=unknown_rank)
    return tensor_pb2.TensorProto(dtype=dtype, tensor_shape=shape, string_val=list(values))


def _predict(stub, proto, key="text"):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "toy"
    request.inputs[key].CopyFrom(proto)
    return stub.Predict(request, timeout=30)


def _refusal(stub, proto, key="text") -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        _predict(stub, proto, key)
    return info.value


@pytest.mark.parametrize("proto, fragment", [
    (_string_proto([-1], [b"the cat"]), "input 'text': tensor parsing error: shape [-1] has a negative dimension"),
    (_string_proto([], unknown_rank=True), "unknown rank"),
    (_string_proto([2, 2], [b"a"] * 4), "input 'text' has shape [2, 2], signature expects [None]"),
    (_string_proto([9], [b"a"] * 9), "9 rows in one request; the limit is 8 (serving.max_rows"),
    (_string_proto([1 << 40], [b"a"]), "rows in one request"),  # a tiny proto declaring a huge tensor
    (_string_proto([2], [b"a", b"b", b"c"]), "tensor parsing error"),
    (_string_proto([1], dtype=999), "input 'text' has dtype <unknown DataType 999>"),
    (tensors.to_proto(np.zeros(2, np.float32)), "input 'text' has dtype float32, signature expects string"),
], ids=["negative-dim", "unknown-rank", "wrong-rank", "rows", "huge-declared", "too-many-values", "bad-dtype",
        "wrong-dtype"])
def test_malformed_tensors_are_invalid_argument_naming_the_input(stub, proto, fragment):
    error = _refusal(stub, proto)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and fragment in error.details(), error.details()
    answer = _predict(stub, tensors.to_proto(np.array(["the cat"], dtype=object)))
    assert tensors.to_array(answer.outputs["score"]).shape == (1,)  # the server is unharmed


def test_compact_string_tensors_repeat_their_last_value_as_in_tensorflow(stub):
    """TensorFlow's TensorProto semantics: fewer values than the shape holds fill with the last."""
    short = _predict(stub, _string_proto([3], [b"the cat"]))
    full = _predict(stub, tensors.to_proto(np.array(["the cat"] * 3, dtype=object)))
    assert short.outputs["score"] == full.outputs["score"]


def test_classify_row_limit_without_batching(stub):
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = "toy"
    request.model_spec.signature_name = "classification"
    for _ in range(9):
        request.input.example_list.examples.add().features.feature["text"].bytes_list.value.append(b"the cat")
    with pytest.raises(grpc.RpcError) as info:
        stub.Classify(request, timeout=30)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "examples: 9 rows in one request; the limit is 8" in info.value.details()
    del request.input.example_list.examples[8]
    assert len(stub.Classify(request, timeout=30).result.classifications) == 8
