"""TFX's Tuner over BERT's fine-tuning grid (models/tuning.py, components/bert_tuner): the search
space per recipe and its overrides, the best values reaching the Trainer, and a 2-trial run."""
import json
import os

import pytest

from tfx_bert import config as config_lib
from tfx_bert import registry
from tfx_bert.config import FinetuneConfig, TuningConfig, search_space


@pytest.mark.parametrize("recipe, width, space", [
    ("auto", 128, registry.TUNING_GRIDS["tiny"]), ("auto", 384, registry.TUNING_GRIDS["compact"]),
    ("auto", 768, registry.TUNING_GRIDS["bert"]), ("bert", 128, registry.TUNING_GRIDS["bert"])])
def test_the_search_space_is_the_grid_of_the_encoders_recipe(recipe, width, space):
    settings = FinetuneConfig.for_task("sentiment", recipe=recipe)
    assert search_space(settings, TuningConfig(trials=2), width) == space
    assert registry.TUNING_GRIDS["bert"] == {"learning_rate": [5e-5, 3e-5, 2e-5], "batch_size": [16, 32]}  # the paper's


def test_a_users_lists_override_the_grid_and_bad_ones_are_refused():
    config = config_lib.load_config(overrides=["finetune.tuning.trials=3", "finetune.tuning.learning_rates=1e-4,3e-4"])
    assert search_space(config.finetune, config.finetune.tuning, 768) == {"learning_rate": [1e-4, 3e-4],
                                                                          "batch_size": [16, 32]}
    assert config_lib.tuner_settings(config.finetune)["tuning"]["trials"] == 3
    for bad, message in (("finetune.tuning.batch_sizes=16,2.5", "batch sizes whole"),
                         ("finetune.tuning.learning_rates=fast", "must be positive numbers"),
                         ("finetune.tuning.oracle=grid", "finetune.tuning.oracle"),
                         ("finetune.tuning.steps_per_trial=0", "steps_per_trial positive")):
        with pytest.raises(ValueError, match=message):
            config_lib.load_config(overrides=["finetune.tuning.trials=2", bad])
    with pytest.raises(ValueError, match="scores trials on the validation split"):
        config_lib.load_config(overrides=["finetune.tuning.trials=2", "finetune.validation_percent=0"])


def test_the_best_values_replace_the_settings_they_tune_and_nothing_else():
    from tfx_bert_app.models import finetuning

    settings = FinetuneConfig.for_task("sentiment", learning_rate=5e-4, batch_size=32, dropout=0.2)
    tuned = finetuning.with_hyperparameters(settings, {"learning_rate": 1e-3, "batch_size": 16, "other": 1})
    assert (tuned.learning_rate, tuned.batch_size, tuned.dropout) == (1e-3, 16, 0.2)
    assert (settings.learning_rate, settings.batch_size) == (5e-4, 32)  # a copy: the original is unchanged
    assert finetuning.with_hyperparameters(settings, {}) is settings


@pytest.mark.slow
def test_a_two_trial_tuner_run_hands_its_best_values_to_the_trainer(finetuned):
    """The NLI end-to-end run tunes 2 trials first (tests/helpers.py): its Trainer read the
    Tuner's best_hyperparameters artifact and trained with those values."""
    from ml_metadata.metadata_store import metadata_store
    from ml_metadata.proto import metadata_store_pb2

    work, output = finetuned.work("nli"), finetuned.output("nli", run=1)  # run 0: its encoder's pretraining
    connection = metadata_store_pb2.ConnectionConfig()
    connection.sqlite.filename_uri = os.path.join(work, "metadata.sqlite")
    store = metadata_store.MetadataStore(connection)

    def artifacts(node, kind):
        context = store.get_context_by_type_and_name("node", f"tfx-bert-nli.{node}")
        [execution] = store.get_executions_by_context(context.id)
        events = [e for e in store.get_events_by_execution_ids([execution.id]) if e.type == kind]
        return {e.path.steps[0].key: store.get_artifacts_by_id([e.artifact_id])[0] for e in events}

    best = artifacts("Tuner", metadata_store_pb2.Event.OUTPUT)["best_hyperparameters"]
    assert artifacts("Trainer", metadata_store_pb2.Event.INPUT)["hyperparameters"].id == best.id
    values = json.load(open(os.path.join(best.uri, "best_hyperparameters.txt")))["values"]
    run = artifacts("Trainer", metadata_store_pb2.Event.OUTPUT)["model_run"]
    assert json.load(open(os.path.join(run.uri, "train_metrics.json")))["hyperparameters"] == values
    trials = json.load(open(os.path.join(artifacts("Tuner", metadata_store_pb2.Event.OUTPUT)["tuner_results"].uri,
                                         "trials.json")))
    assert len(trials["trials"]) == 2 and sum(t["best"] for t in trials["trials"]) == 1
    assert set(values) == {"learning_rate", "batch_size"} and values["learning_rate"] in registry.TUNING_GRIDS["tiny"][
        "learning_rate"]
    assert output.count("Tuner trial") == 2 and "(best)" in output
