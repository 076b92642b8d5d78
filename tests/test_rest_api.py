"""tfx_bert.serving.rest_api against hostile requests on a real server on 127.0.0.1: every client
mistake is a 4xx whose JSON error says what and where, limits are enforced before a body is read,
idle connections close, and valid requests between them keep working."""
import json
import socket
import time

import pytest

from tests.helpers import save_text_model
from tfx_bert.serving import server
from tfx_bert.serving.rest_api import RestLimits

PREDICT = "/v1/models/toy:predict"


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    from tests.helpers import write_tiny_vocab

    root = tmp_path_factory.mktemp("rest")
    save_text_model(root / "toy" / "1", write_tiny_vocab(root / "vocab"), 1.0)
    running = server.start_server({"toy": str(root / "toy")}, port=0, rest_port=0,
                                   rest_limits=RestLimits(max_request_bytes=4096, timeout_s=1.0), max_rows=8)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def rest(running):
    return running.rest_port


@pytest.fixture(scope="module")
def rest_grpc_port(running):
    return running.port


def _raw(port, request: bytes, read_timeout=10.0) -> tuple[int, dict]:
    """Sends ``request`` bytes as they are; (status, JSON body) of the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=read_timeout) as conn:
        conn.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                break
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = int([line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")][0])
        while len(body) < length:
            body += conn.recv(65536)
    return int(head.split()[1]), json.loads(body)


def _post(port, body, path=PREDICT, headers=None) -> tuple[int, dict]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    lines = [f"POST {path} HTTP/1.1", "Host: x"] + [f"{k}: {v}" for k, v in (headers or {}).items()]
    if not any(k.lower() in ("content-length", "transfer-encoding") for k in headers or {}):
        lines.append(f"Content-Length: {len(data)}")
    return _raw(port, ("\r\n".join(lines) + "\r\n\r\n").encode() + data)


@pytest.mark.parametrize("body, status, fragment", [
    ({"inputs": [{"b64": "dGhl!!IGNhdA=="}]}, 400, "input 'text'[0]: {'b64': ...} is not valid base64"),
    ({"instances": [{"b64": "YWJj="}]}, 400, "input 'text'[0]: {'b64': ...} is not valid base64"),  # extra padding
    ({"instances": ["the cat", None]}, 400, "input 'text'[1]: expected a string or {'b64': ...}, got NoneType"),
    ({"instances": ["the cat", 7]}, 400, "input 'text'[1]: expected a string"),
    ({"instances": [{"text": "a"}, {"txt": "b"}]}, 400, "instance 1 has inputs ['txt']"),
    ({"instances": [["a", "b"], ["c"]]}, 400, "input 'text'"),
    ({"instances": ["a"] * 9}, 413, "9 rows in one request; the limit is 8"),
    ({"instances": ["a"], "signature_name": 5}, 400, "'signature_name' must be a string"),
    (b"[" * 2000 + b"]" * 2000, 400, "nested too deeply"),
    (b'{"instances": ["caf\xe9"]}', 400, "not UTF-8 (byte 19)"),
    (b"x" * 5000, 413, "over the limit of 4096 bytes (serving.rest_max_request_bytes)"),
], ids=["bad-base64", "b64-extra-padding", "null", "number", "wrong-input", "ragged", "rows", "signature-type", "nested", "not-utf8",
        "too-large"])
def test_malformed_bodies_are_4xx_naming_what_and_where(rest, body, status, fragment):
    answer = _post(rest, body)
    assert answer[0] == status and fragment in answer[1]["error"], answer
    assert _post(rest, {"instances": ["the cat"]})[0] == 200  # the server is unharmed


def test_lengths_are_checked_before_anything_is_read_and_chunked_bodies_are_read(rest):
    started = time.time()
    status, body = _post(rest, b"{}", headers={"Content-Length": "1000000000000"})
    assert status == 413 and time.time() - started < 5  # refused at once, nothing reserved
    assert _post(rest, b"{}", headers={"Content-Length": "-1"})[0] == 400
    assert _post(rest, b"{}", headers={"Content-Length": "abc"})[1]["error"].startswith("Content-Length 'abc'")
    status, body = _raw(rest, f"POST {PREDICT} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    assert status == 411 and "Content-Length" in body["error"]
    payload = json.dumps({"instances": ["the cat"]}).encode()
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (payload[:10], payload[10:])) + b"0\r\n\r\n"
    status, body = _post(rest, chunked, headers={"Transfer-Encoding": "chunked"})
    assert status == 200 and len(body["predictions"]) == 1


def test_versions_out_of_range_and_long_names_are_client_errors(rest):
    status, body = _raw(rest, f"GET /v1/models/toy/versions/{2 ** 70} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    assert status == 400 and "out of range" in body["error"]
    status, body = _post(rest, {"instances": ["a"]}, path=f"/v1/models/{'m' * 20000}:predict")
    assert status == 404 and len(body["error"]) < 1000


def test_a_long_model_name_over_grpc_is_not_found_with_a_short_message(rest_grpc_port):
    import grpc
    from tensorflow_serving.apis import get_model_status_pb2, model_service_pb2_grpc

    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "m" * 16000
    stub = model_service_pb2_grpc.ModelServiceStub(grpc.insecure_channel(f"127.0.0.1:{rest_grpc_port}"))
    with pytest.raises(grpc.RpcError) as info:
        stub.GetModelStatus(request, timeout=10)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND and len(info.value.details()) < 1000


def test_idle_connections_are_closed(rest):
    with socket.create_connection(("127.0.0.1", rest), timeout=10) as conn:
        started = time.time()
        assert conn.recv(1024) == b""  # closed by the server, not waited on forever
        assert time.time() - started < 8
    with socket.create_connection(("127.0.0.1", rest), timeout=10) as conn:  # a body that never arrives
        conn.sendall(f"POST {PREDICT} HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{{".encode())
        started = time.time()
        assert conn.recv(1024) == b"" and time.time() - started < 8
    assert _post(rest, {"instances": ["the cat"]})[0] == 200


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "PURGE"])
def test_a_method_the_api_does_not_serve_is_tf_servings_json_400_not_an_html_page(rest, method):
    status, body = _raw(rest, f"{method} {PREDICT} HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{{}}".encode())
    assert (status, body) == (400, {"error": f"Malformed request: {method} {PREDICT}"})
    assert _post(rest, {"instances": ["the cat"]})[0] == 200  # the server is unharmed


def test_head_gets_the_headers_of_that_answer_and_no_body(rest):
    with socket.create_connection(("127.0.0.1", rest), timeout=10) as conn:
        conn.sendall(f"HEAD {PREDICT} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        data = b""
        while chunk := conn.recv(65536):  # the server closes the connection after the answer
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.split()[1] == b"400" and b"application/json" in head and body == b""
