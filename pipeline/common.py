"""What both pipeline factories and the runners share: metadata store, input resolution.

Building a pipeline (``build``) reads and writes nothing. What a local run needs first is done
by ``prepare``, which the runners call: write the embedded demo data the configuration points at,
find the latest pretrained encoder in MLMD, convert a TF1 checkpoint; ``record_config`` saves
the effective configuration next to the run's artifacts.
"""
from __future__ import annotations

import os
import shutil

from ml_metadata.metadata_store import metadata_store

from tfx_bert.config import ProjectConfig


NEGATIVE_MODEL_LATEST = "latest"  # finetune.negative_model: resolved from MLMD at run start
DEFAULT_RETRIEVAL_PIPELINE = "tfx-bert-retrieval"  # the retrieval task's demo pipeline name


def make_pipeline(config: ProjectConfig, name: str, components: list, beam_args: list[str]):
    """A pipeline of this project: its root at ``<work_dir>/pipelines/<name>``, the shared MLMD
    store, caching on."""
    from tfx import v1 as tfx

    return tfx.dsl.Pipeline(pipeline_name=name, pipeline_root=os.path.join(config.pipelines_root, name),
                            components=components, metadata_connection_config=metadata_config(config),
                            beam_pipeline_args=beam_args, enable_cache=True)


def vector_indexer(config: ProjectConfig, model, corpus: str, corpus_format: str, index_type: str,
                   store_uri: str, model_name: str, model_blessing=None):
    """The VectorIndexer of a pipeline's model: ``corpus`` into the collection named after the
    model (default store: ``<work_dir>/vectors/milvus.db``)."""
    from tfx_bert_app.components.vector_indexer.component import VectorIndexer

    return VectorIndexer(
        model=model, model_blessing=model_blessing, corpus_path=corpus, corpus_format=corpus_format,
        index_type=index_type, store_uri=store_uri or os.path.join(config.work_dir, "vectors", "milvus.db"),
        collection=model_name.replace("-", "_")).with_id("VectorIndexer")


def metadata_config(config: ProjectConfig):
    """One SQLite MLMD store for all of a project's pipelines (so fine-tuning finds encoders);
    ``prepare`` creates its directory before a local run."""
    from ml_metadata.proto import metadata_store_pb2

    # What tfx.orchestration.metadata.sqlite_metadata_connection_config builds, without the
    # directory it creates: building a pipeline writes nothing.
    connection = metadata_store_pb2.ConnectionConfig()
    connection.sqlite.filename_uri = config.metadata_path
    connection.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
    return connection


def _live_artifacts(config: ProjectConfig, pipeline_name: str, type_name: str) -> list:
    """The live artifacts of ``type_name`` in ``pipeline_name``'s MLMD context, newest first
    (none when nothing has run here: no store is created)."""
    if not os.path.exists(config.metadata_path):
        return []
    store = metadata_store.MetadataStore(metadata_config(config))
    context = store.get_context_by_type_and_name("pipeline", pipeline_name)
    artifact_type = store.get_artifact_type(type_name) if context else None
    if not (context and artifact_type):
        return []
    found = [a for a in store.get_artifacts_by_context(context.id) if a.type_id == artifact_type.id and a.state == a.LIVE]
    return sorted(found, key=lambda a: (a.create_time_since_epoch, a.id), reverse=True)


def newest_artifact(config: ProjectConfig, pipeline_name: str, type_name: str):
    """The newest live artifact of ``type_name`` in ``pipeline_name``'s runs (a run just made, or
    reused from the cache); a clear error when it has none."""
    found = _live_artifacts(config, pipeline_name, type_name)
    if not found:
        raise FileNotFoundError(f"no {type_name} of pipeline {pipeline_name!r} in {config.metadata_path}.")
    return found[0]


def latest_encoder_uri(config: ProjectConfig) -> str:
    """The encoder directory of the newest Model the pretraining pipeline produced.

    Raises a clear error when pretraining has not run yet.
    """
    name = config.pretrain.pipeline_name
    # A checkpoint CheckpointImport brought in (pretrain.init_from) is a Model too, not a trained one.
    models = [m for m in _live_artifacts(config, name, "Model") if "source" not in m.custom_properties]
    if models:
        return os.path.join(models[0].uri, "Format-Serving")
    raise FileNotFoundError(
        f"No pretrained encoder found in {config.metadata_path} for pipeline {name!r}. "
        "Run the pretraining pipeline first (tfx-bert pretrain) or set finetune.encoder_uri "
        "to an encoder / keras-hub preset directory.")


def latest_blessed_model_uri(config: ProjectConfig, pipeline_name: str) -> str:
    """The serving dir of the newest Model that ``pipeline_name``'s evaluator blessed (MLMD: a
    ModelBlessing with ``blessed`` 1 naming it). Raises a clear error when there is none."""
    blessed = {b.custom_properties["current_model_id"].int_value
               for b in _live_artifacts(config, pipeline_name, "ModelBlessing")
               if b.custom_properties["blessed"].int_value == 1}
    for model in _live_artifacts(config, pipeline_name, "Model"):
        if model.id in blessed:
            return os.path.join(model.uri, "Format-Serving")
    raise FileNotFoundError(
        f"No blessed model of pipeline {pipeline_name!r} in {config.metadata_path}: run that pipeline first "
        f"(e.g. tfx-bert finetune --task retrieval) or give finetune.negative_model as a SavedModel path.")


def is_latest(negative_model: str) -> bool:
    """``latest`` or ``latest:<pipeline>``: a model to look up in MLMD, not a path."""
    return negative_model.partition(":")[0] == NEGATIVE_MODEL_LATEST


def negative_model_uri(config: ProjectConfig) -> str:
    """``finetune.negative_model`` as a path: ``latest`` (or ``latest:<pipeline>``) is the newest
    blessed model of the retrieval pipeline (``tfx-bert-retrieval``, or that pipeline), from MLMD;
    anything else is the path it is."""
    model = config.finetune.negative_model
    if not is_latest(model):
        return model
    pipeline = model.partition(":")[2] or DEFAULT_RETRIEVAL_PIPELINE
    return latest_blessed_model_uri(config, pipeline)


def encoder_uri(config: ProjectConfig) -> str:
    """The configured encoder, checked before any component runs, or the latest pretrained one
    (an MLMD query).

    A keras-hub preset name or hub handle (``bert_base_en_uncased``, ``kaggle://...``,
    ``hf://...``) is downloaded first, as ``from_preset`` does. A Hugging Face,
    sentence-transformers or google-research TF1 checkpoint directory (local or remote) is converted once into an encoder directory under ``<work_dir>/converted/``; a
    keras-hub preset directory is used as it is. Errors name the file and what was expected.
    """
    import hashlib

    from tfx_bert_app.models import checkpoint_conversion

    uri = config.finetune.encoder_uri
    if not uri:
        return latest_encoder_uri(config)
    if checkpoint_conversion.is_hub_preset(uri):  # downloaded once into keras-hub's cache
        uri = checkpoint_conversion.download_hub_preset(uri)
    kind = checkpoint_conversion.detect_format(uri)
    if kind == "keras-hub":
        return checkpoint_conversion.convert_checkpoint(uri, "", source_format=kind)  # checked, as it is
    source = config.finetune.encoder_uri  # names the converted directory (a hub handle: not its cache path)
    tag = hashlib.sha1(os.path.abspath(source).encode() if "://" not in source else source.encode()).hexdigest()[:8]
    target = os.path.join(os.path.abspath(config.work_dir), "converted",
                          f"{os.path.basename(os.path.normpath(source.split('://')[-1]))}-{tag}")
    if not os.path.exists(os.path.join(target, "config.json")):
        shutil.rmtree(target + ".partial", ignore_errors=True)
        checkpoint_conversion.convert_checkpoint(uri, target + ".partial", config.finetune.encoder_casing, kind)
        if os.path.exists(target):  # an earlier conversion that did not finish
            shutil.rmtree(target)
        os.replace(target + ".partial", target)
    return target
