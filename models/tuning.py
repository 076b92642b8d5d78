"""TFX's Tuner over BERT's fine-tuning grid: the ``tuner_fn`` of every task.

Each trial is a short fine-tuning (``finetune.tuning.steps_per_trial`` steps) of the task's model
from the encoder in ``base_model``, with one learning rate and batch size from the search space
(``tfx_bert.config.search_space``: the recipe's grid, or the user's lists), scored on the
validation split by the task's main Keras metric (its first; else the loss), never on the eval
split the Evaluator gates with. KerasTuner's random or Bayesian oracle picks the trials; the
Trainer then trains with the best values (``finetuning.start`` reads them from
``fn_args.hyperparameters``). The number of epochs is not searched: a trial of a few steps
cannot rank it.
"""
from __future__ import annotations

import time

import keras_tuner
from tfx.components.tuner.component import TunerFnResult

from tfx_bert import registry, tasks
from tfx_bert.config import TUNING_KEY, TuningConfig, search_space
from tfx_bert_app.models import encoder as encoder_lib
from tfx_bert_app.models import finetuning


class TrialTuner(keras_tuner.Tuner):
    """Runs each trial as a short fine-tuning of the task's model (no hypermodel: the task
    builds the model; the batch size changes the datasets, which a hypermodel cannot)."""

    def __init__(self, fn_args, settings, space: dict, steps: int, monitor: str, **kwargs):
        super().__init__(**kwargs)
        self.fn_args, self.settings, self.space, self.steps, self.monitor = fn_args, settings, space, steps, monitor

    def run_trial(self, trial, *args, **kwargs) -> dict:
        started = time.time()
        hp = trial.hyperparameters
        settings = finetuning.with_hyperparameters(self.settings, {
            "learning_rate": hp.Choice("learning_rate", self.space["learning_rate"]),
            "batch_size": hp.Choice("batch_size", self.space["batch_size"])})
        task = tasks.get_task(settings.task)
        tokenizer = encoder_lib.load_tokenizer(self.fn_args.base_model)
        model = task.build_model(self.fn_args.base_model, settings, tokenizer)
        data = finetuning.trainer_data(self.fn_args, settings)
        trained, _ = task.training_model(data, model, tokenizer)
        finetuning.compile_task(task, trained, model, settings, self.steps, settings.learning_rate)
        inputs = lambda files, training: finetuning.length_aware(task.build_inputs(data, files, training), settings, task)  # noqa: E731
        history = trained.fit(inputs(self.fn_args.train_files, True), steps_per_epoch=self.steps, epochs=1, verbose=0,
                              validation_data=inputs(self.fn_args.eval_files, False),
                              validation_steps=self.fn_args.eval_steps).history
        value = float(history[f"val_{self.monitor}"][-1])
        print(f"  [tune] trial {trial.trial_id}: learning_rate={settings.learning_rate:g}, batch_size="
              f"{settings.batch_size} -> val_{self.monitor}={value:.4f} ({time.time() - started:.1f} s)", flush=True)
        return {f"val_{self.monitor}": value, "seconds": time.time() - started}


def tuner_fn(fn_args) -> TunerFnResult:
    """The Tuner's entry point for every task (``custom_config``: the Trainer's settings plus
    ``tuning``, the TuningConfig)."""
    settings = finetuning.start(fn_args)
    tuning = TuningConfig(**(fn_args.custom_config or {}).get(TUNING_KEY, {}))
    space = search_space(settings, tuning, registry.encoder_width(encoder_lib.resolve_dir(fn_args.base_model)))
    task = tasks.get_task(settings.task)
    metrics = task.build_metrics(settings)
    monitor = metrics[0].name if metrics else "loss"
    objective = keras_tuner.Objective(f"val_{monitor}", direction="min" if monitor == "loss" else "max")
    oracle_class = (keras_tuner.oracles.BayesianOptimizationOracle if tuning.oracle == "bayesian"
                    else keras_tuner.oracles.RandomSearchOracle)
    # A failed trial stops the search with its error (KerasTuner would otherwise go on, and the
    # "best" values could be a failed trial's).
    oracle = oracle_class(objective=objective, max_trials=tuning.trials, seed=settings.seed,
                          max_consecutive_failed_trials=1)
    print(f"  [tune] {tuning.trials} trials of {tuning.steps_per_trial} steps ({tuning.oracle} search) over "
          f"learning_rate {space['learning_rate']} x batch_size {space['batch_size']}, scored by val_{monitor}",
          flush=True)
    tuner = TrialTuner(fn_args, settings, space, tuning.steps_per_trial, monitor, oracle=oracle,
                       directory=fn_args.working_dir, project_name="trials", overwrite=True)
    return TunerFnResult(tuner=tuner, fit_kwargs={})
