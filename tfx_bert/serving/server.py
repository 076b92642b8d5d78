"""A development server that speaks TF Serving's gRPC and REST APIs over a model base path.

TF Serving's own binary cannot be installed on machines without Docker or its Debian repository,
so this server stands in for it on a developer's machine and in CI: same layout
(``<base>/<model_name>/<version>/saved_model.pb``), same flags for what it implements, same
protos (``tensorflow_serving.apis``), same status codes. Like TF Serving it refuses a model whose
graph uses op types TF Serving 2.16 lacks.

    python -m tfx_bert.serving.server --model_name sentiment --model_base_path work/serving/sentiment \\
        [--rest_api_port 8501] [--model_config_file models.config] [--enable_batching \\
        --batching_parameters_file batching.config] [--ssl_config_file ssl.config]
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import re
import signal
import threading
from concurrent import futures

import grpc
from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

from tfx_bert.config import ServingConfig
from tfx_bert.serving import model_config
from tfx_bert.serving.batching import BatchingParameters, BatchScheduler
from tfx_bert.serving.grpc_api import ModelService, PredictionService, Runtime
from tfx_bert.serving.manager import ModelManager
from tfx_bert.serving.model_config import ModelConfig
from tfx_bert.serving.servable import ServingError  # noqa: F401  (re-exported for callers)

log = logging.getLogger("tfx_bert.serving")


@dataclasses.dataclass(frozen=True)
class TlsConfig:
    """TF Serving's SSLConfig: PEM contents, not paths."""

    server_key: str
    server_cert: str
    custom_ca: str = ""
    client_verify: bool = False


class RunningServer:
    """A started server. Unpacks as ``(grpc_server, grpc_port, manager)`` for brevity."""

    def __init__(self, grpc_server, port, manager, rest_server=None):
        self.grpc_server, self.port, self.manager, self.rest_server = grpc_server, port, manager, rest_server

    @property
    def rest_port(self) -> int | None:
        return self.rest_server.server_address[1] if self.rest_server else None

    def __iter__(self):
        return iter((self.grpc_server, self.port, self.manager))

    def stop(self, grace: float = 0) -> None:
        self.manager.stop()
        if self.rest_server:
            self.rest_server.shutdown()
            self.rest_server.server_close()
        self.grpc_server.stop(grace).wait()


def _model_configs(models) -> list[ModelConfig]:
    if isinstance(models, dict):
        return [ModelConfig(name, os.path.abspath(path)) for name, path in models.items()]
    return list(models)


def start_server(models, host: str = "127.0.0.1", port: int = 8500, poll_seconds: float = 0,
                 workers: int = 16, check_ops: bool = True, rest_port: int | None = None,
                 batching: BatchingParameters | None = None, tls: TlsConfig | None = None,
                 rest_limits=None, max_rows: int = ServingConfig.max_rows) -> RunningServer:
    """Starts the gRPC server (and the REST API when ``rest_port`` is not None; ``rest_limits``:
    a ``rest_api.RestLimits``, default its defaults). ``max_rows``: rows one request may hold,
    over both APIs.

    ``models``: {name: base_path} or a list of ModelConfig. ``port=0`` / ``rest_port=0`` pick
    free ports.
    """
    manager = ModelManager(_model_configs(models), poll_seconds=poll_seconds, check_ops=check_ops)
    runtime = Runtime(manager, BatchScheduler(batching) if batching else None, max_rows)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers),
                         options=[("grpc.max_receive_message_length", 64 << 20),
                                  ("grpc.max_send_message_length", 64 << 20)])
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(PredictionService(runtime), server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelService(runtime), server)
    address = f"{host}:{port}"
    if tls:
        credentials = grpc.ssl_server_credentials(
            [(tls.server_key.encode(), tls.server_cert.encode())],
            root_certificates=tls.custom_ca.encode() or None, require_client_auth=tls.client_verify)
        bound = server.add_secure_port(address, credentials)
    else:
        bound = server.add_insecure_port(address)
    if bound == 0:
        manager.stop()
        raise OSError(f"Could not bind {address}; is another server using it?")
    server.start()
    rest = None
    if rest_port is not None:
        from tfx_bert.serving.rest_api import RestLimits, start_rest_server

        rest = start_rest_server(runtime, host, rest_port, rest_limits or RestLimits())
    return RunningServer(server, bound, manager, rest)


def _text_proto_fields(path: str) -> dict[str, str]:
    """``key: value`` and ``key { value: N }`` pairs of a small text proto (batching / SSL files)."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    fields = {k: v for k, v in re.findall(r"(\w+)\s*\{\s*value:\s*([^\s}]+)\s*\}", text)}
    for key, value in re.findall(r"^\s*(\w+)\s*:\s*(\"(?:[^\"\\]|\\.)*\"|\S+)", text, re.M):
        fields.setdefault(key, value)
    return fields


def read_batching_parameters(path: str) -> BatchingParameters:
    """TF Serving's ``--batching_parameters_file`` (max_batch_size, batch_timeout_micros,
    max_enqueued_batches, num_batch_threads; other fields are ignored)."""
    fields = _text_proto_fields(path)
    defaults = BatchingParameters()
    return BatchingParameters(
        max_batch_size=int(fields.get("max_batch_size", defaults.max_batch_size)),
        batch_timeout_s=int(fields.get("batch_timeout_micros", defaults.batch_timeout_s * 1e6)) / 1e6,
        max_enqueued_batches=int(fields.get("max_enqueued_batches", defaults.max_enqueued_batches)),
        num_batch_threads=int(fields.get("num_batch_threads", defaults.num_batch_threads)))


def read_ssl_config(path: str) -> TlsConfig:
    """TF Serving's ``--ssl_config_file`` (server_key, server_cert, custom_ca, client_verify)."""
    fields = _text_proto_fields(path)

    def text(key):
        value = fields.get(key, '""')
        return bytes(value.strip('"'), "utf-8").decode("unicode_escape")

    if not text("server_key") or not text("server_cert"):
        raise ValueError(f"{path}: server_key and server_cert are required.")
    return TlsConfig(text("server_key"), text("server_cert"), text("custom_ca"),
                     fields.get("client_verify", "false").lower() == "true")


def set_tensorflow_parallelism(intra_op: int = 0, inter_op: int = 0) -> None:
    """TF Serving's ``--tensorflow_intra_op_parallelism`` / ``--tensorflow_inter_op_parallelism``;
    0 leaves TensorFlow's choice. Must run before the first model loads."""
    import tensorflow as tf

    try:
        if intra_op:
            tf.config.threading.set_intra_op_parallelism_threads(intra_op)
        if inter_op:
            tf.config.threading.set_inter_op_parallelism_threads(inter_op)
    except RuntimeError:
        raise RuntimeError("TensorFlow has already started in this process, so its thread pools are "
                           "fixed; start the server in a fresh process to set --tensorflow_*_op_parallelism."
                           ) from None


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="TF Serving-compatible development server (gRPC + REST).")
    parser.add_argument("--model_name", default="")
    parser.add_argument("--model_base_path", default="")
    parser.add_argument("--model_config_file", default="", help="ModelServerConfig text proto (several models)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8500)
    parser.add_argument("--rest_api_port", type=int, default=0, help="REST API port (0: off)")
    parser.add_argument("--file_system_poll_wait_seconds", "--poll_seconds", dest="poll_seconds",
                        type=float, default=2.0, help="how often to look for new versions (0: never)")
    parser.add_argument("--enable_batching", action="store_true")
    parser.add_argument("--batching_parameters_file", default="")
    parser.add_argument("--ssl_config_file", default="")
    parser.add_argument("--tensorflow_intra_op_parallelism", type=int, default=0,
                        help="threads one op may use (0: TensorFlow picks, one per core)")
    parser.add_argument("--tensorflow_inter_op_parallelism", type=int, default=0,
                        help="ops run at once (0: TensorFlow picks)")
    defaults = ServingConfig()
    parser.add_argument("--rest_api_timeout_in_ms", type=int, default=defaults.rest_timeout_ms,
                        help="an idle or slow REST connection is closed after this")
    parser.add_argument("--rest_max_request_bytes", type=int, default=defaults.rest_max_request_bytes,
                        help="a REST body declared larger is refused (413) before it is read")
    parser.add_argument("--max_rows", "--rest_max_rows", dest="max_rows", type=int, default=defaults.max_rows,
                        help="rows (instances, examples, an input's first dimension) per request, REST and gRPC")
    parser.add_argument("--port_file", default="", help="write the bound port here once serving")
    args = parser.parse_args(argv)
    set_tensorflow_parallelism(args.tensorflow_intra_op_parallelism, args.tensorflow_inter_op_parallelism)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if args.model_config_file:
        models = model_config.read_file(args.model_config_file)
    elif args.model_name and args.model_base_path:
        models = {args.model_name: args.model_base_path}
    else:
        parser.error("give --model_config_file, or --model_name with --model_base_path")
    batching = None
    if args.enable_batching:
        batching = (read_batching_parameters(args.batching_parameters_file)
                    if args.batching_parameters_file else BatchingParameters())
    tls = read_ssl_config(args.ssl_config_file) if args.ssl_config_file else None
    from tfx_bert.serving.rest_api import RestLimits

    limits = RestLimits(args.rest_max_request_bytes, args.rest_api_timeout_in_ms / 1000)
    running = start_server(models, args.host, args.port, args.poll_seconds, rest_port=args.rest_api_port or None,
                           batching=batching, tls=tls, rest_limits=limits, max_rows=args.max_rows)
    log.info("Serving gRPC on %s:%d%s", args.host, running.port,
             f", REST on {args.host}:{running.rest_port}" if running.rest_port else "")
    if args.port_file:
        with open(args.port_file + ".tmp", "w") as f:
            f.write(str(running.port))
        os.replace(args.port_file + ".tmp", args.port_file)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    done.wait()
    running.stop(grace=2)


if __name__ == "__main__":
    main()
