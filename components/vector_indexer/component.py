"""VectorIndexer: embeds a corpus with a model's ``embed`` signature (Beam) and writes it into
the vector store (Milvus; Milvus Lite by default). See executor.py."""
from __future__ import annotations

from tfx.dsl.components.base import base_beam_component, executor_spec
from tfx.types import channel, component_spec, standard_artifacts

from tfx_bert.artifacts import VectorIndex
from tfx_bert_app.components.vector_indexer import executor as ex


class VectorIndexerSpec(component_spec.ComponentSpec):
    PARAMETERS = {
        ex.CORPUS_PATH: component_spec.ExecutionParameter(type=str),
        ex.CORPUS_FORMAT: component_spec.ExecutionParameter(type=str),
        ex.STORE_URI: component_spec.ExecutionParameter(type=str),
        ex.COLLECTION: component_spec.ExecutionParameter(type=str),
        ex.INDEX_TYPE: component_spec.ExecutionParameter(type=str),
        ex.BATCH_SIZE: component_spec.ExecutionParameter(type=int),
        ex.STRICT: component_spec.ExecutionParameter(type=int),
        "input_fingerprint": component_spec.ExecutionParameter(type=str, optional=True),
    }
    INPUTS = {"model": component_spec.ChannelParameter(type=standard_artifacts.Model),
              "model_blessing": component_spec.ChannelParameter(type=standard_artifacts.ModelBlessing, optional=True)}
    OUTPUTS = {"index": component_spec.ChannelParameter(type=VectorIndex)}


class VectorIndexer(base_beam_component.BaseBeamComponent):
    """With ``model_blessing``, an unblessed model indexes nothing (the store keeps the last
    blessed model's vectors).

    Example:
        VectorIndexer(model=trainer.outputs["model"], corpus_path="/data/scifact/corpus.jsonl",
                      store_uri="/work/vectors/milvus.db", collection="scifact")
    """

    SPEC_CLASS = VectorIndexerSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(ex.Executor)

    def __init__(self, model, corpus_path: str, store_uri: str, collection: str, corpus_format: str = "beir",
                 index_type: str = "IVF_FLAT", batch_size: int = 64, strict: bool = False, model_blessing=None):
        from tfx_bert_app.components import input_fingerprint

        if corpus_format not in ex.FORMATS:
            raise ValueError(f"corpus_format {corpus_format!r} is not one of {ex.FORMATS}.")
        super().__init__(spec=VectorIndexerSpec(
            model=model, model_blessing=model_blessing, corpus_path=corpus_path, corpus_format=corpus_format, store_uri=store_uri,
            collection=collection, index_type=index_type, batch_size=batch_size, strict=int(strict),
            input_fingerprint=input_fingerprint.fingerprint([corpus_path]),
            index=channel.Channel(type=VectorIndex)))
