"""What both pipeline factories and the runners share: metadata store, input resolution."""
from __future__ import annotations

import os

from ml_metadata.metadata_store import metadata_store
from tfx import v1 as tfx

from tfx_bert import demo_data
from tfx_bert.config import DEMO_CONFIG, FinetuneConfig, ProjectConfig, load_config


def metadata_config(config: ProjectConfig):
    """One SQLite MLMD store for all of a project's pipelines (so fine-tuning finds encoders)."""
    os.makedirs(os.path.dirname(config.metadata_path), exist_ok=True)
    return tfx.orchestration.metadata.sqlite_metadata_connection_config(config.metadata_path)


def corpus_pattern(config: ProjectConfig) -> str:
    """The configured corpus glob, or the embedded demo corpus (generated on first use)."""
    if config.pretrain.corpus_pattern:
        return config.pretrain.corpus_pattern
    return demo_data.write_demo_data(config.data_dir)["corpus"]


def with_task_data(config: ProjectConfig) -> tuple[ProjectConfig, str]:
    """(config, task data path): the configured data directory, or the task's embedded demo
    data with the loader settings that read it."""
    import dataclasses

    from tfx_bert import tasks

    task = tasks.get_task(config.finetune.task)
    if task.settings:
        config = dataclasses.replace(config, finetune=dataclasses.replace(config.finetune, **dict(task.settings)))
    if config.finetune.data_dir:
        return config, config.finetune.data_dir
    path = demo_data.write_demo_data(config.data_dir)[task.demo_data]
    # The demo's settings fill in what the user left at its default (the dataclass's or the demo
    # configuration's): an explicit ``--set finetune.accuracy_threshold=...`` still wins.
    defaults = (FinetuneConfig(), load_config(DEMO_CONFIG).finetune)
    settings = {k: v.format(data=path) if isinstance(v, str) else v for k, v in task.demo_settings
                if any(getattr(config.finetune, k) == getattr(d, k) for d in defaults)}
    finetune = dataclasses.replace(config.finetune, **settings)
    return dataclasses.replace(config, finetune=finetune), path


def latest_encoder_uri(config: ProjectConfig) -> str:
    """The encoder directory of the newest Model the pretraining pipeline produced.

    Raises a clear error when pretraining has not run yet.
    """
    store = metadata_store.MetadataStore(metadata_config(config))
    name = config.pretrain.pipeline_name
    context = store.get_context_by_type_and_name("pipeline", name)
    model_type = store.get_artifact_type("Model") if context else None
    if context and model_type:
        models = [a for a in store.get_artifacts_by_context(context.id)
                  if a.type_id == model_type.id and a.state == a.LIVE]
        if models:
            newest = max(models, key=lambda a: (a.create_time_since_epoch, a.id))
            return os.path.join(newest.uri, "Format-Serving")
    raise FileNotFoundError(
        f"No pretrained encoder found in {config.metadata_path} for pipeline {name!r}. "
        "Run the pretraining pipeline first (tfx-bert pretrain) or set finetune.encoder_uri "
        "to an encoder / keras-hub preset directory.")


def encoder_uri(config: ProjectConfig) -> str:
    """The configured encoder, or the latest pretrained one.

    A local google-research TF1 checkpoint directory (with bert_config.json) is converted once
    into an encoder directory under ``<work_dir>/converted/``. Remote paths (gs://...) are used
    as they are: the pipeline may be compiled where they cannot be read, so convert remote TF1
    checkpoints with ``tfx-bert convert-checkpoint`` first.
    """
    import tensorflow as tf

    uri = config.finetune.encoder_uri
    if not uri:
        return latest_encoder_uri(config)
    if "://" not in uri and tf.io.gfile.exists(os.path.join(uri, "bert_config.json")):
        from models import checkpoint_conversion

        target = os.path.join(os.path.abspath(config.work_dir), "converted",
                              os.path.basename(os.path.normpath(uri)))
        if not tf.io.gfile.exists(os.path.join(target, "config.json")):
            checkpoint_conversion.convert_tf1_checkpoint(uri, target)
        return target
    return uri


def build(kind: str, config: ProjectConfig, runtime_parameters: bool = False,
          setup_file: str | None = None):
    """The pipeline of ``kind`` ("pretrain" or "finetune") for ``config``.

    ``runtime_parameters``: data path, step count and model size become Kubeflow runtime
    parameters (defaults from the config). ``setup_file``: where Beam workers find setup.py
    (the Kubeflow image's path; default this checkout's).
    """
    from pipeline.finetuning_pipeline import create_finetuning_pipeline
    from pipeline.parameters import PipelineParameters
    from pipeline.pretraining_pipeline import create_pretraining_pipeline
    from tfx_bert import beam_options

    if kind not in ("pretrain", "finetune"):
        raise ValueError(f"Unknown pipeline kind {kind!r}; use 'pretrain' or 'finetune'.")
    beam_args = beam_options.pipeline_args(config, setup_file)
    if kind == "pretrain":
        params = PipelineParameters(corpus_pattern(config), config.pretrain.train_steps,
                                    config.pretrain.model_size)
    else:
        config, data_path = with_task_data(config)
        params = PipelineParameters(data_path, config.finetune.train_steps)
    if runtime_parameters:
        params = params.as_runtime_parameters(kind)
    if kind == "pretrain":
        return create_pretraining_pipeline(config, params, beam_args)
    return create_finetuning_pipeline(config, params, encoder_uri(config), beam_args)


def config_from_environment() -> ProjectConfig:
    """Config for runner files started by the ``tfx`` CLI: $TFX_BERT_CONFIG (YAML) if set."""
    from tfx_bert.config import load_config

    return load_config(os.environ.get("TFX_BERT_CONFIG") or None)
