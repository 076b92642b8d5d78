"""A pipeline run's steps, in one place: ``prepare`` (what a local run needs first: demo data,
the encoder and first-stage model resolved), ``build`` (the pipeline factory of its kind; reads
and writes nothing), ``record_config`` (the effective configuration beside the run's artifacts)
and ``run`` (the three, then the orchestrator's ``execute``). The CLI, the runner files for the
``tfx`` CLI and the Kubeflow compiler all go through here."""
from __future__ import annotations

import os
import time

from tfx_bert import beam_options, demo_data, spans
from tfx_bert.config import ProjectConfig, load_config
from tfx_bert_app.pipeline import common
from tfx_bert_app.pipeline.embedder_pipeline import create_embedder_pipeline
from tfx_bert_app.pipeline.finetuning_pipeline import create_finetuning_pipeline
from tfx_bert_app.pipeline.parameters import PipelineParameters
from tfx_bert_app.pipeline.pretraining_pipeline import create_pretraining_pipeline
from tfx_bert_app.pipeline.scoring_pipeline import create_scoring_pipeline

KINDS = ("pretrain", "finetune", "embed", "score")


def run(kind: str, config: ProjectConfig, execute, announce=None):
    """Prepares, builds and records the ``kind`` pipeline, calls ``announce(pipeline, recorded
    config path)`` if given, then ``execute(pipeline)`` (an orchestrator's); returns (the
    pipeline, the time its execution started)."""
    pipeline = build(kind, config, **prepare(kind, config))
    recorded = record_config(kind, config)
    if announce:
        announce(pipeline, recorded)
    start = time.time()
    execute(pipeline)
    return pipeline, start


def prepare(kind: str, config: ProjectConfig) -> dict:
    """What a local run of the ``kind`` pipeline needs before it is built: the embedded demo data
    written if the configuration uses it, and (fine-tuning) the encoder resolved. Returns the
    keyword arguments for ``build``."""
    os.makedirs(os.path.dirname(config.metadata_path), exist_ok=True)
    if kind == "score":
        return _prepare_scoring(config)
    inputs = {"pretrain": [config.pretrain.corpus_pattern], "embed": [config.embedder.index_corpus]}.get(
        kind, [config.finetune.data_dir, config.finetune.setting("index_corpus", "")])
    demo_data.write_if_used(config.data_dir, *inputs)
    _check_inputs_exist(kind, config)
    prepared = {"input_bytes": beam_options.input_size(inputs, config.beam.direct_in_memory_below_mb * 2**20)}
    if kind in ("finetune", "embed"):
        prepared["encoder_uri"] = common.encoder_uri(config)
    if kind == "finetune" and config.finetune.setting("negative_model", ""):
        prepared["negative_model"] = common.negative_model_uri(config)
    return prepared


def _prepare_scoring(config: ProjectConfig) -> dict:
    """Batch scoring: its input is there, and the pushed version it scores with is resolved (the
    newest unless ``score.version``) and can score: it has ``score_examples`` and takes the
    inputs ``finetune.task`` sends."""
    import tensorflow as tf

    from tfx_bert import scoring, tasks

    s = config.score
    if not s.input_pattern or not tf.io.gfile.glob(s.input_pattern):
        raise FileNotFoundError(f"score.input_pattern={s.input_pattern!r}: no such file (give --input PATTERN).")
    base = os.path.join(config.serving_base, s.model_name)
    version = scoring.resolve_version(base, s.version)
    scoring.check_scorable(tasks.get_task(config.finetune.task), os.path.join(base, version))
    return {"version": version,
            "input_bytes": beam_options.input_size([s.input_pattern], config.beam.direct_in_memory_below_mb * 2**20)}


def _check_inputs_exist(kind: str, config: ProjectConfig) -> None:
    """A configured input that is not there is one error naming its setting, before any
    component runs (not a traceback from inside one)."""
    import tensorflow as tf

    inputs = {"pretrain": {"pretrain.corpus_pattern": config.pretrain.corpus_pattern},
              "embed": {"embedder.index_corpus": config.embedder.index_corpus}}.get(
        kind, {"finetune.data_dir": config.finetune.data_dir, "finetune.index_corpus": config.finetune.setting("index_corpus", "")})
    for key, path in inputs.items():
        if path and not tf.io.gfile.glob(spans.as_glob(path)):  # which span is read is the ExampleGen's choice
            raise FileNotFoundError(f"{key}={path}: no such file or directory.")


def pipeline_name(kind: str, config: ProjectConfig) -> str:
    return {"pretrain": config.pretrain.pipeline_name, "embed": config.embedder.pipeline_name,
            "score": config.score.pipeline_name}.get(kind, config.finetune.pipeline_name)


def record_config(kind: str, config: ProjectConfig, run_id: str | None = None) -> str:
    """Writes the run's effective configuration to ``<pipeline_root>/configs/<run_id>.yaml``
    (default: the local time) and ``effective_config.yaml`` beside the run's artifacts (the
    latest); returns the first path."""
    run_id = run_id or time.strftime("%Y%m%d-%H%M%S")
    root = os.path.join(config.pipelines_root, pipeline_name(kind, config))
    os.makedirs(os.path.join(root, "configs"), exist_ok=True)
    text = config.effective_yaml()
    path = os.path.join(root, "configs", f"{run_id}.yaml")
    for target in (path, os.path.join(root, "effective_config.yaml")):
        with open(target, "w", encoding="utf-8") as f:
            f.write(text)
    return path


def build(kind: str, config: ProjectConfig, runtime_parameters: bool = False,
          setup_file: str | None = None, encoder_uri: str | None = None, input_bytes: int | None = None,
          negative_model: str | None = None, version: str = ""):
    """The pipeline of ``kind`` (one of ``KINDS``) for ``config``; reads and writes nothing.

    ``runtime_parameters``: data path, step count and model size become Kubeflow runtime
    parameters (defaults from the config). ``setup_file``: where Beam workers find setup.py
    (the Kubeflow image's path; default this checkout's). ``encoder_uri`` (fine-tuning): the
    encoder directory, from ``prepare``; default ``finetune.encoder_uri``. ``input_bytes`` (from
    ``prepare``): the input's size, for the DirectRunner's ``auto`` mode. ``negative_model``
    (from ``prepare``): ``finetune.negative_model`` resolved; default the setting, which must
    then be a path (``latest`` needs the local MLMD store). ``version`` (scoring, from ``prepare``):
    the pushed version to score with; default ``score.version`` ("" resolves when it runs).
    """
    if kind not in KINDS:
        raise ValueError(f"Unknown pipeline kind {kind!r}; use one of {', '.join(KINDS)}.")
    beam_args = beam_options.pipeline_args(config, setup_file, input_bytes)
    if kind == "score":
        return create_scoring_pipeline(config, version or config.score.version, beam_args)
    if kind == "embed":
        if not (encoder_uri or config.finetune.encoder_uri):
            raise ValueError("The embedding pipeline needs an encoder: give --encoder (finetune.encoder_uri).")
        return create_embedder_pipeline(config, encoder_uri or config.finetune.encoder_uri, beam_args)
    if kind == "pretrain":
        params = PipelineParameters(config.pretrain.corpus_pattern, config.pretrain.train_steps,
                                    config.pretrain.model_size)
    else:
        params = PipelineParameters(config.finetune.data_dir, config.finetune.train_steps)
    if runtime_parameters:
        params = params.as_runtime_parameters(kind)
    if kind == "pretrain":
        return create_pretraining_pipeline(config, params, beam_args)
    encoder = encoder_uri or config.finetune.encoder_uri
    if not encoder:
        raise ValueError("The fine-tuning pipeline needs an encoder: set finetune.encoder_uri (a keras-hub preset "
                         "or pretrained encoder directory; on Kubeflow a gs:// path), or run locally "
                         "(tfx-bert finetune), which finds the latest pretrained one.")
    negative_model = negative_model or config.finetune.setting("negative_model", "")
    if common.is_latest(negative_model):
        raise ValueError(f"finetune.negative_model={negative_model} is resolved from the local MLMD store, which this "
                         "run does not read (Kubeflow): give the model's path (gs://...) instead.")
    return create_finetuning_pipeline(config, params, encoder, beam_args, negative_model)


def config_from_environment() -> ProjectConfig:
    """Config for runner files started by the ``tfx`` CLI: $TFX_BERT_CONFIG (YAML) if set."""
    return load_config(os.environ.get("TFX_BERT_CONFIG") or None)
