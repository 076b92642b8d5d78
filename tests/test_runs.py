"""pipeline/runs.py: building a pipeline reads and writes nothing; ``prepare`` does what a
local run needs first (demo data, the encoder); each run records its effective configuration;
``run`` does the three, then executes."""
import os

import pytest
import yaml

from tfx_bert import config as config_lib
from tfx_bert_app.pipeline import runs


def test_build_writes_nothing_and_a_finetuning_pipeline_needs_an_encoder(tmp_path):
    config = config_lib.load_config(overrides=[f"work_dir={tmp_path / 'work'}", "finetune.task=ner"], demo=True)
    assert runs.build("pretrain", config).pipeline_info.pipeline_name == config.pretrain.pipeline_name
    with pytest.raises(ValueError, match="needs an encoder: set finetune.encoder_uri"):
        runs.build("finetune", config)
    pipeline = runs.build("finetune", config, encoder_uri=str(tmp_path / "encoder" / "Format-Serving"))
    assert pipeline.pipeline_info.pipeline_name == "tfx-bert-ner"
    assert not (tmp_path / "work").exists()  # no demo data, no metadata store, no converted checkpoint
    with pytest.raises(ValueError, match="Unknown pipeline kind 'serve'"):
        runs.build("serve", config)


def test_prepare_writes_the_demo_data_and_explains_a_missing_encoder(tmp_path):
    config = config_lib.load_config(overrides=[f"work_dir={tmp_path}", "finetune.task=ner"], demo=True)
    prepared = runs.prepare("pretrain", config)
    assert prepared["input_bytes"] == os.path.getsize(config.pretrain.corpus_pattern) > 0  # the demo corpus
    with pytest.raises(FileNotFoundError, match="Run the pretraining pipeline first"):
        runs.prepare("finetune", config)
    assert os.listdir(config.finetune.data_dir)  # the NER demo data was written before the encoder lookup


def test_each_run_records_its_effective_configuration(tmp_path):
    config = config_lib.load_config(overrides=[f"work_dir={tmp_path}", "finetune.task=qa",
                                               "finetune.doc_stride=20"], demo=True)
    path = runs.record_config("finetune", config, run_id="run1")
    root = os.path.join(config.pipelines_root, "tfx-bert-qa")
    assert path == os.path.join(root, "configs", "run1.yaml")
    recorded = yaml.safe_load(open(os.path.join(root, "effective_config.yaml")))
    assert recorded == yaml.safe_load(open(path)) == config.effective_dict()
    assert recorded["finetune"]["doc_stride"] == 20 and recorded["finetune"]["task"] == "qa"


def test_run_prepares_builds_records_then_executes(tmp_path):
    config = config_lib.load_config(overrides=[f"work_dir={tmp_path}"], demo=True)
    seen = []
    pipeline, start = runs.run("pretrain", config, seen.append, lambda p, recorded: seen.append(recorded))
    assert seen == [os.path.join(config.pipelines_root, "tfx-bert-pretrain", "configs", os.path.basename(seen[0])),
                    pipeline]
    assert os.path.exists(config.pretrain.corpus_pattern) and start > 0  # prepared: the demo corpus written
