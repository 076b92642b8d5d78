"""ServingPusher executor for real: checks, warm-up requests, atomic versions, retention, and
two pushes under a steady stream of gRPC requests with zero failures."""
import json
import os
import threading
import time

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2
from tfx import v1 as tfx
from tfx.types import standard_artifacts
from tfx.utils import proto_utils

from tfx_bert_app.components.serving_pusher import executor as push_ex
from tests.helpers import new_artifact, save_text_model
from tfx_bert.serving import client as client_lib
from tfx_bert.serving import server


def _model(tmp_path, name, vocab_dir, scale=1.0):
    model = new_artifact(standard_artifacts.Model, tmp_path / name)
    save_text_model(tmp_path / name / "Format-Serving", vocab_dir, scale)
    return model


def _blessing(tmp_path, blessed=True):
    blessing = new_artifact(standard_artifacts.ModelBlessing, tmp_path / f"blessing{int(blessed)}")
    blessing.set_int_custom_property("blessed", int(blessed))
    return blessing


def _push(tmp_path, model, base, blessed=True, keep=5):
    pushed = new_artifact(standard_artifacts.PushedModel, tmp_path / f"pushed-{time.time_ns()}")
    destination = tfx.proto.PushDestination(filesystem=tfx.proto.PushDestination.Filesystem(base_directory=str(base)))
    props = {"push_destination": proto_utils.proto_to_json(destination),
             "custom_config": json.dumps({"keep_versions": keep, "model_name": "toy",
                                          "warmup_texts": ["the cat", "a dog sat on the mat"]})}
    push_ex.Executor().Do({"model": [model], "model_blessing": [_blessing(tmp_path, blessed)]},
                          {"pushed_model": [pushed]}, props)
    return pushed


def test_push_writes_checked_version_with_warmup_and_metadata(tmp_path, tiny_vocab_dir):
    base = tmp_path / "serving" / "toy"
    pushed = _push(tmp_path, _model(tmp_path, "m1", tiny_vocab_dir), base)
    [version] = os.listdir(base)
    assert pushed.get_int_custom_property("pushed") == 1
    assert pushed.get_string_custom_property("pushed_version") == version
    metadata = json.load(open(base / version / "assets.extra" / "push_metadata.json"))
    assert metadata["signatures"]["serving_default"]["inputs"] == {"text": {"dtype": "string", "shape": [None]}}
    assert set(metadata["signatures"]["serving_default"]["outputs"]) == {"score", "token_ids"}
    logs = [prediction_log_pb2.PredictionLog.FromString(r.numpy()) for r in
            tf.data.TFRecordDataset(str(base / version / "assets.extra" / "tf_serving_warmup_requests"))]
    assert [len(l.predict_log.request.inputs["text"].string_val) for l in logs] == [1, 2]
    # TF Serving replays these at load: the request must run against the pushed model.
    model = tf.saved_model.load(str(base / version))
    model.signatures["serving_default"](text=tf.make_ndarray(logs[1].predict_log.request.inputs["text"]))


def test_versions_increase_old_ones_are_pruned_and_nothing_half_written(tmp_path, tiny_vocab_dir):
    base = tmp_path / "serving" / "toy"
    model = _model(tmp_path, "m", tiny_vocab_dir)
    for _ in range(3):
        _push(tmp_path, model, base, keep=2)
    versions = sorted(int(v) for v in os.listdir(base))
    assert len(versions) == 2 and versions[0] < versions[1]
    assert not [d for d in os.listdir(base) if d.startswith(".staging")]


def test_unblessed_model_is_not_pushed(tmp_path, tiny_vocab_dir):
    base = tmp_path / "serving" / "toy"
    pushed = _push(tmp_path, _model(tmp_path, "m", tiny_vocab_dir), base, blessed=False)
    assert not base.exists() or os.listdir(base) == []
    assert pushed.get_int_custom_property("pushed") == 0


def test_model_with_unsupported_ops_is_refused(tmp_path):
    import keras_hub

    packer = keras_hub.layers.MultiSegmentPacker(sequence_length=8, start_value=2, end_value=3)
    module = tf.Module()

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def serve(text):
        ids = tf.strings.to_hash_bucket_fast(tf.strings.split(text), 50)
        return {"ids": packer((ids, ids))[0]}

    module.serve = serve
    model = new_artifact(standard_artifacts.Model, tmp_path / "bad")
    tf.saved_model.save(module, str(tmp_path / "bad" / "Format-Serving"),
                        signatures={"serving_default": serve.get_concrete_function()})
    base = tmp_path / "serving" / "toy"
    with pytest.raises(ValueError, match="TFText>RoundRobinTrim"):
        _push(tmp_path, model, base)
    assert not base.exists() or os.listdir(base) == []


def _wait_for(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"{what} within {seconds:.0f} s"
        time.sleep(0.05)


@pytest.mark.slow  # a soak test: two pushes under four clients' traffic, about 40 s
def test_two_pushes_under_steady_traffic_lose_no_request(tmp_path, tiny_vocab_dir):
    """Zero failed requests across two swaps. Waits are for events (the first answer, the new
    version's first answer), never fixed sleeps: on a loaded 2-core machine the first answer
    alone took over a second (the old `sleep(1.0)` then found no answer: an IndexError, not a
    lost request; reproduced with four busy loops beside the test). A failed request is recorded
    with its code, message and time against the pushes, so a failure says whether it fell in a
    swap."""
    base = tmp_path / "serving" / "toy"
    _push(tmp_path, _model(tmp_path, "v1", tiny_vocab_dir, 1.0), base)
    srv, port, manager = server.start_server({"toy": str(base)}, port=0, poll_seconds=0.2)
    failures, scores, pushes, stop = [], [], {}, threading.Event()

    def traffic():
        with client_lib.ServingClient(f"127.0.0.1:{port}", timeout=60) as client:
            while not stop.is_set():
                try:
                    answer = client.predict("toy", {"text": np.array(["the cat"], dtype=object)})
                    scores.append(float(answer["score"][0]))
                except grpc.RpcError as e:  # any failed request fails the test
                    failures.append((e.code(), e.details()[:200], time.monotonic(), dict(pushes)))
                # Steady traffic, not a busy loop: four clients at full speed took the cores the
                # pushes (and the rest of the suite) need, for the same coverage of the swaps
                # (four clients every 20 ms: about 200 requests a second, each swap inside them).
                stop.wait(0.02)

    threads = [threading.Thread(target=traffic) for _ in range(4)]
    try:
        for t in threads:
            t.start()
        _wait_for(lambda: len(scores) >= 4, 120, "no answer to the first requests")
        base_score = scores[-1]
        for scale in (2.0, 3.0):
            _push(tmp_path, _model(tmp_path, f"v{scale}", tiny_vocab_dir, scale), base)
            pushes[scale] = time.monotonic()
            _wait_for(lambda: scores[-1] == scale * base_score, 120, f"the version with scale {scale} not served")
        served = len(scores)
        _wait_for(lambda: len(scores) >= served + 8, 120, "no traffic after the second swap")
    finally:
        stop.set()
        for t in threads:
            t.join()
        manager.stop()
        srv.stop(0)
    assert failures == []
    assert len(scores) > 50
