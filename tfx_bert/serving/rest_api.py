"""TF Serving's REST API over the same runtime as the gRPC services.

    GET  /v1/models/<name>[/versions/<v> | /labels/<label>]            model status
    GET  /v1/models/<name>[...]/metadata                               signature defs
    POST /v1/models/<name>[...]:predict   {"instances": [...]} (row) or {"inputs": ...} (columnar)
    POST /v1/models/<name>[...]:classify  {"examples": [{feature: value}], "context": {...}}
    POST /v1/models/<name>[...]:regress

Binary strings travel as ``{"b64": "..."}``, as in TF Serving. Errors are ``{"error": "..."}``:
400 for a malformed request (the message names the instance and input), 404 for an unknown
model or version, 411 for a POST without a length, 413 for a body over ``max_request_bytes``
(checked before reading it) or more rows than the runtime's ``max_rows``, 500 only for the server's own
faults. Idle or slow connections are closed after ``timeout_s``.
"""
from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import logging
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
import numpy as np
import tensorflow as tf
from google.protobuf import json_format
from tensorflow_serving.apis import input_pb2, model_pb2

from tfx_bert.config import ServingConfig
from tfx_bert.serving.grpc_api import (
    Runtime,
    classification_result,
    model_status,
    regression_result,
    signature_def_map,
)
from tfx_bert.serving.servable import CLASSIFY_METHOD, REGRESS_METHOD, RowLimitError, ServingError, invalid

ROUTE = re.compile(r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>\d+)|/labels/(?P<label>[^/:]+))?"
                   r"(?:(?P<metadata>/metadata)|:(?P<verb>predict|classify|regress))?$")
HTTP_STATUS = {grpc.StatusCode.INVALID_ARGUMENT: 400, grpc.StatusCode.NOT_FOUND: 404}
STATE_NAMES = {30: "AVAILABLE", 50: "END"}
ERROR_CODES = {code.value[0]: code.name for code in grpc.StatusCode}
INT64_MAX = 2 ** 63 - 1
log = logging.getLogger(__name__)


_SERVING = ServingConfig()  # the defaults live there, once


@dataclasses.dataclass(frozen=True)
class RestLimits:
    """What one REST request may take (the ``serving.rest_*`` settings; the server's flags). The
    row limit is the runtime's, shared with gRPC."""

    max_request_bytes: int = _SERVING.rest_max_request_bytes  # a larger declared body: 413 before reading
    timeout_s: float = _SERVING.rest_timeout_ms / 1000  # an idle or slow connection is closed


class HttpError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def _decode_strings(value, where: str):
    """JSON strings / {"b64": ...} (nested lists of them) -> bytes; anything else is refused."""
    if isinstance(value, dict) and set(value) == {"b64"} and isinstance(value["b64"], str):
        text = value["b64"]
        try:
            if len(text) % 4:  # b64decode ignores extra padding ("YWJj=" would read as "abc")
                raise ValueError
            return base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise invalid(f"{where}: {{'b64': ...}} is not valid base64 (standard alphabet, padded to a "
                          f"multiple of 4 characters): {_short(text)}") from None
    if isinstance(value, list):
        return [_decode_strings(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, str):
        return value.encode()
    raise invalid(f"{where}: expected a string or {{'b64': ...}}, got {type(value).__name__} {_short(value)}")


def _check_numbers(value, where: str):
    if isinstance(value, list):
        for i, v in enumerate(value):
            _check_numbers(v, f"{where}[{i}]")
    elif isinstance(value, bool) or not isinstance(value, (int, float)):
        raise invalid(f"{where}: expected a number, got {type(value).__name__} {_short(value)}")


def _short(value, limit: int = 60) -> str:
    text = json.dumps(value)
    return text if len(text) <= limit else text[:limit] + "..."


def to_array(values, spec, key: str) -> np.ndarray:
    """JSON values -> an array of the signature input's dtype; a value of the wrong type is an
    error naming the input and its position, never a silent conversion."""
    if spec.dtype == tf.string:
        array = np.array(_decode_strings(values, f"input {key!r}"), dtype=object)
    else:
        _check_numbers(values, f"input {key!r}")
        try:
            array = np.array(values, dtype=spec.dtype.as_numpy_dtype)
        except (TypeError, ValueError, OverflowError) as e:
            raise invalid(f"input {key!r} cannot be read as {spec.dtype.name}: {e}") from None
    if array.dtype == object and array.shape and any(isinstance(v, (list, np.ndarray)) for v in array.flat):
        raise invalid(f"input {key!r}: rows of different lengths (a ragged list)")
    return array


def to_json(value):
    """Arrays -> JSON values; bytes that are not UTF-8 become {"b64": ...}."""
    if isinstance(value, np.ndarray):
        return [to_json(v) for v in value] if value.ndim else to_json(value.item())
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return {"b64": base64.b64encode(value).decode()}
    if isinstance(value, np.generic):
        return value.item()
    return value


def request_arrays(body: dict, specs: dict) -> tuple[dict, bool]:
    """(arrays, row_format) from a :predict body."""
    if ("instances" in body) == ("inputs" in body):
        raise invalid("Request body must have exactly one of 'instances' (row format) or 'inputs' (columnar).")
    if "instances" in body:
        instances = body["instances"]
        if not isinstance(instances, list) or not instances:
            raise invalid("'instances' must be a non-empty list.")
        if all(isinstance(i, dict) and not set(i) == {"b64"} for i in instances):
            for n, instance in enumerate(instances):
                if set(instance) != set(specs):
                    raise invalid(f"instance {n} has inputs {sorted(instance)}; each instance needs exactly "
                                  f"the inputs {sorted(specs)}")
            return {k: to_array([i[k] for i in instances], specs[k], k) for k in specs}, True
        if len(specs) != 1:
            raise invalid(f"the signature has inputs {sorted(specs)}: send each instance as an object")
        (key,) = specs
        return {key: to_array(instances, specs[key], key)}, True
    inputs = body["inputs"]
    if isinstance(inputs, dict) and not set(inputs) == {"b64"}:
        unknown = set(inputs) - set(specs)
        if unknown or set(specs) - set(inputs):
            raise invalid(f"input keys {sorted(inputs)} do not match signature inputs {sorted(specs)}")
        return {k: to_array(v, specs[k], k) for k, v in inputs.items()}, False
    if len(specs) != 1:
        raise invalid(f"the signature has inputs {sorted(specs)}: send 'inputs' as an object")
    (key,) = specs
    return {key: to_array(inputs, specs[key], key)}, False


def response_body(outputs: dict, row_format: bool) -> dict:
    if not row_format:
        if len(outputs) == 1:
            return {"outputs": to_json(next(iter(outputs.values())))}
        return {"outputs": {k: to_json(v) for k, v in outputs.items()}}
    if len(outputs) == 1:
        return {"predictions": to_json(next(iter(outputs.values())))}
    rows = {len(v) for v in outputs.values() if np.ndim(v)}
    if len(rows) != 1:
        raise invalid("outputs do not share a batch size; use the columnar format ('inputs')")
    (n,) = rows
    return {"predictions": [{k: to_json(v[i]) for k, v in outputs.items()} for i in range(n)]}


def _feature(value, where: str) -> tf.train.Feature:
    values = value if isinstance(value, list) else [value]
    values = [_decode_strings(v, where) if isinstance(v, (str, dict)) else v for v in values]
    if all(isinstance(v, bytes) for v in values):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=values))
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=values))
    if all(isinstance(v, (int, float)) for v in values):
        return tf.train.Feature(float_list=tf.train.FloatList(value=values))
    raise invalid(f"{where}: {_short(value)} is not a string, a number or a list of one kind of them")


def example_input(body: dict) -> input_pb2.Input:
    """The Input proto of a :classify / :regress body."""
    examples = body.get("examples")
    if not isinstance(examples, list) or not examples:
        raise invalid("'examples' must be a non-empty list of {feature: value} objects.")
    proto = input_pb2.Input()
    target = proto.example_list_with_context if "context" in body else proto.example_list
    for n, example in enumerate(examples):
        if not isinstance(example, dict):
            raise invalid(f"example {n} must be an object of features")
        target.examples.add().features.CopyFrom(
            tf.train.Features(feature={k: _feature(v, f"example {n} feature {k!r}") for k, v in example.items()}))
    if "context" in body:
        if not isinstance(body["context"], dict):
            raise invalid("'context' must be an object of features")
        target.context.features.CopyFrom(
            tf.train.Features(feature={k: _feature(v, f"context feature {k!r}") for k, v in body["context"].items()}))
    return proto


class _Handler(BaseHTTPRequestHandler):
    runtime: Runtime = None  # set on the subclass made per server
    limits: RestLimits = RestLimits()
    protocol_version = "HTTP/1.1"

    def setup(self):
        self.timeout = self.limits.timeout_s  # StreamRequestHandler sets it on the socket
        super().setup()

    def log_message(self, *args):  # quiet; errors go back to the caller
        pass

    def _send(self, status: int, body: dict, close: bool = False, head_only: bool = False) -> None:
        data = json.dumps(body).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if close:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            if not head_only:  # a HEAD answer has the headers of the body it does not send
                self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            log.info("REST client %s went away before its answer (%d)", self.client_address[0], status)
            self.close_connection = True

    def _body(self) -> dict:
        """The request's JSON object: the declared length checked before anything is read."""
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            raw = self._read_chunked()
        else:
            declared = self.headers.get("Content-Length")
            if declared is None:
                raise HttpError(411, "POST needs a Content-Length header (or Transfer-Encoding: chunked)")
            if not declared.strip().isdigit():
                raise HttpError(400, f"Content-Length {declared[:40]!r} is not a non-negative integer")
            if int(declared) > self.limits.max_request_bytes:
                raise HttpError(413, f"the body ({declared} bytes) is over the limit of "
                                     f"{self.limits.max_request_bytes} bytes (serving.rest_max_request_bytes)")
            raw = self.rfile.read(int(declared))
            if len(raw) < int(declared):
                raise HttpError(400, f"the body ended after {len(raw)} of its {declared} declared bytes")
        try:
            body = json.loads(raw.decode("utf-8") or "{}")
        except UnicodeDecodeError as e:
            raise invalid(f"the body is not UTF-8 (byte {e.start})") from None
        except json.JSONDecodeError as e:
            raise invalid(f"JSON parse error: {e}") from None
        except RecursionError:
            raise invalid("the JSON body is nested too deeply") from None
        if not isinstance(body, dict):
            raise invalid("Request body must be a JSON object.")
        return body

    def _read_chunked(self) -> bytes:
        chunks, total = [], 0
        while True:
            size_line = self.rfile.readline(1024).split(b";")[0].strip()
            try:
                size = int(size_line, 16)
            except ValueError:
                raise HttpError(400, f"malformed chunk size {size_line[:20]!r}") from None
            total += size
            if total > self.limits.max_request_bytes:
                raise HttpError(413, f"the chunked body is over the limit of {self.limits.max_request_bytes} bytes "
                                     "(serving.rest_max_request_bytes)")
            if size == 0:
                while self.rfile.readline(1024).strip():  # trailers
                    pass
                return b"".join(chunks)
            chunks.append(self.rfile.read(size))
            self.rfile.readline(1024)  # the CRLF after the chunk

    def _route(self):
        match = ROUTE.match(self.path.split("?")[0])
        if not match:
            raise ServingError(grpc.StatusCode.NOT_FOUND, f"Malformed request: {self.command} {self.path}")
        spec = model_pb2.ModelSpec(name=match["name"])
        if match["version"]:
            if int(match["version"]) > INT64_MAX:
                raise invalid(f"version {match['version'][:30]} is out of range (at most {INT64_MAX})")
            spec.version.value = int(match["version"])
        if match["label"]:
            spec.version_label = match["label"]
        return match, spec

    def _handle(self, handler):
        try:
            self._send(200, handler())
        except HttpError as e:  # the body was not read (whole): the connection cannot carry another request
            self._send(e.status, {"error": str(e)}, close=True)
        except RowLimitError as e:
            self._send(413, {"error": str(e)})
        except ServingError as e:
            self._send(HTTP_STATUS.get(e.code, 500), {"error": str(e)})
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            log.info("REST client %s went away mid-request", self.client_address[0])
            self.close_connection = True
        except Exception as e:  # the server's own fault: never a traceback to the client, never a dead server
            log.exception("REST %s %s failed", self.command, self.path[:200])
            self._send(500, {"error": f"{type(e).__name__}: {e}"})

    def do_GET(self):  # noqa: N802
        def handle():
            match, spec = self._route()
            if match["verb"]:
                raise invalid(f"{match['verb']} needs POST")
            if match["metadata"]:
                servable = self.runtime.lookup(spec)
                return {"model_spec": {"name": servable.name, "version": str(servable.version), "signature_name": ""},
                        "metadata": {"signature_def": json_format.MessageToDict(signature_def_map(servable))}}
            status = model_status(self.runtime, spec)
            return {"model_version_status": [
                {"version": str(s.version), "state": STATE_NAMES.get(s.state, str(s.state)),
                 "status": {"error_code": ERROR_CODES.get(s.status.error_code, "OK"),
                            "error_message": s.status.error_message}} for s in status.model_version_status]}
        self._handle(handle)

    def __getattr__(self, name: str):
        """Any other HTTP method (PUT, DELETE, PATCH, OPTIONS, TRACE, HEAD, or one of its own):
        TF Serving's answer, 400 with ``{"error": "Malformed request: <METHOD> <path>"}``, instead
        of ``http.server``'s HTML 501 page. Its body, if any, is not read: the connection closes."""
        if name.startswith("do_"):
            return self._malformed
        raise AttributeError(name)

    def _malformed(self) -> None:
        self._send(400, {"error": f"Malformed request: {self.command} {self.path[:200]}"}, close=True,
                   head_only=self.command == "HEAD")

    def do_POST(self):  # noqa: N802
        def handle():
            match, spec = self._route()
            if not match["verb"]:
                raise invalid("POST needs :predict, :classify or :regress")
            body = self._body()
            for key in ("instances", "examples"):
                if isinstance(body.get(key), list):
                    self.runtime.check_rows(len(body[key]), f"'{key}'")
            servable = self.runtime.lookup(spec)
            signature = body.get("signature_name", "")
            if not isinstance(signature, str):
                raise invalid("'signature_name' must be a string")
            if match["verb"] == "predict":
                arrays, row_format = request_arrays(body, servable.input_specs(signature))
                self.runtime.check_rows(max([len(a) for a in arrays.values() if np.ndim(a)] or [0]), "'inputs'")
                return response_body(self.runtime.execute(servable, signature, arrays), row_format)
            method = CLASSIFY_METHOD if match["verb"] == "classify" else REGRESS_METHOD
            outputs = self.runtime.run_examples(servable, signature, example_input(body), method)
            if match["verb"] == "classify":
                result = classification_result(outputs)
                return {"results": [[[c.label, c.score] for c in row.classes] for row in result.classifications]}
            return {"results": [r.value for r in regression_result(outputs).regressions]}
        self._handle(handle)


class _Server(ThreadingHTTPServer):
    # socketserver's listen backlog is 5: 16 clients connecting at once had connections reset
    # (tests/test_serving_fuzz.py's mixed load). TF Serving's REST server queues like the kernel's.
    request_queue_size = 1024


def start_rest_server(runtime: Runtime, host: str, port: int, limits: RestLimits = RestLimits()) -> ThreadingHTTPServer:
    """Starts the REST API in a background thread; ``server.server_address[1]`` is the port."""
    handler = type("RestHandler", (_Handler,), {"runtime": runtime, "limits": limits})
    server = _Server((host, port), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
