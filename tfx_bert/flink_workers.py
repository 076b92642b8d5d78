"""The Python SDK workers of a local Flink cluster: a Beam worker pool (EXTERNAL environment)
that starts one SDK harness process per request, with this interpreter.

Beam's own pool (``apache_beam.runners.worker.worker_pool_main``) does not serve two
TaskManagers. Each TaskManager numbers its workers from 1, the pool keeps one process per
worker id, and a TaskManager that closes its worker "1-1" makes the pool kill the other
TaskManager's "1-1" before it has connected; that TaskManager then waits for it forever (seen
here: a two-TaskManager job hung at its second stage). It also starts ``python`` from PATH, which
need not be this environment. Here every request gets its own process (this interpreter, its
output in the log directory), and a stop request kills nothing: a harness exits by itself when the
runner closes its control stream, and the pool reaps it then; what is left is killed when the pool
stops.

A harness process is forked from a server that imported Beam's SDK worker and the libraries the
pipelines' DoFns unpickle into (TensorFlow, TFT, TFDV: ``tfx_bert/preloaded.py``), so a worker
does not spend its first seconds importing them; a run of the Flink test starts 34-74 of them.
"""
from __future__ import annotations

import argparse
import itertools
import logging
import os
import signal
import threading
from concurrent import futures

from tfx_bert import preloaded

# What a harness imports before its first bundle: the SDK worker, and the libraries of the Beam
# steps' DoFns (ExampleGens, vocabulary, pretraining data, StatisticsGen, Transform, BulkInferrer).
WORKER_MODULES = ("apache_beam.runners.worker.sdk_worker", "tensorflow", "tensorflow_text", "tensorflow_transform",
                  "tensorflow_data_validation", "tfx_bsl.public.beam")


def _harness(url: str, worker_id: str, log_path: str) -> None:
    """One SDK harness process: serves the runner's control stream at ``url`` until it closes."""
    preloaded.redirect_output(log_path)
    from apache_beam.runners.worker.sdk_worker import SdkHarness

    SdkHarness(url, worker_id=worker_id, state_cache_size=0, data_buffer_time_limit_ms=-1).run()


class WorkerPool:
    """The ``BeamFnExternalWorkerPool`` service; see the module docstring."""

    def __init__(self, log_dir: str):
        self.log_dir = log_dir
        self._processes: list = []  # multiprocessing.Process
        self._lock = threading.Lock()
        self._numbers = itertools.count(1)

    def StartWorker(self, request, context):  # noqa: N802 (gRPC method name)
        from apache_beam.portability.api import beam_fn_api_pb2

        log_path = os.path.join(self.log_dir, f"worker-{next(self._numbers)}-{request.worker_id}.log")
        try:
            process = preloaded.start(_harness, (request.control_endpoint.url, request.worker_id, log_path),
                                      WORKER_MODULES)
        except OSError as e:
            return beam_fn_api_pb2.StartWorkerResponse(error=f"could not start an SDK worker: {e}")
        with self._lock:
            self._processes = [p for p in self._processes if p.is_alive()] + [process]
        logging.info("worker %s started (pid %d, log %s)", request.worker_id, process.pid, log_path)
        return beam_fn_api_pb2.StartWorkerResponse()

    def StopWorker(self, request, context):  # noqa: N802
        from apache_beam.portability.api import beam_fn_api_pb2

        with self._lock:
            self._processes = [p for p in self._processes if p.is_alive()]
        return beam_fn_api_pb2.StopWorkerResponse()

    def stop_all(self) -> None:
        with self._lock:
            for process in self._processes:
                if process.is_alive():
                    process.kill()
                    process.join()


def serve(port: int, log_dir: str) -> None:
    import grpc
    from apache_beam.portability.api import beam_fn_api_pb2_grpc

    os.makedirs(log_dir, exist_ok=True)
    pool = WorkerPool(log_dir)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    beam_fn_api_pb2_grpc.add_BeamFnExternalWorkerPoolServicer_to_server(pool, server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    logging.info("Beam worker pool on 127.0.0.1:%d", port)
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    signal.signal(signal.SIGINT, lambda *_: stopped.set())
    stopped.wait()
    server.stop(grace=None)
    pool.stop_all()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log-dir", required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    serve(args.port, args.log_dir)


if __name__ == "__main__":
    main()
