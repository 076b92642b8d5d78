"""Kubernetes manifests that run the official TF Serving image over the push destination.

    tfx-bert serving-manifests --config prod.yaml --output k8s/   # then: kubectl apply -f k8s/

ConfigMap (TF Serving's model_config_file, and batching parameters) + Deployment (readiness from
the model's status on the REST port, resource requests and limits) + Service (gRPC 8500, REST
8501). The models are the fine-tuning config's ``finetune.model_name`` under
``serving.serving_base``; TF Serving polls that path and loads each version the Pusher writes.
"""
from __future__ import annotations

import os

import yaml

from tfx_bert.config import ProjectConfig
from tfx_bert.serving import model_config
from tfx_bert.serving.model_config import ModelConfig

CONFIG_MOUNT = "/etc/tfx-bert"
GRPC_PORT, REST_PORT = 8500, 8501


def _models(config: ProjectConfig) -> list[ModelConfig]:
    name = config.finetune.model_name
    return [ModelConfig(name, os.path.join(config.serving_base, name))]


def serving_manifests(config: ProjectConfig, models: list[ModelConfig] | None = None) -> list[dict]:
    """[ConfigMap, Deployment, Service] for ``config.serving``."""
    s = config.serving
    models = models or _models(config)
    app = f"tfx-bert-serving-{models[0].name}"
    labels = {"app.kubernetes.io/name": app, "app.kubernetes.io/part-of": "tfx-bert"}
    files = {"models.config": model_config.to_text(models)}
    args = [f"--port={GRPC_PORT}", f"--rest_api_port={REST_PORT}",
            f"--model_config_file={CONFIG_MOUNT}/models.config",
            f"--file_system_poll_wait_seconds={max(1, int(s.poll_seconds))}"]
    if s.enable_batching:
        files["batching.config"] = model_config.batching_parameters_text(
            s.max_batch_size, s.batch_timeout_micros, s.num_batch_threads)
        args += ["--enable_batching=true", f"--batching_parameters_file={CONFIG_MOUNT}/batching.config"]
    args += model_config.parallelism_flags(s.intra_op_parallelism, s.inter_op_parallelism)
    container = {
        "name": "tensorflow-serving",
        "image": s.image,
        "args": args,
        "ports": [{"name": "grpc", "containerPort": GRPC_PORT}, {"name": "http", "containerPort": REST_PORT}],
        # Ready once the model has an AVAILABLE version: TF Serving answers 404 until then.
        "readinessProbe": {"httpGet": {"path": f"/v1/models/{models[0].name}", "port": REST_PORT},
                           "initialDelaySeconds": 5, "periodSeconds": 5, "failureThreshold": 3},
        "livenessProbe": {"tcpSocket": {"port": GRPC_PORT}, "initialDelaySeconds": 30, "periodSeconds": 10},
        "resources": {"requests": {"cpu": s.cpu, "memory": s.memory}, "limits": {"memory": s.memory}},
        "volumeMounts": [{"name": "config", "mountPath": CONFIG_MOUNT, "readOnly": True}],
    }
    pod_spec = {"containers": [container],
                "volumes": [{"name": "config", "configMap": {"name": f"{app}-config"}}]}
    if s.service_account:
        pod_spec["serviceAccountName"] = s.service_account
    metadata = {"name": app, "namespace": s.namespace, "labels": labels}
    return [
        {"apiVersion": "v1", "kind": "ConfigMap",
         "metadata": dict(metadata, name=f"{app}-config"), "data": files},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": metadata,
         "spec": {"replicas": s.replicas, "selector": {"matchLabels": labels},
                  "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
                  "template": {"metadata": {"labels": labels}, "spec": pod_spec}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": metadata,
         "spec": {"selector": labels, "ports": [
             {"name": "grpc", "port": GRPC_PORT, "targetPort": "grpc"},
             {"name": "http", "port": REST_PORT, "targetPort": "http"}]}},
    ]


def write_manifests(config: ProjectConfig, output_dir: str) -> str:
    """Writes serving.yaml (all three documents) into ``output_dir``; returns its path."""
    os.makedirs(output_dir, exist_ok=True)
    path = os.path.join(output_dir, "serving.yaml")
    with open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump_all(serving_manifests(config), f, sort_keys=False)
    return path
