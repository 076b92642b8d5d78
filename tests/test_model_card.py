"""Model cards (tfx_bert/model_card.py) and the commands that print and curate: `tfx-bert
model-card`, `tfx-bert schema promote`."""
import json
import os


from tfx_bert import cli, model_card


def _card(version, uri, warm_from=None, baseline=None):
    return {
        "model": {"name": "sentiment", "version": version, "task": "sentiment", "role": "fine-tuned",
                  "encoder": "/enc", "uri": uri, "warm_started_from": warm_from, "best_step": 40, "steps_run": 60,
                  "validation_metric": "val_accuracy"},
        "data": {"spans": [3], "version": None, "counts": {"train_records": 900, "skipped_empty_text": 2}},
        "data_gate": {"passed": True, "anomalies": []},
        "evaluation": {"candidate": {"sparse_categorical_accuracy": 0.91, "example_count": 400.0},
                       "baseline": {"sparse_categorical_accuracy": 0.9}, "gated": ["sparse_categorical_accuracy"],
                       "blessed": True, "baseline_model": baseline},
        "retention": {}, "intended_use": "reviews <b>only</b>", "limitations": "English",
    }


def test_a_card_names_its_base_data_gate_and_metrics_beside_the_baseline_in_markdown_and_html(tmp_path):
    base = tmp_path / "serving" / "sentiment"
    first = _card(100, "/p/Trainer/model/7")
    os.makedirs(base / "100" / "assets.extra")
    model_card.write(first, str(base / "100" / "assets.extra"))
    assert model_card.pushed_version_of(str(base), "/p/Trainer/model/7/") == "100"
    assert model_card.pushed_version_of(str(base), "/p/Trainer/model/9") is None
    ref = {"uri": "/p/Trainer/model/7", "version": "100"}
    second = _card(101, "/p/Trainer/model/9", warm_from=ref, baseline=ref)
    markdown = model_card.to_markdown(second)
    assert "- Warm-started from: version 100 (/p/Trainer/model/7)" in markdown
    assert "- Trained: 60 steps; exported the weights of step 40 (best val_accuracy" in markdown
    assert "- Spans: 3" in markdown and "skipped_empty_text 2" in markdown and "- Data gate: passed" in markdown
    assert "| sparse_categorical_accuracy (gated) | 0.9100 | 0.9000 |" in markdown
    assert "baseline: version 100 (/p/Trainer/model/7)" in markdown
    assert "Calibration" not in markdown and "Decision thresholds" not in markdown  # the run recorded none
    second["model"].update(calibration={"temperature": 1.25, "examples": 90, "ece_before": 0.08, "ece_after": 0.02,
                                        "at_bound": False},
                           decision_thresholds={"sports": 0.4, "music": 0.55})
    markdown = model_card.to_markdown(second)
    assert "- Calibration: logits divided by 1.250, fitted on 90 validation examples (ECE 0.0800 -> 0.0200)" in markdown
    assert "- Decision thresholds (tuned on the validation split): sports 0.400, music 0.550" in markdown
    second["model"]["calibration"]["at_bound"] = True
    assert "- Calibration: none (the temperature fitted on 90 validation examples" in model_card.to_markdown(second)
    page = model_card.to_html(second)
    assert "<h1>Model card: sentiment version 101</h1>" in page and "reviews &lt;b&gt;only&lt;/b&gt;" in page
    assert "<tr><td>sparse_categorical_accuracy (gated)</td><td>0.9100</td><td>0.9000</td></tr>" in page


def test_the_model_card_command_prints_the_newest_or_a_given_versions_card(tmp_path, capsys):
    base = tmp_path / "serving" / "sentiment"
    for version in (100, 101):
        os.makedirs(base / str(version) / "assets.extra")
        model_card.write(_card(version, f"/m/{version}"), str(base / str(version) / "assets.extra"))
    assert cli.main(["model-card", "sentiment", "--work-dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out.startswith("# Model card: sentiment version 101")
    assert cli.main(["model-card", "sentiment", "--work-dir", str(tmp_path), "--version", "100", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["model"]["version"] == 100
    assert cli.main(["model-card", "sentiment", "--work-dir", str(tmp_path), "--version", "7"]) == 2
    assert "no model card" in capsys.readouterr().err


def test_schema_promote_copies_the_newest_inferred_schema_to_the_curated_path(tmp_path, capsys):
    for execution, body in ((5, "feature { name: 'old' }"), (12, "feature { name: 'text' }")):
        path = tmp_path / "pipelines" / "tfx-bert-sentiment" / "SchemaGen" / "schema" / str(execution)
        os.makedirs(path)
        (path / "schema.pbtxt").write_text(body)
    target = tmp_path / "curated" / "schema.pbtxt"
    assert cli.main(["schema", "promote", "--work-dir", str(tmp_path), "--set", f"finetune.schema_path={target}"]) == 0
    assert target.read_text() == "feature { name: 'text' }" and "finetune.schema_path=" in capsys.readouterr().out
    assert cli.main(["schema", "promote", "--work-dir", str(tmp_path / "empty"), "--output", str(target)]) == 2
    assert "No inferred schema" in capsys.readouterr().err
