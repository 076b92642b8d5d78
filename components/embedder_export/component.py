"""EmbedderExport: an encoder artifact -> a sentence-embedding Model artifact (``embed``:
raw text -> embedding, in ``Format-Serving``), without training. The rest of the pipeline
(ServingPusher's checks, the VectorIndexer) treats it like any fine-tuned model."""
import os

from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.types.standard_artifacts import Model


@component
def EmbedderExport(encoder: InputArtifact[Model], model: OutputArtifact[Model], pooling: Parameter[str],  # noqa: N802
                   normalize: Parameter[str], max_seq_length: Parameter[int]) -> None:
    """``pooling`` mean / max / cls or auto, ``normalize`` true / false or auto,
    ``max_seq_length`` 0 for auto (the encoder's own, for a sentence-transformers import)."""
    from tfx_bert_app.models import embedder
    from tfx_bert_app.models import encoder as encoder_lib

    encoder_dir = encoder_lib.resolve_dir(encoder.uri)
    settings = embedder.embedder_settings(encoder_dir, None if pooling == "auto" else pooling,
                                          None if normalize == "auto" else normalize == "true",
                                          max_seq_length or None)
    embedder.export_embedder(encoder_dir, os.path.join(model.uri, "Format-Serving"), settings)
    print(f"  [embedder] {settings.pooling} pooling, {'normalised' if settings.normalize else 'not normalised'}, "
          f"{settings.max_seq_length} tokens, from {encoder_dir}", flush=True)
