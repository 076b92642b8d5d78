"""pipeline/common.py: building a pipeline reads and writes nothing; ``prepare`` does what a
local run needs first (demo data, the encoder); each run records its effective configuration."""
import os

import pytest
import yaml

from tfx_bert import config as config_lib
from tfx_bert_app.pipeline import common


def test_build_writes_nothing_and_a_finetuning_pipeline_needs_an_encoder(tmp_path):
    config = config_lib.load_config(overrides=[f"work_dir={tmp_path / 'work'}", "finetune.task=ner"], demo=True)
    assert common.build("pretrain", config).pipeline_info.pipeline_name == config.pretrain.pipeline_name
    with pytest.raises(ValueError, match="needs an encoder: set finetune.encoder_uri"):
        common.build("finetune", config)
    pipeline = common.build("finetune", config, encoder_uri=str(tmp_path / "encoder" / "Format-Serving"))
    assert pipeline.pipeline_info.pipeline_name == "tfx-bert-ner"
    assert not (tmp_path / "work").exists()  # no demo data, no metadata store, no converted checkpoint
    with pytest.raises(ValueError, match="Unknown pipeline kind 'serve'"):
        common.build("serve", config)


def test_prepare_writes_the_demo_data_and_explains_a_missing_encoder(tmp_path):
    config = config_lib.load_config(overrides=[f"work_dir={tmp_path}", "finetune.task=ner"], demo=True)
    prepared = common.prepare("pretrain", config)
    assert prepared["input_bytes"] == os.path.getsize(config.pretrain.corpus_pattern) > 0  # the demo corpus
    with pytest.raises(FileNotFoundError, match="Run the pretraining pipeline first"):
        common.prepare("finetune", config)
    assert os.listdir(config.finetune.data_dir)  # the NER demo data was written before the encoder lookup


def test_each_run_records_its_effective_configuration(tmp_path):
    config = config_lib.load_config(overrides=[f"work_dir={tmp_path}", "finetune.task=qa",
                                               "finetune.doc_stride=20"], demo=True)
    path = common.record_config("finetune", config, run_id="run1")
    root = os.path.join(config.pipelines_root, "tfx-bert-qa")
    assert path == os.path.join(root, "configs", "run1.yaml")
    recorded = yaml.safe_load(open(os.path.join(root, "effective_config.yaml")))
    assert recorded == yaml.safe_load(open(path)) == config.effective_dict()
    assert recorded["finetune"]["doc_stride"] == 20 and recorded["finetune"]["task"] == "qa"


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

    pipeline = common.build("finetune", config, encoder_uri=str(tmp_path / "encoder"),
                            negative_model=common.negative_model_uri(config))
    [gen] = [c for c in pipeline.components if c.id == "TaskExampleGen"]
    assert f'"model": "{os.path.join(blessed, "Format-Serving")}"' in gen.exec_properties["negative_mining"]
    with pytest.raises(ValueError, match="resolved from the local MLMD store.*gs://"):
        common.build("finetune", config, encoder_uri=str(tmp_path / "encoder"))  # Kubeflow builds without prepare
