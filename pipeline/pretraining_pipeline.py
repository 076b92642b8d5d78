"""Factory of the pretraining pipeline.

TextExampleGen -> [StatisticsGen -> SchemaGen (or ImportSchemaGen) -> ExampleValidator -> DataGate,
  the rest inside tfx.dsl.Cond on its verdict] -> WordPieceVocabGen (or CheckpointImport with
  pretrain.init_from) -> PretrainingDataGen -> Trainer(models.pretraining.run_fn) -> encoder
  (Model artifact)
"""
from __future__ import annotations


from tfx import v1 as tfx

from tfx_bert_app.components.checkpoint_import.component import CheckpointImport
from tfx_bert_app.components.pretraining_data.component import PretrainingDataGen
from tfx_bert_app.components.text_example_gen.component import TextExampleGen
from tfx_bert_app.components.wordpiece_vocab.component import WordPieceVocabGen
from tfx_bert_app.components.bert_trainer.component import BertTrainer
from tfx_bert_app.components.data_gate import executor as data_gate
from tfx_bert_app.components.data_gate.component import DataGate
from tfx_bert_app.pipeline import common
from tfx_bert_app.pipeline.parameters import PipelineParameters
from tfx_bert import accelerators
from tfx_bert.config import ProjectConfig


def create_pretraining_pipeline(config: ProjectConfig, params: PipelineParameters,
                                beam_args: list[str]) -> tfx.dsl.Pipeline:
    """Builds the pretraining pipeline for ``config`` over the files matching
    ``params.data_path``; ``beam_args`` are the Beam components' pipeline args."""
    p = config.pretrain
    example_gen = TextExampleGen(
        input_pattern=params.data_path, input_format=p.input_format, text_field=p.text_field,
        id_field=p.id_field, eval_percent=p.eval_percent, max_line_chars=p.max_line_chars,
        strict=p.strict, per_line=p.per_line, span_range=p.span_range)
    components = [example_gen]
    if not p.enable_statistics:
        components += _training(config, params, example_gen)
        return common.make_pipeline(config, p.pipeline_name, components, beam_args)
    statistics = tfx.components.StatisticsGen(examples=example_gen.outputs["examples"])
    schema = (tfx.components.ImportSchemaGen(schema_file=p.schema_path) if p.schema_path
              else tfx.components.SchemaGen(statistics=statistics.outputs["statistics"]))
    validator = tfx.components.ExampleValidator(
        statistics=statistics.outputs["statistics"], schema=schema.outputs["schema"])
    # The corpus's gate: the ExampleValidator's anomalies stop the run before the vocabulary and
    # the Trainer (pretrain.allow_anomalies lets it through knowingly), as fine-tuning's does.
    gate = DataGate(examples=example_gen.outputs["examples"], anomalies=validator.outputs["anomalies"],
                    allow_anomalies=p.allow_anomalies)
    components += [statistics, schema, validator, gate]
    with tfx.dsl.Cond(gate.outputs["result"].future()[0].custom_property(data_gate.PASSED) == 1):
        components += _training(config, params, example_gen)
    return common.make_pipeline(config, p.pipeline_name, components, beam_args)


def _training(config: ProjectConfig, params: PipelineParameters, example_gen) -> list:
    """WordPieceVocabGen (or, with ``pretrain.init_from``, CheckpointImport: the checkpoint's
    vocabulary, and its model as the Trainer's base_model) -> PretrainingDataGen -> Trainer
    [-> phase 2's data and Trainer]."""
    p = config.pretrain
    distribution, mixed_precision = accelerators.training_strategy(config)
    if p.init_from:
        vocab = CheckpointImport(source=p.init_from, casing="uncased" if p.lower_case else "cased")
        base_model = vocab.outputs["model"]
    else:
        vocab = WordPieceVocabGen(
            examples=example_gen.outputs["examples"], vocab_size=p.vocab_size,
            lower_case=p.lower_case, num_unused_tokens=p.num_unused_tokens, vocab_path=p.vocab_path)
        base_model = None
    instances = PretrainingDataGen(
        examples=example_gen.outputs["examples"], vocabulary=vocab.outputs["vocabulary"],
        max_seq_length=p.max_seq_length, short_seq_prob=p.short_seq_prob,
        nsp_shards=p.nsp_shards, seed=p.seed, masking=p.masking, dupe_factor=p.dupe_factor,
        masked_lm_prob=p.masked_lm_prob, max_predictions_per_seq=p.max_predictions_per_seq,
        whole_word_masking=p.whole_word_masking)
    trainer_config = {  # models.pretraining.PretrainingSettings
        "batch_size": p.batch_size,
        "batch_size_per_replica": p.batch_size_per_replica,
        "learning_rate": p.learning_rate,
        "warmup_steps": p.warmup_steps,
        "optimizer": p.optimizer,
        "max_predictions_per_seq": p.max_predictions_per_seq,
        "masked_lm_prob": p.masked_lm_prob,
        "seed": p.seed,
        "deterministic": p.deterministic,
        "dropout": p.dropout,
        "distribution": distribution,
        "tpu": p.tpu,
        "mixed_precision": mixed_precision,
        "jit_compile": p.jit_compile,
        "checkpoint_dir": config.checkpoint_root,
        "checkpoint_every": p.checkpoint_every,
    }
    vertex_job = _vertex_job(config) if config.resources.trainer.replicas > 1 else None
    trainer = BertTrainer(
        run_fn="tfx_bert_app.models.pretraining.run_fn",
        examples=instances.outputs["pretraining_examples"], base_model=base_model,
        train_steps=params.train_steps, eval_steps=p.eval_steps, model_size=params.model_size,
        custom_config=trainer_config, vertex_job=vertex_job, vertex_region=config.kubeflow.region,
    ).with_id("Trainer")
    components = [vocab, instances, trainer]
    if p.phase2_max_seq_length:
        # Phase 2 (BERT's recipe): longer sequences, warm-started from phase 1's model.
        instances2 = PretrainingDataGen(
            examples=example_gen.outputs["examples"], vocabulary=vocab.outputs["vocabulary"],
            max_seq_length=p.phase2_max_seq_length, short_seq_prob=p.short_seq_prob,
            nsp_shards=p.nsp_shards, seed=p.seed + 1, masking=p.masking, dupe_factor=p.dupe_factor,
            masked_lm_prob=p.masked_lm_prob, max_predictions_per_seq=p.phase2_max_predictions_per_seq,
            whole_word_masking=p.whole_word_masking).with_id("PretrainingDataGenPhase2")
        trainer2 = BertTrainer(
            run_fn="tfx_bert_app.models.pretraining.run_fn",
            examples=instances2.outputs["pretraining_examples"],
            base_model=trainer.outputs["model"],
            train_steps=p.phase2_train_steps, eval_steps=p.eval_steps, model_size=params.model_size,
            custom_config=dict(trainer_config, max_predictions_per_seq=p.phase2_max_predictions_per_seq,
                               warmup_steps=min(p.warmup_steps, p.phase2_train_steps // 10)),
            vertex_job=vertex_job, vertex_region=config.kubeflow.region,
        ).with_id("TrainerPhase2")
        components += [instances2, trainer2]
    return components


def _vertex_job(config: ProjectConfig) -> dict:
    """Vertex custom-job spec for multi-worker pretraining: one chief plus ``replicas - 1``
    workers of the same machine, each running this project's image."""
    trainer = config.resources.trainer
    if not config.kubeflow.project:
        raise ValueError("resources.trainer.replicas > 1 trains on Vertex AI: set kubeflow.project "
                         "(and kubeflow.region).")
    machine = {"machine_type": trainer.machine_type or "n1-standard-8"}
    if trainer.accelerator_type and trainer.accelerator_count:
        machine.update(accelerator_type=trainer.accelerator_type, accelerator_count=trainer.accelerator_count)
    pool = {"machine_spec": machine, "container_spec": {"image_uri": config.kubeflow.image}}
    return {
        "project": config.kubeflow.project,
        "worker_pool_specs": [dict(pool, replica_count=1), dict(pool, replica_count=trainer.replicas - 1)],
    }
