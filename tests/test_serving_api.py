"""The development server's full API over real gRPC and HTTP on 127.0.0.1: Classify, Regress,
MultiInference, REST (row and columnar), model_config_file with versions and labels,
HandleReloadConfigRequest, batching, TLS, hot swaps under load, malformed requests."""
import datetime
import json
import os
import threading
import time
import urllib.error
import urllib.request

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import (
    inference_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

from tests.helpers import save_text_model
from tfx_bert.serving import client as client_lib
from tfx_bert.serving import model_config, server
from tfx_bert.serving.batching import BatchingParameters

TEXTS = np.array(["the cat", "the cat sat on the mat"], dtype=object)


@pytest.fixture(scope="module")
def vocab(tmp_path_factory):
    from tests.helpers import TINY_WORDS
    from tfx_bert import tokenization

    path = tmp_path_factory.mktemp("vocab") / "vocab"
    tokenization.write_vocab_dir(str(path), tokenization.reserved_tokens() + TINY_WORDS,
                                 tokenization.TokenizerConfig(lower_case=True))
    return str(path)


@pytest.fixture(scope="module")
def versions(tmp_path_factory, vocab):
    """Model versions 1, 2 and 3 (scores x1, x2, x3), saved once for the module."""
    root = tmp_path_factory.mktemp("versions")
    for v in (1, 2, 3):
        save_text_model(root / str(v), vocab, float(v))
    return root


def _install(versions, base, *numbers):
    import shutil

    for n in numbers:
        shutil.copytree(versions / str(n), base / str(n))
    return base


@pytest.fixture
def toy(tmp_path, versions):
    running = server.start_server({"toy": str(_install(versions, tmp_path / "toy", 1))}, port=0, rest_port=0)
    yield running
    running.stop()


def _stub(port, service=prediction_service_pb2_grpc.PredictionServiceStub):
    return service(grpc.insecure_channel(f"127.0.0.1:{port}"))


def _examples(request_input, texts):
    for text in texts:
        request_input.example_list.examples.add().features.feature["text"].bytes_list.value.append(text.encode())


def test_classify_regress_and_multi_inference(toy):
    with client_lib.ServingClient(f"127.0.0.1:{toy.port}") as client:
        results = client.classify("toy", [{"text": "the cat"}, {"text": "the cat sat on the mat"}])
    assert [label for label, _ in results[0]] == ["short", "long"]
    assert results[1][1][1] > results[0][1][1]  # more tokens: more "long"

    stub = _stub(toy.port)
    request = regression_pb2.RegressionRequest()
    request.model_spec.name, request.model_spec.signature_name = "toy", "regression"
    _examples(request.input, ["the cat", "the cat sat"])
    values = [r.value for r in stub.Regress(request, timeout=10).result.regressions]
    direct = _stub(toy.port).Predict(_predict_request("toy", ["the cat", "the cat sat"]), timeout=10)
    assert values == pytest.approx(tf.make_ndarray(direct.outputs["score"]).tolist())

    multi = inference_pb2.MultiInferenceRequest()
    for signature, method in (("classification", "tensorflow/serving/classify"),
                              ("regression", "tensorflow/serving/regress")):
        task = multi.tasks.add(method_name=method)
        task.model_spec.name, task.model_spec.signature_name = "toy", signature
    _examples(multi.input, ["the cat"])
    response = stub.MultiInference(multi, timeout=10)
    assert len(response.results[0].classification_result.classifications[0].classes) == 2
    assert response.results[1].regression_result.regressions[0].value == pytest.approx(values[0])

    # Classify on a predict signature is refused, as TF Serving refuses it.
    wrong = regression_pb2.RegressionRequest()
    wrong.model_spec.name = "toy"
    _examples(wrong.input, ["x"])
    with pytest.raises(grpc.RpcError) as info:
        stub.Regress(wrong, timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "method_name" in info.value.details()


def _predict_request(model, texts, signature="", key="text", version=None, label=None):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = signature
    if version:
        request.model_spec.version.value = version
    if label:
        request.model_spec.version_label = label
    request.inputs[key].CopyFrom(tf.make_tensor_proto(np.array(texts, dtype=object)))
    return request


def test_garbage_tf_example_bytes_are_invalid_argument_and_serving_continues(toy):
    stub = _stub(toy.port)
    garbage = _predict_request("toy", [b"\xff\xfe not a tf.Example \x00\x01"], signature="regression", key="inputs")
    with pytest.raises(grpc.RpcError) as info:
        stub.Predict(garbage, timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "signature 'regression': an input holds bytes the graph cannot read" in info.value.details()
    missing_text = _predict_request("toy", [tf.train.Example().SerializeToString()], signature="regression",
                                    key="inputs")
    with pytest.raises(grpc.RpcError) as info:
        stub.Predict(missing_text, timeout=10)
    assert "Feature: text (data type: string) is required but could not be found" in info.value.details()
    assert "Graph execution error" not in info.value.details() and len(info.value.details()) <= 600
    empty = regression_pb2.RegressionRequest()
    empty.model_spec.name, empty.model_spec.signature_name = "toy", "regression"
    with pytest.raises(grpc.RpcError) as info:
        stub.Regress(empty, timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "empty" in info.value.details()
    assert stub.Predict(_predict_request("toy", ["the cat"]), timeout=10).outputs["score"]


def _http(port, path, body=None):
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data,
                                     method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_rest_api_status_metadata_predict_classify_and_errors(toy):
    port = toy.rest_port
    assert _http(port, "/v1/models/toy") == (200, {"model_version_status": [
        {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}]})
    status, metadata = _http(port, "/v1/models/toy/metadata")
    assert status == 200
    assert set(metadata["metadata"]["signature_def"]["signatureDef"]) == {"serving_default", "classification", "regression"}

    grpc_scores = tf.make_ndarray(_stub(toy.port).Predict(_predict_request("toy", list(TEXTS)), timeout=10).outputs["score"])
    status, rows = _http(port, "/v1/models/toy:predict", {"instances": list(TEXTS)})
    assert status == 200 and [r["score"] for r in rows["predictions"]] == pytest.approx(grpc_scores.tolist())
    assert len(rows["predictions"][0]["token_ids"]) == 8
    status, named_rows = _http(port, "/v1/models/toy/versions/1:predict", {"instances": [{"text": t} for t in TEXTS]})
    assert named_rows == rows
    status, columns = _http(port, "/v1/models/toy:predict", {"inputs": {"text": list(TEXTS)}})
    assert columns["outputs"]["score"] == pytest.approx(grpc_scores.tolist())
    status, b64 = _http(port, "/v1/models/toy:predict", {"inputs": [{"b64": "dGhlIGNhdA=="}]})  # "the cat"
    assert b64["outputs"]["score"] == pytest.approx(grpc_scores[:1].tolist())

    status, classified = _http(port, "/v1/models/toy:classify",
                               {"signature_name": "classification", "examples": [{"text": "the cat"}]})
    assert status == 200 and [c[0] for c in classified["results"][0]] == ["short", "long"]
    status, regressed = _http(port, "/v1/models/toy:regress",
                              {"signature_name": "regression", "examples": [{"text": "the cat"}]})
    assert regressed["results"] == pytest.approx(grpc_scores[:1].tolist())

    for path, body, code, fragment in [
        ("/v1/models/nope:predict", {"instances": ["x"]}, 404, "nope"),
        ("/v1/models/toy/versions/9", None, 404, "toy, 9"),
        ("/v1/models/toy:predict", {"instances": [{"texts": "x"}]}, 400, "text"),
        ("/v1/models/toy:predict", {"instances": ["x"], "inputs": ["x"]}, 400, "exactly one"),
        ("/v1/models/toy:predict", b"{not json", 400, "JSON"),
        ("/v1/models/toy:predict", {"signature_name": "other", "instances": ["x"]}, 400, "other"),
        ("/v2/whatever", None, 404, "Malformed"),
    ]:
        status, body = _http(port, path, body)
        assert status == code and fragment in body["error"], (path, body)
    assert _http(port, "/v1/models/toy:predict", {"instances": ["the cat"]})[0] == 200


def test_model_config_file_with_several_models_versions_and_labels(tmp_path, versions):
    base_a = _install(versions, tmp_path / "a", 1, 2, 3)
    base_b = _install(versions, tmp_path / "b", 1, 2)
    text = f"""
    model_config_list {{
      config {{ name: "a" base_path: "{base_a}" model_platform: "tensorflow"
               model_version_policy {{ specific {{ versions: 1 versions: 3 }} }}
               version_labels {{ key: "stable" value: 1 }} version_labels {{ key: "canary" value: 3 }} }}
      config {{ name: "b" base_path: "{base_b}" model_platform: "tensorflow" }}
    }}"""
    path = tmp_path / "models.config"
    path.write_text(text)
    models = model_config.read_file(str(path))
    assert model_config.parse_text(model_config.to_text(models)) == models
    running = server.start_server(models, port=0)
    try:
        stub = _stub(running.port)

        def score(model, **spec):
            return tf.make_ndarray(stub.Predict(_predict_request(model, ["the cat"], **spec), timeout=10).outputs["score"])[0]

        one = score("a", version=1)
        assert score("a") == pytest.approx(3 * one)  # newest served version
        assert score("a", label="stable") == pytest.approx(one)
        assert score("a", label="canary") == pytest.approx(3 * one)
        assert score("b") == pytest.approx(2 * one)  # default policy: latest
        with pytest.raises(grpc.RpcError) as info:
            score("a", version=2)  # on disk, but not in the policy
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
        with pytest.raises(grpc.RpcError) as info:
            score("a", label="nightly")
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT

        models_stub = _stub(running.port, model_service_pb2_grpc.ModelServiceStub)
        status_request = model_management_pb2.ReloadConfigRequest()
        status_request.config.model_config_list.config.add(name="b", base_path=str(base_b), model_platform="tensorflow")
        status_request.config.model_config_list.config.add(name="c", base_path=str(base_a), model_platform="tensorflow")
        assert models_stub.HandleReloadConfigRequest(status_request, timeout=60).status.error_code == 0
        assert score("c") == pytest.approx(3 * one)
        with pytest.raises(grpc.RpcError) as info:
            score("a")
        assert info.value.code() == grpc.StatusCode.NOT_FOUND

        bad = model_management_pb2.ReloadConfigRequest()
        bad.config.model_config_list.config.add(name="d", base_path=str(base_a), model_platform="pytorch")
        response = models_stub.HandleReloadConfigRequest(bad, timeout=60)
        assert response.status.error_code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
        assert "model_platform" in response.status.error_message
        assert score("b") == pytest.approx(2 * one)  # the previous configuration still serves
    finally:
        running.stop()


def test_bad_model_config_names_the_model_and_field():
    with pytest.raises(ValueError, match="model x: the name appears twice"):
        model_config.parse_text('model_config_list { config { name: "x" base_path: "/a" } '
                                'config { name: "x" base_path: "/b" } }')
    with pytest.raises(ValueError, match="model_config_file"):
        model_config.parse_text("model_config_list { config { nme: 1 } }")


def _predict_concurrently(stub, texts):
    """One thread per text, each a batch-1 Predict of the toy model: ({index: score}, [RpcError])."""
    results, errors = {}, []

    def send(i):
        try:
            results[i] = tf.make_ndarray(stub.Predict(_predict_request("toy", [texts[i]]), timeout=10).outputs["score"])[0]
        except grpc.RpcError as e:
            errors.append(e)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(texts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results, errors


def test_batching_merges_concurrent_requests_and_refuses_oversize_ones(tmp_path, versions):
    base = _install(versions, tmp_path / "toy", 1)
    running = server.start_server({"toy": str(base)}, port=0,
                                  batching=BatchingParameters(max_batch_size=8, batch_timeout_s=0.02))
    calls = []
    servable = running.manager.get("toy")
    original = servable.call

    def counting_call(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    servable.call = counting_call
    try:
        stub = _stub(running.port)
        texts = [f"the cat {'sat ' * (i % 4)}" for i in range(24)]
        expected = {t: tf.make_ndarray(stub.Predict(_predict_request("toy", [t]), timeout=10).outputs["score"])[0]
                    for t in set(texts)}
        calls.clear()
        results, errors = _predict_concurrently(stub, texts)
        assert not errors
        assert all(results[i] == pytest.approx(expected[texts[i]]) for i in range(len(texts)))
        assert len(calls) < len(texts)  # some requests shared a batch

        with pytest.raises(grpc.RpcError) as info:
            stub.Predict(_predict_request("toy", ["the cat"] * 9), timeout=10)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "larger than maximum input batch size 8" in info.value.details()
        assert stub.Predict(_predict_request("toy", ["the cat"] * 8), timeout=10).outputs["score"]
    finally:
        running.stop()


def test_batching_with_no_timeout_runs_batch_threads_at_once(tmp_path, versions):
    """TF Serving's CPU setting (batch_timeout_micros 0, num_batch_threads > 1): no request waits
    for company, two batches run at once, and batches still form from what queued meanwhile."""
    base = _install(versions, tmp_path / "toy", 1)
    parameters = tmp_path / "batching.config"
    parameters.write_text(model_config.batching_parameters_text(8, 0, 2))
    params = server.read_batching_parameters(str(parameters))
    assert (params.max_batch_size, params.batch_timeout_s, params.num_batch_threads) == (8, 0.0, 2)
    running = server.start_server({"toy": str(base)}, port=0, batching=params)
    servable = running.manager.get("toy")
    original, lock = servable.call, threading.Lock()
    active, peak, sizes = [0], [0], []

    def slow_call(signature, tensors, output_filter=()):
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
            sizes.append(int(next(iter(tensors.values())).shape[0]))
        time.sleep(0.05)  # long enough for the other thread and the queue to fill
        try:
            return original(signature, tensors, output_filter)
        finally:
            with lock:
                active[0] -= 1

    servable.call = slow_call
    try:
        stub = _stub(running.port)
        texts = [f"the cat {'sat ' * (i % 4)}" for i in range(24)]
        results, errors = _predict_concurrently(stub, texts)
        assert not errors and len(results) == len(texts)
        servable.call = original
        for i in range(len(texts)):
            expected = tf.make_ndarray(stub.Predict(_predict_request("toy", [texts[i]]), timeout=10).outputs["score"])[0]
            assert results[i] == pytest.approx(expected)
        assert peak[0] == 2  # two batch threads, never more
        assert max(sizes) > 1 and sum(sizes) == len(texts)
    finally:
        running.stop()


def _self_signed(tmp_path):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    (tmp_path / "server.crt").write_text(cert_pem)
    ssl_config = tmp_path / "ssl.config"
    ssl_config.write_text(f"server_key: {json.dumps(key_pem)}\nserver_cert: {json.dumps(cert_pem)}\n")
    return str(tmp_path / "server.crt"), str(ssl_config)


def test_tls_client_against_a_tls_server(tmp_path, versions):
    cert_path, ssl_config = _self_signed(tmp_path)
    tls = server.read_ssl_config(ssl_config)
    running = server.start_server({"toy": str(_install(versions, tmp_path / "toy", 1))}, port=0, tls=tls)
    try:
        with client_lib.ServingClient(f"127.0.0.1:{running.port}", root_cert=cert_path,
                                      server_name="localhost") as client:
            assert client.wait_until_available("toy") == 1
            assert client.predict("toy", {"text": TEXTS})["score"].shape == (2,)
        with client_lib.ServingClient(f"127.0.0.1:{running.port}", timeout=2, retries=0) as plain:
            with pytest.raises(grpc.RpcError) as info:
                plain.predict("toy", {"text": TEXTS})
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        running.stop()


def test_client_retries_unavailable_until_the_server_is_up(tmp_path, versions):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base = _install(versions, tmp_path / "toy", 1)
    holder = {}
    starter = threading.Timer(1.0, lambda: holder.setdefault("server", server.start_server({"toy": str(base)}, port=port)))
    starter.start()
    try:
        with client_lib.ServingClient(f"127.0.0.1:{port}", timeout=2, retries=6) as client:
            assert client.predict("toy", {"text": TEXTS})["score"].shape == (2,)
    finally:
        starter.join()
        holder["server"].stop()


def test_two_pushes_under_a_steady_stream_of_requests(tmp_path, versions):
    """Zero failed requests while versions 2 and 3 arrive; each is served within the poll
    interval plus its load time."""
    import shutil

    poll = 0.5
    base = _install(versions, tmp_path / "toy", 1)
    running = server.start_server({"toy": str(base)}, port=0, poll_seconds=poll)
    stop, failures, seen = threading.Event(), [], {}

    def stream():
        stub = _stub(running.port)
        while not stop.is_set():
            try:
                response = stub.Predict(_predict_request("toy", ["the cat"]), timeout=10)
                seen.setdefault(response.model_spec.version.value, time.monotonic())
            except grpc.RpcError as e:
                failures.append(e)

    threads = [threading.Thread(target=stream) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        pushed = {}
        for version in (2, 3):
            time.sleep(1.0)
            shutil.copytree(versions / str(version), tmp_path / f"staging{version}")
            os.rename(tmp_path / f"staging{version}", base / str(version))  # the Pusher's atomic step
            pushed[version] = time.monotonic()
            deadline = pushed[version] + poll + 10
            while version not in seen:
                assert time.monotonic() < deadline, f"version {version} not served within {poll}s + load"
                time.sleep(0.02)
        time.sleep(0.5)
    finally:
        stop.set()
        for t in threads:
            t.join()
        running.stop()
    assert failures == []
    assert set(seen) == {1, 2, 3}
    print({v: round(seen[v] - pushed[v], 2) for v in pushed})


def test_tensorflow_parallelism_flags_set_tensorflows_thread_pools():
    """TF Serving's --tensorflow_intra_op_parallelism / --tensorflow_inter_op_parallelism, in a
    fresh process (TensorFlow fixes its pools when it first runs an op)."""
    import subprocess
    import sys

    code = ("from tfx_bert.serving.server import set_tensorflow_parallelism\n"
            "set_tensorflow_parallelism(1, 3)\n"
            "import tensorflow as tf\n"
            "print(tf.config.threading.get_intra_op_parallelism_threads(),"
            " tf.config.threading.get_inter_op_parallelism_threads())\n"
            "tf.constant(1) + 1\n"
            "set_tensorflow_parallelism(2)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.split()[-2:] == ["1", "3"], result.stderr[-2000:]
    # Too late once TensorFlow has run an op: a clear error, not TensorFlow's.
    assert "start the server in a fresh process" in result.stderr


def _rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024


@pytest.mark.slow
def test_load_many_concurrent_clients_nothing_lost_memory_stable(tmp_path, versions):
    """Bounded load on 127.0.0.1 against the server in its own process: 32 clients x 100
    requests, every answer correct, RSS after the run within 64 MB of RSS after warm-up."""
    import subprocess
    import sys
    from concurrent.futures import ThreadPoolExecutor

    base = _install(versions, tmp_path / "toy", 1)
    port_file = tmp_path / "port"
    process = subprocess.Popen([sys.executable, "-m", "tfx_bert.serving.server", "--model_name", "toy",
                                "--model_base_path", str(base), "--port", "0", "--port_file", str(port_file),
                                "--tensorflow_intra_op_parallelism=1", "--tensorflow_inter_op_parallelism=2"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while not port_file.exists():
            assert process.poll() is None and time.time() < deadline, "server did not start"
            time.sleep(0.2)
        target = f"127.0.0.1:{port_file.read_text()}"
        texts = ["the cat", "the cat sat on the mat", "a dog ran", "hello world"]
        with client_lib.ServingClient(target) as client:
            expected = {t: client.predict("toy", {"text": np.array([t], dtype=object)})["score"][0] for t in texts}

        def worker(seed, requests):
            wrong = 0
            with client_lib.ServingClient(target, timeout=30) as client:
                for i in range(requests):
                    text = texts[(seed + i) % len(texts)]
                    wrong += client.predict("toy", {"text": np.array([text], dtype=object)})["score"][0] != expected[text]
            return wrong

        with ThreadPoolExecutor(32) as pool:
            assert sum(pool.map(worker, range(32), [8] * 32)) == 0  # warm-up
            warm_rss = _rss_mb(process.pid)
            started = time.monotonic()
            assert sum(pool.map(worker, range(32), [100] * 32)) == 0  # nothing lost, nothing wrong
            elapsed = time.monotonic() - started
        final_rss = _rss_mb(process.pid)
        print(f"3200 requests in {elapsed:.1f}s; RSS {warm_rss:.0f} -> {final_rss:.0f} MB")
        assert final_rss - warm_rss < 64
        assert process.poll() is None
    finally:
        process.terminate()
        process.wait(timeout=30)
