"""The Kubernetes manifests for TF Serving, loaded into the kubernetes client's models."""
import json

import pytest
import yaml
from kubernetes import client as k8s

from tfx_bert_app.kubeflow import serving_manifests
from tfx_bert import config as config_lib
from tfx_bert.serving import model_config

KINDS = {"ConfigMap": "V1ConfigMap", "Deployment": "V1Deployment", "Service": "V1Service"}


class _Response:
    def __init__(self, obj):
        self.data = json.dumps(obj)


def _load(document):
    """The document as a kubernetes model; fails on missing required fields, and (by the
    round trip) on fields the API does not have."""
    api = k8s.ApiClient()
    model = api.deserialize(_Response(document), KINDS[document["kind"]])
    assert api.sanitize_for_serialization(model) == document
    return model


@pytest.fixture
def config(tmp_path):
    return config_lib.load_config(overrides=[
        "serving.serving_base=gs://bucket/serving", "finetune.model_name=sentiment", "serving.replicas=3",
        "serving.cpu=4", "serving.memory=8Gi", "serving.enable_batching=true", "serving.max_batch_size=16",
        "serving.intra_op_parallelism=1"])


def test_manifests_are_valid_kubernetes_objects(config, tmp_path):
    path = serving_manifests.write_manifests(config, str(tmp_path))
    documents = list(yaml.safe_load_all(open(path)))
    assert [d["kind"] for d in documents] == ["ConfigMap", "Deployment", "Service"]
    config_map, deployment, service = (_load(d) for d in documents)

    container = deployment.spec.template.spec.containers[0]
    assert container.image == "tensorflow/serving:2.16.1"
    assert deployment.spec.replicas == 3
    assert container.resources.requests == {"cpu": "4", "memory": "8Gi"}
    assert container.readiness_probe.http_get.path == "/v1/models/sentiment"
    assert container.readiness_probe.http_get.port == 8501
    assert "--model_config_file=/etc/tfx-bert/models.config" in container.args
    assert "--batching_parameters_file=/etc/tfx-bert/batching.config" in container.args
    assert "--tensorflow_intra_op_parallelism=1" in container.args
    assert not any(a.startswith("--tensorflow_inter_op_parallelism") for a in container.args)  # 0: TF picks
    mount = container.volume_mounts[0].mount_path
    assert mount == "/etc/tfx-bert"
    assert deployment.spec.template.spec.volumes[0].config_map.name == config_map.metadata.name
    assert "max_batch_size { value: 16 }" in config_map.data["batching.config"]

    # The model config is what TF Serving reads, pointing at the push destination.
    (model,) = model_config.parse_text(config_map.data["models.config"])
    assert (model.name, model.base_path) == ("sentiment", "gs://bucket/serving/sentiment")

    # The Service reaches the Deployment's pods on both ports.
    assert service.spec.selector == deployment.spec.template.metadata.labels
    assert deployment.spec.selector.match_labels == deployment.spec.template.metadata.labels
    assert {p.name: p.port for p in service.spec.ports} == {"grpc": 8500, "http": 8501}
    assert {p.name for p in container.ports} == {"grpc", "http"}


def test_batching_off_leaves_no_batching_flags(tmp_path):
    config = config_lib.load_config(overrides=["serving.serving_base=gs://b/s"])
    _, deployment, _ = serving_manifests.serving_manifests(config)
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert not any("batching" in a for a in args)


def test_the_development_server_reads_the_same_model_config(config, tmp_path):
    """The ConfigMap's model_config_file is accepted by the development server's parser, the
    same text TF Serving reads; a local path in it serves for real."""
    from tfx_bert.serving import server

    config_map = serving_manifests.serving_manifests(config)[0]
    assert model_config.parse_text(config_map["data"]["models.config"])[0].policy == "latest"
    parameters = tmp_path / "batching.config"
    parameters.write_text(config_map["data"]["batching.config"])
    assert server.read_batching_parameters(str(parameters)).max_batch_size == 16
