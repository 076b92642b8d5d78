"""tfx_bert.serving.manager: a version that fails to load (a corrupt SavedModel) is reported with
TF Serving's END state and an error naming its path, logged once, while every loadable version
serves: the server starts, and a later good version is picked up."""
import json
import logging
import time
import urllib.request

import grpc
from tensorflow_serving.apis import get_model_status_pb2, model_service_pb2_grpc

from tests.helpers import save_text_model
from tfx_bert.serving import client as client_lib
from tfx_bert.serving import server


def _status(port, name):
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = name
    stub = model_service_pb2_grpc.ModelServiceStub(grpc.insecure_channel(f"127.0.0.1:{port}"))
    return {s.version: s for s in stub.GetModelStatus(request, timeout=10).model_version_status}


def test_a_corrupt_version_is_reported_once_and_the_others_serve(tmp_path, tiny_vocab_dir, caplog):
    import numpy as np

    base = tmp_path / "toy"
    save_text_model(base / "1", tiny_vocab_dir, 1.0)
    (base / "2").mkdir()
    (base / "2" / "saved_model.pb").write_bytes(b"\x08\x96\x01 this is not a SavedModel")
    with caplog.at_level(logging.ERROR, logger="tfx_bert.serving"):
        running = server.start_server({"toy": str(base)}, port=0, rest_port=0, poll_seconds=0.2)
        try:
            time.sleep(1.5)  # several polls
            statuses = _status(running.port, "toy")
            assert statuses[1].state == get_model_status_pb2.ModelVersionStatus.AVAILABLE
            assert statuses[2].state == get_model_status_pb2.ModelVersionStatus.END
            assert str(base / "2") in statuses[2].status.error_message and statuses[2].status.error_code != 0
            with urllib.request.urlopen(f"http://127.0.0.1:{running.rest_port}/v1/models/toy", timeout=10) as r:
                rest = {s["version"]: s for s in json.loads(r.read())["model_version_status"]}
            assert rest["2"]["state"] == "END" and str(base / "2") in rest["2"]["status"]["error_message"]
            with client_lib.ServingClient(f"127.0.0.1:{running.port}") as client:  # version 1 still answers
                assert client.predict("toy", {"text": np.array(["the cat"], dtype=object)})["score"].shape == (1,)
            save_text_model(base / "3", tiny_vocab_dir, 3.0)  # a good newer version is picked up
            deadline = time.time() + 30
            while 3 not in _status(running.port, "toy"):
                assert time.time() < deadline
                time.sleep(0.1)
        finally:
            running.stop()
    failures = [r for r in caplog.records if "version 2" in r.getMessage()]
    assert len(failures) == 1 and "\n" not in failures[0].getMessage()  # one line, not one per poll


def test_a_version_whose_variables_arrive_after_its_graph_is_loaded_once_they_do(tmp_path, tiny_vocab_dir):
    """A copy that writes ``saved_model.pb`` before ``variables/`` (as ``gsutil cp -r`` may) first
    fails to load; when the variables arrive, the changed files are tried again."""
    import shutil

    save_text_model(tmp_path / "whole", tiny_vocab_dir, 2.0)
    base = tmp_path / "toy"
    (base / "1").mkdir(parents=True)
    for name in ("saved_model.pb", "assets"):
        source = tmp_path / "whole" / name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, base / "1" / name)
    running = server.start_server({"toy": str(base)}, port=0, rest_port=0, poll_seconds=0.2)
    try:
        deadline = time.time() + 30
        while _status(running.port, "toy").get(1) is None or _status(running.port, "toy")[1].state != \
                get_model_status_pb2.ModelVersionStatus.END:
            assert time.time() < deadline, "the incomplete version never failed"
            time.sleep(0.1)
        time.sleep(0.5)  # more polls: unchanged files are not tried again
        shutil.copytree(tmp_path / "whole" / "variables", base / "1" / "variables")
        while _status(running.port, "toy")[1].state != get_model_status_pb2.ModelVersionStatus.AVAILABLE:
            assert time.time() < deadline, "the completed version was never tried again"
            time.sleep(0.1)
    finally:
        running.stop()
