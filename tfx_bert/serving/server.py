"""A development server that speaks TF Serving's gRPC API over a model base path.

TF Serving's own binary cannot be installed on machines without Docker or its Debian repository,
so this server stands in for it on a developer's machine and in CI: same layout
(``<base>/<model_name>/<version>/saved_model.pb``), same protos (``tensorflow_serving.apis``),
same status codes (NOT_FOUND for an unknown model/version, INVALID_ARGUMENT for bad inputs).
Like TF Serving it refuses a model whose graph uses op types TF Serving 2.16 lacks.

    python -m tfx_bert.serving.server --model_name sentiment --model_base_path work/serving/sentiment
"""
from __future__ import annotations

import argparse
import logging
import os
import signal
import threading
import time
from concurrent import futures

import grpc
import numpy as np
import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers the tensorflow-text ops TF Serving links in)
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from tfx_bert.serving import op_check

log = logging.getLogger("tfx_bert.serving")


class ServingError(Exception):
    """An error with the gRPC status code TF Serving would return."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code = code


class LoadedVersion:
    """One loaded SavedModel version: its callable signatures and its SignatureDefs."""

    def __init__(self, name: str, version: int, path: str, check_ops: bool = True):
        if check_ops:
            op_check.check_servable(path)
        self.name, self.version, self.path = name, version, path
        self.model = tf.saved_model.load(path)
        self.signatures = dict(self.model.signatures)
        saved_model = saved_model_pb2.SavedModel()
        with open(os.path.join(path, "saved_model.pb"), "rb") as f:
            saved_model.ParseFromString(f.read())
        self.signature_defs = dict(saved_model.meta_graphs[0].signature_def)

    def run(self, signature_name: str, inputs: dict, output_filter) -> dict:
        name = signature_name or "serving_default"
        if name not in self.signatures:
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                               f"Serving signature name: \"{name}\" not found in signature def; "
                               f"available: {sorted(self.signatures)}")
        fn = self.signatures[name]
        _, kwargs_spec = fn.structured_input_signature
        expected = set(kwargs_spec)
        if set(inputs) != expected:
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                               f"input keys {sorted(inputs)} do not match signature "
                               f"{name!r} inputs {sorted(expected)}")
        args = {}
        for key, proto in inputs.items():
            spec = kwargs_spec[key]
            try:
                value = tf.make_ndarray(proto)
            except Exception as e:  # a malformed TensorProto
                raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, f"input {key!r}: {e}") from None
            if tf.as_dtype(proto.dtype) != spec.dtype:
                raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                                   f"input {key!r} has dtype {tf.as_dtype(proto.dtype).name}, "
                                   f"signature expects {spec.dtype.name}")
            if not spec.shape.is_compatible_with(value.shape):
                raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                                   f"input {key!r} has shape {list(value.shape)}, signature "
                                   f"expects {spec.shape.as_list()}")
            args[key] = tf.constant(value, dtype=spec.dtype)
        try:
            outputs = fn(**args)
        except (tf.errors.InvalidArgumentError, ValueError) as e:
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, str(e).split("\n")[0]) from None
        wanted = list(output_filter) or sorted(outputs)
        unknown = [k for k in wanted if k not in outputs]
        if unknown:
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                               f"output_filter names unknown outputs {unknown}; available: {sorted(outputs)}")
        return {k: np.asarray(outputs[k]) for k in wanted}


def _versions(base_path: str) -> dict[int, str]:
    """Numeric version directories holding a SavedModel (TF Serving's layout)."""
    found = {}
    if os.path.isdir(base_path):
        for entry in os.listdir(base_path):
            path = os.path.join(base_path, entry)
            if entry.isdigit() and os.path.exists(os.path.join(path, "saved_model.pb")):
                found[int(entry)] = path
    return found


class ModelManager:
    """Serves the latest version of each model; polls for new ones and swaps them in."""

    def __init__(self, models: dict[str, str], poll_seconds: float = 0, check_ops: bool = True):
        self._bases = dict(models)
        self._check_ops = check_ops
        self._lock = threading.Lock()
        self._loaded: dict[str, LoadedVersion] = {}
        self._stop = threading.Event()
        for name in self._bases:
            self.refresh(name)
        if poll_seconds > 0:
            threading.Thread(target=self._poll, args=(poll_seconds,), daemon=True).start()

    def refresh(self, name: str) -> None:
        versions = _versions(self._bases[name])
        if not versions:
            log.warning("No versions of model %s under %s yet", name, self._bases[name])
            return
        newest = max(versions)
        current = self._loaded.get(name)
        if current is None or current.version != newest:
            loaded = LoadedVersion(name, newest, versions[newest], self._check_ops)
            with self._lock:
                self._loaded[name] = loaded
            log.info("Serving %s version %d from %s", name, newest, versions[newest])

    def _poll(self, seconds: float) -> None:
        while not self._stop.wait(seconds):
            for name in self._bases:
                try:
                    self.refresh(name)
                except Exception:  # keep serving the old version
                    log.exception("Could not load a new version of %s", name)

    def get(self, name: str, version: int | None) -> LoadedVersion:
        with self._lock:
            loaded = self._loaded.get(name)
        if name not in self._bases:
            raise ServingError(grpc.StatusCode.NOT_FOUND, f"Servable not found for request: Latest({name})")
        if loaded is None or (version and version != loaded.version):
            what = f"Specific({name}, {version})" if version else f"Latest({name})"
            raise ServingError(grpc.StatusCode.NOT_FOUND, f"Servable not found for request: {what}")
        return loaded

    def stop(self) -> None:
        self._stop.set()


def _abort(context, error: ServingError):
    context.abort(error.code, str(error))


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, manager: ModelManager):
        self._manager = manager

    def Predict(self, request, context):  # noqa: N802 (gRPC method name)
        try:
            version = request.model_spec.version.value if request.model_spec.HasField("version") else None
            loaded = self._manager.get(request.model_spec.name, version)
            outputs = loaded.run(request.model_spec.signature_name, dict(request.inputs),
                                 request.output_filter)
        except ServingError as e:
            return _abort(context, e)
        response = predict_pb2.PredictResponse()
        response.model_spec.name = loaded.name
        response.model_spec.version.value = loaded.version
        response.model_spec.signature_name = request.model_spec.signature_name or "serving_default"
        for key, value in outputs.items():
            response.outputs[key].CopyFrom(tf.make_tensor_proto(value))
        return response

    def GetModelMetadata(self, request, context):  # noqa: N802
        try:
            if list(request.metadata_field) not in ([], ["signature_def"]):
                raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                                   "Metadata field signature_def is the only one supported")
            version = request.model_spec.version.value if request.model_spec.HasField("version") else None
            loaded = self._manager.get(request.model_spec.name, version)
        except ServingError as e:
            return _abort(context, e)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = loaded.name
        response.model_spec.version.value = loaded.version
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        for key, value in loaded.signature_defs.items():
            signature_map.signature_def[key].CopyFrom(value)
        response.metadata["signature_def"].Pack(signature_map)
        return response


class ModelService(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, manager: ModelManager):
        self._manager = manager

    def GetModelStatus(self, request, context):  # noqa: N802
        try:
            version = request.model_spec.version.value if request.model_spec.HasField("version") else None
            loaded = self._manager.get(request.model_spec.name, version)
        except ServingError as e:
            return _abort(context, e)
        response = get_model_status_pb2.GetModelStatusResponse()
        status = response.model_version_status.add()
        status.version = loaded.version
        status.state = get_model_status_pb2.ModelVersionStatus.AVAILABLE
        return response


def start_server(models: dict[str, str], host: str = "127.0.0.1", port: int = 8500,
                 poll_seconds: float = 0, workers: int = 8, check_ops: bool = True):
    """Starts the gRPC server; returns (server, bound_port, manager). ``port=0`` picks a free one."""
    manager = ModelManager(models, poll_seconds=poll_seconds, check_ops=check_ops)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers),
                         options=[("grpc.max_receive_message_length", 64 << 20),
                                  ("grpc.max_send_message_length", 64 << 20)])
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(PredictionService(manager), server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelService(manager), server)
    bound = server.add_insecure_port(f"{host}:{port}")
    if bound == 0:
        raise OSError(f"Could not bind {host}:{port}; is another server using it?")
    server.start()
    return server, bound, manager


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="TF Serving-compatible development server (gRPC).")
    parser.add_argument("--model_name", required=True)
    parser.add_argument("--model_base_path", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8500)
    parser.add_argument("--poll_seconds", type=float, default=2.0,
                        help="how often to look for new versions (0: never)")
    parser.add_argument("--port_file", default="", help="write the bound port here once serving")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    server, port, manager = start_server({args.model_name: os.path.abspath(args.model_base_path)},
                                         args.host, args.port, args.poll_seconds)
    log.info("Serving gRPC on %s:%d", args.host, port)
    if args.port_file:
        with open(args.port_file + ".tmp", "w") as f:
            f.write(str(port))
        os.replace(args.port_file + ".tmp", args.port_file)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    done.wait()
    manager.stop()
    server.stop(grace=2).wait()


if __name__ == "__main__":
    main()
