"""pipeline/common.py: what the pipeline factories share, and the MLMD look-ups that resolve
``latest`` models (the encoder, a first-stage retrieval model)."""
import os

import pytest

from tfx_bert import config as config_lib
from tfx_bert_app.pipeline import common, runs


def _record_models(config, pipeline_name, blessings):
    """A real MLMD store at ``config.metadata_path`` holding what an evaluator leaves: one Model
    per entry of ``blessings`` (oldest first) in ``pipeline_name``'s context, and a ModelBlessing
    naming it, blessed or not (None: never evaluated). Returns the models' URIs."""
    from ml_metadata.metadata_store import metadata_store
    from ml_metadata.proto import metadata_store_pb2 as pb

    os.makedirs(os.path.dirname(config.metadata_path), exist_ok=True)
    store = metadata_store.MetadataStore(common.metadata_config(config))
    model_type = store.put_artifact_type(pb.ArtifactType(name="Model"))
    blessing_type = store.put_artifact_type(pb.ArtifactType(name="ModelBlessing"))
    [context] = store.put_contexts([pb.Context(type_id=store.put_context_type(pb.ContextType(name="pipeline")),
                                               name=pipeline_name)])
    uris = []
    for i, blessed in enumerate(blessings):
        uri = os.path.join(config.pipelines_root, pipeline_name, "Trainer", "model", str(10 + i))
        [model_id] = store.put_artifacts([pb.Artifact(type_id=model_type, uri=uri, state=pb.Artifact.LIVE)])
        artifacts = [model_id]
        if blessed is not None:
            blessing = pb.Artifact(type_id=blessing_type, uri=uri + "-blessing", state=pb.Artifact.LIVE)
            blessing.custom_properties["blessed"].int_value = int(blessed)
            blessing.custom_properties["current_model_id"].int_value = model_id
            artifacts += store.put_artifacts([blessing])
        store.put_attributions_and_associations(
            [pb.Attribution(artifact_id=a, context_id=context) for a in artifacts], [])
        uris.append(uri)
    return uris


def test_negative_model_latest_is_the_retrieval_pipelines_newest_blessed_model_from_mlmd(tmp_path):
    """``finetune.negative_model: latest`` (or ``latest:<pipeline>``): the newest Model the named
    pipeline's evaluator blessed, resolved at run start; a path stays a path; with no blessed
    model, or where MLMD is not read (Kubeflow), a clear error."""
    overrides = [f"work_dir={tmp_path}", "finetune.task=rerank", "finetune.negative_miner=dense"]
    config = config_lib.load_config(overrides=overrides + ["finetune.negative_model=latest"])
    with pytest.raises(FileNotFoundError, match="No blessed model of pipeline 'tfx-bert-retrieval'"):
        common.negative_model_uri(config)  # nothing has run here
    blessed, refused, unevaluated = _record_models(config, "tfx-bert-retrieval", [True, False, None])
    assert common.negative_model_uri(config) == os.path.join(blessed, "Format-Serving")  # not the newer ones
    newest = _record_models(config, "my-retrieval", [True, True])[1]
    assert common.negative_model_uri(config_lib.load_config(overrides=overrides + [
        "finetune.negative_model=latest:my-retrieval"])) == os.path.join(newest, "Format-Serving")
    assert common.negative_model_uri(config_lib.load_config(overrides=overrides + [
        "finetune.negative_model=/models/dual"])) == "/models/dual"

    pipeline = runs.build("finetune", config, encoder_uri=str(tmp_path / "encoder"),
                            negative_model=common.negative_model_uri(config))
    [gen] = [c for c in pipeline.components if c.id == "TaskExampleGen"]
    assert f'"model": "{os.path.join(blessed, "Format-Serving")}"' in gen.exec_properties["negative_mining"]
    with pytest.raises(ValueError, match="resolved from the local MLMD store.*gs://"):
        runs.build("finetune", config, encoder_uri=str(tmp_path / "encoder"))  # Kubeflow builds without prepare
