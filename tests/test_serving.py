"""The development server and client over real gRPC on 127.0.0.1, on SavedModels made here."""
import os
import shutil
import time

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import (get_model_metadata_pb2, get_model_status_pb2, model_service_pb2_grpc,
                                    prediction_service_pb2_grpc)

from tests.helpers import save_text_model
from tfx_bert.serving import client as client_lib
from tfx_bert.serving import op_check, server


@pytest.fixture
def model_base(tmp_path, tiny_vocab_dir):
    base = tmp_path / "serving" / "toy"
    save_text_model(base / "1", tiny_vocab_dir, 1.0)
    return base


def test_predict_metadata_status_and_errors(model_base):
    srv, port, manager = server.start_server({"toy": str(model_base)}, port=0)
    try:
        with client_lib.ServingClient(f"127.0.0.1:{port}") as client:
            assert client.wait_until_available("toy") == 1
            out = client.predict("toy", {"text": np.array(["the cat", "the cat sat"], dtype=object)})
            assert out["token_ids"].shape == (2, 8)
            assert out["score"][1] > out["score"][0]

            cases = [
                (dict(model_name="nope", inputs={"text": np.array(["x"], dtype=object)}), grpc.StatusCode.NOT_FOUND, "nope"),
                (dict(model_name="toy", inputs={"text": np.array(["x"], dtype=object)}, version=7), grpc.StatusCode.NOT_FOUND, "toy, 7"),
                (dict(model_name="toy", inputs={"texts": np.array(["x"], dtype=object)}), grpc.StatusCode.INVALID_ARGUMENT, "texts"),
                (dict(model_name="toy", inputs={"text": np.array([1.5])}), grpc.StatusCode.INVALID_ARGUMENT, "dtype"),
                (dict(model_name="toy", inputs={"text": np.array([["a"]], dtype=object)}), grpc.StatusCode.INVALID_ARGUMENT, "shape"),
                (dict(model_name="toy", inputs={"text": np.array(["x"], dtype=object)}, signature_name="other"),
                 grpc.StatusCode.INVALID_ARGUMENT, "other"),
            ]
            for kwargs, code, fragment in cases:
                with pytest.raises(grpc.RpcError) as info:
                    client.predict(**kwargs)
                assert info.value.code() == code
                assert fragment in info.value.details()
            # Still serving after the bad requests.
            assert client.predict("toy", {"text": np.array(["cat"], dtype=object)})["score"].shape == (1,)

        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        request.model_spec.name = "toy"
        response = prediction_service_pb2_grpc.PredictionServiceStub(channel).GetModelMetadata(request, timeout=10)
        signatures = get_model_metadata_pb2.SignatureDefMap()
        response.metadata["signature_def"].Unpack(signatures)
        assert set(signatures.signature_def["serving_default"].inputs) == {"text"}
        assert set(signatures.signature_def["serving_default"].outputs) == {"score", "token_ids"}
        channel.close()
    finally:
        manager.stop()
        srv.stop(0)


def test_new_version_is_picked_up_while_serving(model_base, tiny_vocab_dir, tmp_path):
    srv, port, manager = server.start_server({"toy": str(model_base)}, port=0, poll_seconds=0.3)
    try:
        with client_lib.ServingClient(f"127.0.0.1:{port}") as client:
            text = {"text": np.array(["the cat"], dtype=object)}
            before = client.predict("toy", text)["score"][0]
            # Push version 2 the way Pusher does: write elsewhere, then one rename.
            save_text_model(tmp_path / "staging", tiny_vocab_dir, 2.0)
            os.rename(tmp_path / "staging", model_base / "2")
            deadline = time.time() + 30
            while client.predict("toy", text)["score"][0] != 2 * before:
                assert time.time() < deadline, "version 2 was not served within 30s"
                time.sleep(0.1)
            assert client.wait_until_available("toy") == 2
    finally:
        manager.stop()
        srv.stop(0)


def test_op_check_flags_keras_nlp_packer_and_server_refuses_it(tmp_path, model_base):
    import keras_hub

    packer = keras_hub.layers.MultiSegmentPacker(sequence_length=8, start_value=2, end_value=3)
    module = tf.Module()

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def serve(text):
        ids = tf.strings.to_hash_bucket_fast(tf.strings.split(text), 50)
        token_ids, _ = packer((ids, ids))
        return {"ids": token_ids}

    module.serve = serve
    bad = tmp_path / "bad" / "1"
    tf.saved_model.save(module, str(bad), signatures={"serving_default": serve.get_concrete_function()})
    assert "TFText>RoundRobinTrim" in op_check.unsupported_ops(str(bad))
    running = server.start_server({"bad": str(bad.parent)}, port=0)  # refused, reported, not fatal
    try:
        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.name = "bad"
        stub = model_service_pb2_grpc.ModelServiceStub(grpc.insecure_channel(f"127.0.0.1:{running.port}"))
        [status] = stub.GetModelStatus(request, timeout=10).model_version_status
        assert status.state == get_model_status_pb2.ModelVersionStatus.END
        assert "RoundRobinTrim" in status.status.error_message and str(bad) in status.status.error_message
    finally:
        running.stop()
    assert op_check.unsupported_ops(str(model_base / "1")) == []


def test_removed_model_dir_keeps_serving_old_version(model_base):
    srv, port, manager = server.start_server({"toy": str(model_base)}, port=0)
    try:
        with client_lib.ServingClient(f"127.0.0.1:{port}") as client:
            shutil.rmtree(model_base / "1", ignore_errors=True)
            manager.refresh("toy")  # nothing to load: the loaded version stays
            assert client.predict("toy", {"text": np.array(["cat"], dtype=object)})["score"].shape == (1,)
    finally:
        manager.stop()
        srv.stop(0)
