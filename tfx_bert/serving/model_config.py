"""Which models to serve: TF Serving's ``model_config_file`` (a ModelServerConfig text proto) or
one ``--model_name`` / ``--model_base_path`` pair."""
from __future__ import annotations

import dataclasses

from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """One served model: where its versions are and which of them to serve.

    ``policy``: ``latest`` (the newest ``num_latest``), ``all``, or ``specific`` (``versions``),
    as in TF Serving's ``model_version_policy``. ``labels`` map names to versions.
    """

    name: str
    base_path: str
    policy: str = "latest"
    num_latest: int = 1
    versions: tuple = ()
    labels: tuple = ()  # ((label, version), ...): hashable, like the rest

    def wanted(self, available: set[int]) -> set[int]:
        """The versions on disk this policy serves."""
        if self.policy == "all":
            return set(available)
        if self.policy == "specific":
            return set(self.versions) & set(available)
        return set(sorted(available)[-self.num_latest:]) if available else set()

    @property
    def label_map(self) -> dict[str, int]:
        return dict(self.labels)


def from_proto(config: model_server_config_pb2.ModelServerConfig, source: str = "config") -> list[ModelConfig]:
    """ModelConfigs from a ModelServerConfig message; errors name the model and the field."""
    if config.WhichOneof("config") != "model_config_list":
        raise ValueError(f"{source}: only model_config_list is supported (not custom_model_config).")
    models, names = [], set()
    for entry in config.model_config_list.config:
        where = f"{source}: model {entry.name or '(unnamed)'}"
        if not entry.name or not entry.base_path:
            raise ValueError(f"{where}: name and base_path are required.")
        if entry.name in names:
            raise ValueError(f"{where}: the name appears twice.")
        if entry.model_platform not in ("", "tensorflow"):
            raise ValueError(f"{where}: model_platform must be 'tensorflow', got {entry.model_platform!r}.")
        names.add(entry.name)
        policy = entry.model_version_policy
        kind = policy.WhichOneof("policy_choice") or "latest"
        num_latest = policy.latest.num_versions or 1
        versions = tuple(policy.specific.versions)
        if kind == "specific" and not versions:
            raise ValueError(f"{where}: model_version_policy.specific needs at least one version.")
        labels = tuple(sorted(entry.version_labels.items()))
        models.append(ModelConfig(entry.name, entry.base_path, kind, num_latest, versions, labels))
    return models


def parse_text(text: str, source: str = "model_config_file") -> list[ModelConfig]:
    """ModelConfigs from the text format TF Serving's ``--model_config_file`` takes."""
    config = model_server_config_pb2.ModelServerConfig()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as e:
        raise ValueError(f"{source}: {e}") from None
    return from_proto(config, source)


def read_file(path: str) -> list[ModelConfig]:
    with open(path, encoding="utf-8") as f:
        return parse_text(f.read(), path)


def to_text(models: list[ModelConfig]) -> str:
    """The model_config_file text for ``models`` (what TF Serving itself reads)."""
    config = model_server_config_pb2.ModelServerConfig()
    for model in models:
        entry = config.model_config_list.config.add(name=model.name, base_path=model.base_path,
                                                    model_platform="tensorflow")
        if model.policy == "all":
            entry.model_version_policy.all.SetInParent()
        elif model.policy == "specific":
            entry.model_version_policy.specific.versions.extend(model.versions)
        elif model.num_latest != 1:
            entry.model_version_policy.latest.num_versions = model.num_latest
        for label, version in model.labels:
            entry.version_labels[label] = version
    return text_format.MessageToString(config)


def batching_parameters_text(max_batch_size: int, batch_timeout_micros: int, num_batch_threads: int = 0) -> str:
    """The text of a ``--batching_parameters_file`` (TF Serving's BatchingParameters text proto);
    ``num_batch_threads`` 0 leaves it to the server."""
    text = f"max_batch_size {{ value: {max_batch_size} }}\nbatch_timeout_micros {{ value: {batch_timeout_micros} }}\n"
    if num_batch_threads:
        text += f"num_batch_threads {{ value: {num_batch_threads} }}\n"
    return text


def parallelism_flags(intra_op: int = 0, inter_op: int = 0) -> list[str]:
    """TF Serving's TensorFlow thread-pool flags for the nonzero settings (0: TensorFlow picks)."""
    flags = []
    if intra_op:
        flags.append(f"--tensorflow_intra_op_parallelism={intra_op}")
    if inter_op:
        flags.append(f"--tensorflow_inter_op_parallelism={inter_op}")
    return flags
