"""Factory of the fine-tuning pipeline (one per task).

TaskExampleGen (the task's loader; {SPAN} patterns) -> StatisticsGen -> SchemaGen (or ImportSchemaGen
  of finetune.schema_path) -> ExampleValidator -> DataGate (schema anomalies, unknown labels, drift
  against the blessed model's data) -> [only if it passed: tfx.dsl.Cond] Transform(task preprocessing_fn)
  -> Trainer(task run_fn, encoder = the pretrained encoder via Importer; base_model (TFX's warm
             start) = the latest blessed model, continued from where its task and labels match)
  -> Evaluator(TFMA, the task's metrics; thresholds and the latest blessed model as baseline -> blessing)
  -> ServingPusher(op check, load check, warm-up requests, atomic <serving_base>/<model_name>/<version>)
With ``distill.enabled``, the fine-tuned model is the teacher of a second branch (with
``distill.teacher_uri``, an imported model is, and the pipeline is only that branch):
  StudentTrainer(task distill_run_fn, base_model = the teacher, the same Transform output)
  -> StudentEvaluator(TFMA, the teacher as baseline: main metric >= min_retention x the teacher's)
  -> StudentPusher(<serving_base>/<distill.model_name>/<version>)
The student's blessing is a StudentBlessing (components/artifacts.py), so the next run's
latest-blessed-model baseline is a teacher, never a student, on every orchestrator.
"""
from __future__ import annotations

import os

from tfx import v1 as tfx

from tfx_bert_app.components.bert_trainer.component import BertTrainer
from tfx_bert_app.components.bert_trainer.executor import STUDENT_ROLE
from tfx_bert_app.components.bert_tuner.component import BertTuner
from tfx_bert_app.components.data_gate import executor as data_gate
from tfx_bert_app.components.data_gate.component import DataGate
from tfx_bert_app.components.serving_pusher.component import ServingPusher, StudentPusher
from tfx_bert_app.pipeline import common, task_wiring
from tfx_bert_app.pipeline.parameters import PipelineParameters
from tfx_bert import tasks
from tfx_bert.config import FinetuneConfig, ProjectConfig, distill_settings, trainer_settings, tuner_settings


def create_finetuning_pipeline(config: ProjectConfig, params: PipelineParameters, encoder_uri: str,
                               beam_args: list[str], negative_model: str | None = None) -> tfx.dsl.Pipeline:
    """Builds the fine-tuning pipeline for ``config.finetune.task``.

    ``params.data_path`` holds ``train/*.csv`` and ``eval/*.csv``; ``encoder_uri`` is a
    pretrained encoder directory (keras-hub preset with its vocabulary); ``beam_args`` are the
    Beam components' pipeline args; ``negative_model`` (ranking tasks): the first stage that
    mines negatives, resolved (default ``finetune.negative_model``). Everything after the data
    gate runs inside ``tfx.dsl.Cond`` on its verdict: a span it stops trains and pushes nothing.
    """
    f = config.finetune
    task = tasks.get_task(f.task)
    example_gen = task_wiring.example_gen(task, f, params.data_path,
                                          f.setting("negative_model", "") if negative_model is None else negative_model)
    # A validation split held out of train by hash is train's own distribution: its statistics
    # would repeat train's (a third of StatisticsGen's time); read from its own files, it is checked.
    held_out = ["validation"] if f.validation_percent and not f.validation_pattern else []
    statistics = tfx.components.StatisticsGen(examples=example_gen.outputs["examples"], exclude_splits=held_out)
    schema = (tfx.components.ImportSchemaGen(schema_file=f.schema_path) if f.schema_path
              else tfx.components.SchemaGen(statistics=statistics.outputs["statistics"]))
    validator = tfx.components.ExampleValidator(statistics=statistics.outputs["statistics"],
                                                schema=schema.outputs["schema"])
    encoder = _import_model(encoder_uri, "pretrained_encoder")
    # The latest model this pipeline blessed (a teacher: a student's blessing is a StudentBlessing,
    # which this ModelBlessing channel never holds): its data is the gate's drift baseline; the
    # Trainer may continue from it (finetune.warm_start); TFMA compares the candidate against it.
    baseline = tfx.dsl.Resolver(
        strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
        model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
        model_blessing=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing),
    ).with_id("latest_blessed_model")
    gate = DataGate(examples=example_gen.outputs["examples"], anomalies=validator.outputs["anomalies"],
                    baseline_model=baseline.outputs["model"], encoder=encoder.outputs["result"],
                    label_linf=f.drift_label_linf, length_js=f.drift_length_js, unknown_js=f.drift_unknown_js,
                    allow_anomalies=f.allow_anomalies)
    components = [example_gen, statistics, schema, validator, encoder, baseline, gate]
    with tfx.dsl.Cond(gate.outputs["result"].future()[0].custom_property(data_gate.PASSED) == 1):
        components += _after_gate(config, task, params, encoder_uri, example_gen, schema, encoder, baseline,
                                  gate.outputs["result"])
    return common.make_pipeline(config, f.pipeline_name, components, beam_args)


def _after_gate(config: ProjectConfig, task, params: PipelineParameters, encoder_uri: str, example_gen, schema,
                encoder, baseline, gate_result) -> list:
    """Transform -> Trainer -> Evaluator [-> ZeroShotGate] -> Pusher [-> student branch]
    [-> VectorIndexer]; with ``distill.teacher_uri``, Transform and the student branch only."""
    f = config.finetune
    transform = tfx.components.Transform(
        examples=example_gen.outputs["examples"],
        schema=schema.outputs["schema"],
        preprocessing_fn=task.preprocessing_fn,
        # Transformed features are token ids: their statistics tell nothing StatisticsGen's raw
        # ones do not, and computing them (with anomaly checks) took a third of Transform's time.
        disable_statistics=True,
        custom_config={"task": f.task, **{k: getattr(f, k) for k in task.transform_settings},
                       "encoder_dir": encoder_uri},
    )
    if config.distill.enabled and config.distill.teacher_uri:  # a teacher from elsewhere: the student only
        teacher = _import_model(config.distill.teacher_uri, "teacher_model")
        return [transform, teacher, *_distillation(config, task, transform, schema, example_gen,
                                                   teacher.outputs["result"], encoder_uri, params.data_path,
                                                   gate_result)]
    # Retrieval's optional teacher: a fine-tuned re-ranker whose score margins the dual encoder learns.
    cross_encoder_uri = f.setting("cross_encoder_uri", "")
    cross_encoder = _import_model(cross_encoder_uri, "cross_encoder_teacher") if cross_encoder_uri else None
    tuner = _tuner(task, f, transform, schema, encoder) if f.tuning.trials else None
    trainer = _trainer(task.run_fn, transform, schema, baseline.outputs["model"] if f.warm_start == "auto" else None,
                       params.train_steps, f, trainer_settings(f),
                       data_dir=params.data_path if task.reads_task_data_in_trainer(f) else None,
                       teacher_model=cross_encoder.outputs["result"] if cross_encoder else None,
                       encoder=encoder.outputs["result"],
                       data_gate=gate_result,
                       hyperparameters=tuner.outputs["best_hyperparameters"] if tuner else None).with_id("Trainer")
    evaluator = task_wiring.evaluator(task, f, params.data_path, example_gen.outputs["examples"],
                                      trainer.outputs["model"], baseline.outputs["model"],
                                      encoder.outputs["result"]).with_id("Evaluator")
    zero_shot = task_wiring.zero_shot_gate(task, f, evaluator, trainer.outputs["model"],
                                           example_gen.outputs["examples"], encoder.outputs["result"])
    blessing = zero_shot.outputs["gated_blessing"] if zero_shot else evaluator.outputs["blessing"]
    pusher = _pusher(config, f.model_name, trainer, evaluator, blessing, example_gen, gate_result,
                     encoder_uri).with_id("Pusher")
    components = [transform, *([cross_encoder] if cross_encoder else []), *([tuner] if tuner else []), trainer,
                  evaluator,
                  *([zero_shot] if zero_shot else []), pusher]
    if config.distill.enabled:
        components += _distillation(config, task, transform, schema, example_gen, trainer.outputs["model"], encoder_uri,
                                    params.data_path, gate_result)
    if f.setting("index_corpus", ""):
        components.append(common.vector_indexer(config, trainer.outputs["model"], f.index_corpus,
                                                f.index_corpus_format, f.index_type, f.vector_store_uri,
                                                f.model_name, model_blessing=blessing))
    return components


def _import_model(uri: str, component_id: str) -> tfx.dsl.Importer:
    """A Model artifact from a directory: a serving dir (<uri>/Format-Serving, as the encoder and
    the teachers are given) is imported at its artifact root, so a Trainer's ``base_model``
    resolves to it."""
    root = os.path.dirname(uri.rstrip("/")) if uri.rstrip("/").endswith("Format-Serving") else uri
    return tfx.dsl.Importer(source_uri=root, artifact_type=tfx.types.standard_artifacts.Model,
                            reimport=False).with_id(component_id)


def _tuner(task, f: FinetuneConfig, transform, schema, encoder) -> BertTuner:
    """TFX's Tuner over the task's search space (``finetune.tuning``; models/tuning.py): short
    trials from the encoder on the train split, scored on the validation split."""
    return BertTuner(
        tuner_fn=task.tuner_fn, examples=transform.outputs["transformed_examples"],
        transform_graph=transform.outputs["transform_graph"], schema=schema.outputs["schema"],
        base_model=encoder.outputs["result"],
        train_args=tfx.proto.TrainArgs(num_steps=f.tuning.steps_per_trial),
        eval_args=tfx.proto.EvalArgs(num_steps=f.eval_steps, splits=["validation"]),
        custom_config=tuner_settings(f)).with_id("Tuner")


def _trainer(run_fn: str, transform, schema, base_model, train_steps, f: FinetuneConfig, settings: dict,
             data_dir=None, teacher_model=None, model_role: str = "", encoder=None,
             data_gate=None, hyperparameters=None) -> BertTrainer:
    """A Trainer on the Transform output (the teacher's from the encoder, the student's from the
    teacher), validating on the validation split if there is one (else the eval split, for the
    logs only); ``data_dir``: the task data, for a run_fn that reads it (retrieval's mining
    round); ``teacher_model``: a model it learns from besides (retrieval's cross-encoder);
    ``encoder``: a fine-tuning Trainer's encoder, whose ``base_model`` is then the blessed model
    it may continue from (TFX's warm start; None: none); ``data_gate``: the gate that let
    its data through (its data profile is kept with the model, the next span's drift baseline);
    ``hyperparameters``: the Tuner's best values, which the run_fn trains with."""
    return BertTrainer(
        run_fn=run_fn,
        examples=transform.outputs["transformed_examples"],
        transform_graph=transform.outputs["transform_graph"],
        schema=schema.outputs["schema"],
        base_model=base_model,
        train_steps=train_steps, eval_steps=f.eval_steps, eval_split="validation" if f.has_validation else "eval",
        custom_config=settings, data_dir=data_dir, teacher_model=teacher_model, model_role=model_role,
        encoder=encoder, data_gate=data_gate, hyperparameters=hyperparameters)


def _pusher(config: ProjectConfig, model_name: str, trainer, evaluator, blessing, example_gen, gate_result,
            encoder_uri: str, student: bool = False) -> ServingPusher:
    """The Pusher of ``trainer``'s model on ``blessing``, writing each version's model card from
    the run's artifacts (examples, data gate, ``evaluator``'s evaluation, the model run)."""
    f = config.finetune
    return (StudentPusher if student else ServingPusher)(
        model=trainer.outputs["model"],
        model_blessing=blessing,
        push_destination=tfx.proto.PushDestination(
            filesystem=tfx.proto.PushDestination.Filesystem(
                base_directory=os.path.join(config.serving_base, model_name))),
        custom_config={"keep_versions": f.keep_versions, "model_name": model_name,
                       "warmup_texts": list(f.warmup_texts), "task": f.task, "encoder_uri": encoder_uri,
                       "intended_use": f.intended_use, "limitations": f.limitations},
        card_inputs={"examples": example_gen.outputs["examples"], "data_gate": gate_result,
                     "evaluation": evaluator.outputs["evaluation"], "model_run": trainer.outputs["model_run"]})


def _distillation(config: ProjectConfig, task, transform, schema, example_gen, teacher, encoder_uri: str,
                  data_path, gate_result) -> list:
    """The student branch: trained from ``teacher`` (a Model channel) on the same Transform
    output, gated on keeping ``distill.min_retention`` of the teacher's main metric, pushed under
    its own name. The student's run_fn gets the Transform's encoder (``encoder_dir``) to check
    that the teacher shares its vocabulary."""
    d, f = config.distill, config.finetune
    student = _trainer(task.distill_run_fn, transform, schema, teacher, d.train_steps, f,
                       {**distill_settings(config), "encoder_dir": encoder_uri}, model_role=STUDENT_ROLE
                       ).with_id("StudentTrainer")
    evaluator = task_wiring.student_evaluator(task, f, data_path, example_gen.outputs["examples"],
                                              student.outputs["model"], teacher, d.min_retention
                                              ).with_id("StudentEvaluator")
    pusher = _pusher(config, d.model_name, student, evaluator, evaluator.outputs["blessing"], example_gen, gate_result,
                     encoder_uri, student=True)
    return [student, evaluator, pusher.with_id("StudentPusher")]
