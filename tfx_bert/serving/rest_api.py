"""TF Serving's REST API over the same runtime as the gRPC services.

    GET  /v1/models/<name>[/versions/<v> | /labels/<label>]            model status
    GET  /v1/models/<name>[...]/metadata                               signature defs
    POST /v1/models/<name>[...]:predict   {"instances": [...]} (row) or {"inputs": ...} (columnar)
    POST /v1/models/<name>[...]:classify  {"examples": [{feature: value}], "context": {...}}
    POST /v1/models/<name>[...]:regress

Binary strings travel as ``{"b64": "..."}``, as in TF Serving. Errors are ``{"error": "..."}``
with 400 (INVALID_ARGUMENT), 404 (NOT_FOUND) or 500.
"""
from __future__ import annotations

import base64
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
import numpy as np
import tensorflow as tf
from google.protobuf import json_format
from tensorflow_serving.apis import input_pb2, model_pb2

from tfx_bert.serving.grpc_api import (
    Runtime,
    classification_result,
    model_status,
    regression_result,
    signature_def_map,
)
from tfx_bert.serving.servable import CLASSIFY_METHOD, REGRESS_METHOD, ServingError, invalid

ROUTE = re.compile(r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>\d+)|/labels/(?P<label>[^/:]+))?"
                   r"(?:(?P<metadata>/metadata)|:(?P<verb>predict|classify|regress))?$")
HTTP_STATUS = {grpc.StatusCode.INVALID_ARGUMENT: 400, grpc.StatusCode.NOT_FOUND: 404}
STATE_NAMES = {30: "AVAILABLE"}


def _decode_strings(value):
    if isinstance(value, dict) and set(value) == {"b64"}:
        return base64.b64decode(value["b64"])
    if isinstance(value, list):
        return [_decode_strings(v) for v in value]
    return value.encode() if isinstance(value, str) else value


def to_array(values, spec, key: str) -> np.ndarray:
    """JSON values -> an array of the signature input's dtype."""
    try:
        if spec.dtype == tf.string:
            return np.array(_decode_strings(values), dtype=object)
        return np.array(values, dtype=spec.dtype.as_numpy_dtype)
    except (TypeError, ValueError) as e:
        raise invalid(f"input {key!r} cannot be read as {spec.dtype.name}: {e}") from None


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
            missing = [k for k in specs if any(k not in i for i in instances)]
            if missing or any(set(i) - set(specs) for i in instances):
                raise invalid(f"each instance needs exactly the inputs {sorted(specs)}; missing {missing}")
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


def _feature(value) -> tf.train.Feature:
    values = value if isinstance(value, list) else [value]
    values = [_decode_strings(v) if isinstance(v, (str, dict)) else v for v in values]
    if all(isinstance(v, bytes) for v in values):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=values))
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=values))
    if all(isinstance(v, (int, float)) for v in values):
        return tf.train.Feature(float_list=tf.train.FloatList(value=values))
    raise invalid(f"feature value {value!r} mixes types")


def example_input(body: dict) -> input_pb2.Input:
    """The Input proto of a :classify / :regress body."""
    examples = body.get("examples")
    if not isinstance(examples, list) or not examples:
        raise invalid("'examples' must be a non-empty list of {feature: value} objects.")
    proto = input_pb2.Input()
    target = proto.example_list_with_context if "context" in body else proto.example_list
    for example in examples:
        if not isinstance(example, dict):
            raise invalid("each example must be an object of features")
        target.examples.add().features.CopyFrom(
            tf.train.Features(feature={k: _feature(v) for k, v in example.items()}))
    if "context" in body:
        target.context.features.CopyFrom(
            tf.train.Features(feature={k: _feature(v) for k, v in body["context"].items()}))
    return proto


class _Handler(BaseHTTPRequestHandler):
    runtime: Runtime = None  # set on the subclass made per server
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # quiet; errors go back to the caller
        pass

    def _send(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _route(self):
        match = ROUTE.match(self.path.split("?")[0])
        if not match:
            raise ServingError(grpc.StatusCode.NOT_FOUND, f"Malformed request: {self.command} {self.path}")
        spec = model_pb2.ModelSpec(name=match["name"])
        if match["version"]:
            spec.version.value = int(match["version"])
        if match["label"]:
            spec.version_label = match["label"]
        return match, spec

    def _handle(self, handler):
        try:
            self._send(200, handler())
        except ServingError as e:
            self._send(HTTP_STATUS.get(e.code, 500), {"error": str(e)})
        except Exception as e:  # never a traceback to the client, never a dead server
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
                 "status": {"error_code": "OK", "error_message": ""}} for s in status.model_version_status]}
        self._handle(handle)

    def do_POST(self):  # noqa: N802
        def handle():
            match, spec = self._route()
            if not match["verb"]:
                raise invalid("POST needs :predict, :classify or :regress")
            length = int(self.headers.get("Content-Length") or 0)
            try:
                body = json.loads(self.rfile.read(length) or b"{}")
            except json.JSONDecodeError as e:
                raise invalid(f"JSON parse error: {e}") from None
            if not isinstance(body, dict):
                raise invalid("Request body must be a JSON object.")
            servable = self.runtime.lookup(spec)
            signature = body.get("signature_name", "")
            if match["verb"] == "predict":
                arrays, row_format = request_arrays(body, servable.input_specs(signature))
                return response_body(self.runtime.execute(servable, signature, arrays), row_format)
            method = CLASSIFY_METHOD if match["verb"] == "classify" else REGRESS_METHOD
            outputs = self.runtime.run_examples(servable, signature, example_input(body), method)
            if match["verb"] == "classify":
                result = classification_result(outputs)
                return {"results": [[[c.label, c.score] for c in row.classes] for row in result.classifications]}
            return {"results": [r.value for r in regression_result(outputs).regressions]}
        self._handle(handle)


def start_rest_server(runtime: Runtime, host: str, port: int) -> ThreadingHTTPServer:
    """Starts the REST API in a background thread; ``server.server_address[1]`` is the port."""
    handler = type("RestHandler", (_Handler,), {"runtime": runtime})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
