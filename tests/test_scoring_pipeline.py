"""pipeline/scoring_pipeline.py and the scoring kind of pipeline/runs.py: what `tfx-bert score`
builds from the configuration, and the checks before it runs. The pipeline runs for real in
tests/test_tasks.py (the demo's pushed classifier over a file with bad rows)."""
import json
import os

import pytest

from tests.test_scoring import _save_tiny_model
from tfx_bert import config as config_lib
from tfx_bert import signatures
from tfx_bert_app.components.task_example_gen import executor as gen_ex
from tfx_bert_app.pipeline import runs


def _config(tmp_path, *overrides):
    return config_lib.load_config(overrides=[f"work_dir={tmp_path / 'work'}", f"score.input_pattern={tmp_path / 'in.csv'}",
                                             *overrides], demo=True)


def test_the_scoring_pipeline_reads_the_files_unlabelled_and_scores_with_the_served_signature(tmp_path):
    config = _config(tmp_path, "finetune.task=pair_classification", "score.version=17")
    pipeline = runs.build("score", config, version="12")
    assert pipeline.pipeline_info.pipeline_name == "tfx-bert-pair_classification-score"
    by_id = {c.id: c for c in pipeline.components}
    gen, served, inferrer = by_id["TaskExampleGen"], by_id["ServedModel"], by_id["BulkInferrer"]
    assert gen.exec_properties[gen_ex.SCORE_PATTERN] == str(tmp_path / "in.csv")
    assert gen.exec_properties[gen_ex.LABEL_FIELD] == ""  # a label column is not read
    assert gen.exec_properties[gen_ex.TEXT_B_FIELD] == config.finetune.text_b_field  # finetune's loader settings
    assert served.exec_properties == {"model_base": os.path.join(config.serving_base, "pair_classification"),
                                      "version": "12"}  # prepare's resolution wins over score.version
    assert json.loads(inferrer.exec_properties["model_spec"])["model_signature_name"] == [signatures.SCORE_EXAMPLES]
    assert json.loads(inferrer.exec_properties["data_spec"])["example_splits"] == [gen_ex.SCORE]
    assert config.score.output == os.path.join(str(tmp_path / "work"), "scores", "pair_classification.jsonl")
    assert not (tmp_path / "work").exists()
    # Its Beam steps take the same beam settings as every other pipeline's (here Flink's runner).
    flink = runs.build("score", _config(tmp_path, "beam.runner=flink", "beam.flink_master=localhost:8081"), version="1")
    assert "--runner=FlinkRunner" in flink.beam_pipeline_args
    assert "--flink_master=localhost:8081" in flink.beam_pipeline_args


def test_prepare_resolves_the_version_and_refuses_what_cannot_score(tmp_path):
    config = _config(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"score.input_pattern=.*in.csv': no such file \(give --input"):
        runs.prepare("score", config)
    (tmp_path / "in.csv").write_text("text\nfine\n")
    with pytest.raises(FileNotFoundError, match="no pushed versions under .*serving/sentiment"):
        runs.prepare("score", config)
    base = os.path.join(config.serving_base, "sentiment")
    _save_tiny_model(os.path.join(base, "3"), with_scoring=False)
    with pytest.raises(ValueError, match="has no score_examples signature"):
        runs.prepare("score", config)
    _save_tiny_model(os.path.join(base, "4"))
    assert runs.prepare("score", config)["version"] == "4"
    with pytest.raises(ValueError, match=r"but task pair_classification sends \['text', 'text_b'\]"):
        runs.prepare("score", _config(tmp_path, "finetune.task=pair_classification", "score.model_name=sentiment"))
