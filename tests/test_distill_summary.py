"""tfx_bert/distill_summary.py: the teacher and student side by side from a pipeline's files."""
import json
import os

from tfx_bert import config as config_lib
from tfx_bert import distill_summary


def test_a_retrieval_students_summary_comes_from_the_retrieval_evaluators_report(tmp_path):
    config = config_lib.load_config(overrides=[f"work_dir={tmp_path}", "finetune.task=retrieval"])
    root = os.path.join(config.pipelines_root, config.finetune.pipeline_name)
    for execution, value in (("7", 0.1), ("12", 0.3)):  # the newest execution is read
        evaluation = os.path.join(root, "StudentEvaluator", "evaluation", execution)
        os.makedirs(evaluation)
        with open(os.path.join(evaluation, "metrics.json"), "w") as f:
            json.dump({"gate_metric": "ndcg@10", "blessed": value > 0.2, "retention": value / 0.31,
                       "candidate": {"ndcg@10": value}, "baseline": {"ndcg@10": 0.31}}, f)
    run = os.path.join(root, "StudentTrainer", "model_run", "13")
    os.makedirs(run)
    report = {"teacher": {"layers": 2, "feed_forward": 512, "parameters": 10, "saved_model_mb": 5.0, "p50_ms": 3.0, "p99_ms": 4.0},
              "student": {"layers": 1, "feed_forward": 256, "parameters": 6, "saved_model_mb": 4.0, "p50_ms": 2.0, "p99_ms": 3.0},
              "speedup_p50": 1.5}
    with open(os.path.join(run, distill_summary.REPORT_FILE), "w") as f:
        json.dump(report, f)

    summary = distill_summary.read(config)
    assert summary["metrics"] == {"ndcg@10": {"teacher": 0.31, "student": 0.3, "retention": 0.3 / 0.31}}
    assert summary["blessed"] is True and summary["report"] == report
    text = distill_summary.format_summary(summary)
    assert "ndcg@10" in text and "retention 96.8%" in text and "student blessed        True" in text
    assert "feed_forward           teacher          512   student          256" in text
