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
                       "warmup_texts": list(config.finetune.warmup_texts), "task": "sentence embedding",
                       "encoder_uri": encoder_uri},
    ).with_id("Pusher")
    components = [encoder, export, pusher]
    if e.index_corpus:
        components.append(common.vector_indexer(config, export.outputs["model"], e.index_corpus,
                                                e.index_corpus_format, e.index_type, e.vector_store_uri,
                                                e.model_name))
    return common.make_pipeline(config, e.pipeline_name, components, beam_args)
