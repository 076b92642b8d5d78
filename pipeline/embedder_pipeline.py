"""The embedding pipeline: a pretrained or published encoder served as a sentence-embedding
model without training (``tfx-bert export-embedder --push``).

    Importer(encoder) -> EmbedderExport -> ServingPusher (op check, load check, warm-up, atomic
    version) [-> VectorIndexer over ``embedder.index_corpus``]
"""
from __future__ import annotations

import os

from tfx import v1 as tfx

from tfx_bert.config import ProjectConfig
from tfx_bert_app.components.embedder_export.component import EmbedderExport
from tfx_bert_app.components.serving_pusher.component import ServingPusher
from tfx_bert_app.pipeline import common


def create_embedder_pipeline(config: ProjectConfig, encoder_uri: str, beam_args: list[str]) -> tfx.dsl.Pipeline:
    e = config.embedder
    encoder = tfx.dsl.Importer(source_uri=encoder_uri, artifact_type=tfx.types.standard_artifacts.Model,
                               reimport=False).with_id("encoder")
    export = EmbedderExport(encoder=encoder.outputs["result"], pooling=e.pooling, normalize=e.normalize,
                            max_seq_length=e.max_seq_length).with_id("EmbedderExport")
    pusher = ServingPusher(
        model=export.outputs["model"],
        push_destination=tfx.proto.PushDestination(filesystem=tfx.proto.PushDestination.Filesystem(
            base_directory=os.path.join(config.serving_base, e.model_name))),
        custom_config={"keep_versions": config.finetune.keep_versions, "model_name": e.model_name,
                       "warmup_texts": list(config.finetune.warmup_texts)},
    ).with_id("Pusher")
    components = [encoder, export, pusher]
    if e.index_corpus:
        from tfx_bert_app.components.vector_indexer.component import VectorIndexer

        components.append(VectorIndexer(
            model=export.outputs["model"], corpus_path=e.index_corpus, corpus_format=e.index_corpus_format,
            index_type=e.index_type,
            store_uri=e.vector_store_uri or os.path.join(config.work_dir, "vectors", "milvus.db"),
            collection=e.model_name.replace("-", "_")).with_id("VectorIndexer"))
    return tfx.dsl.Pipeline(
        pipeline_name=e.pipeline_name,
        pipeline_root=os.path.join(config.pipelines_root, e.pipeline_name),
        components=components,
        metadata_connection_config=common.metadata_config(config),
        beam_pipeline_args=beam_args,
        enable_cache=True,
    )
