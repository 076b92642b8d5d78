"""Factory of the pretraining pipeline.

TextExampleGen -> [StatisticsGen -> SchemaGen -> ExampleValidator] -> WordPieceVocabGen
  -> PretrainingDataGen -> Trainer(models.pretraining.run_fn) -> encoder (Model artifact)
"""
from __future__ import annotations

import os

from tfx import v1 as tfx

from components.pretraining_data.component import PretrainingDataGen
from components.text_example_gen.component import TextExampleGen
from components.wordpiece_vocab.component import WordPieceVocabGen
from pipeline import common
from tfx_bert.config import ProjectConfig


def create_pretraining_pipeline(config: ProjectConfig, corpus_pattern: str) -> tfx.dsl.Pipeline:
    """Builds the pretraining pipeline for ``config`` over the files matching ``corpus_pattern``."""
    p = config.pretrain
    example_gen = TextExampleGen(
        input_pattern=corpus_pattern, input_format=p.input_format, text_field=p.text_field,
        id_field=p.id_field, eval_percent=p.eval_percent, max_line_chars=p.max_line_chars,
        strict=p.strict, per_line=p.per_line)
    components = [example_gen]
    if p.enable_statistics:
        statistics = tfx.components.StatisticsGen(examples=example_gen.outputs["examples"])
        schema = tfx.components.SchemaGen(statistics=statistics.outputs["statistics"])
        validator = tfx.components.ExampleValidator(
            statistics=statistics.outputs["statistics"], schema=schema.outputs["schema"])
        components += [statistics, schema, validator]
    vocab = WordPieceVocabGen(
        examples=example_gen.outputs["examples"], vocab_size=p.vocab_size,
        lower_case=p.lower_case, num_unused_tokens=p.num_unused_tokens, vocab_path=p.vocab_path)
    instances = PretrainingDataGen(
        examples=example_gen.outputs["examples"], vocabulary=vocab.outputs["vocabulary"],
        max_seq_length=p.max_seq_length, short_seq_prob=p.short_seq_prob,
        nsp_shards=p.nsp_shards, seed=p.seed, masking=p.masking, dupe_factor=p.dupe_factor,
        masked_lm_prob=p.masked_lm_prob, max_predictions_per_seq=p.max_predictions_per_seq,
        whole_word_masking=p.whole_word_masking)
    trainer_config = {  # models.pretraining.PretrainingSettings
        "model_size": p.model_size,
        "batch_size": p.batch_size,
        "learning_rate": p.learning_rate,
        "warmup_steps": p.warmup_steps,
        "optimizer": p.optimizer,
        "max_predictions_per_seq": p.max_predictions_per_seq,
        "masked_lm_prob": p.masked_lm_prob,
        "seed": p.seed,
        "dropout": p.dropout,
        "distribution": p.distribution,
        "tpu": p.tpu,
        "mixed_precision": p.mixed_precision,
        "jit_compile": p.jit_compile,
        "checkpoint_dir": config.checkpoint_root,
        "checkpoint_every": p.checkpoint_every,
    }
    trainer = tfx.components.Trainer(
        run_fn="models.pretraining.run_fn",
        examples=instances.outputs["pretraining_examples"],
        train_args=tfx.proto.TrainArgs(num_steps=p.train_steps),
        eval_args=tfx.proto.EvalArgs(num_steps=p.eval_steps),
        custom_config=trainer_config,
    )
    components += [vocab, instances, trainer]
    if p.phase2_max_seq_length:
        # Phase 2 (BERT's recipe): longer sequences, warm-started from phase 1's model.
        instances2 = PretrainingDataGen(
            examples=example_gen.outputs["examples"], vocabulary=vocab.outputs["vocabulary"],
            max_seq_length=p.phase2_max_seq_length, short_seq_prob=p.short_seq_prob,
            nsp_shards=p.nsp_shards, seed=p.seed + 1, masking=p.masking, dupe_factor=p.dupe_factor,
            masked_lm_prob=p.masked_lm_prob, max_predictions_per_seq=p.phase2_max_predictions_per_seq,
            whole_word_masking=p.whole_word_masking).with_id("PretrainingDataGenPhase2")
        trainer2 = tfx.components.Trainer(
            run_fn="models.pretraining.run_fn",
            examples=instances2.outputs["pretraining_examples"],
            base_model=trainer.outputs["model"],
            train_args=tfx.proto.TrainArgs(num_steps=p.phase2_train_steps),
            eval_args=tfx.proto.EvalArgs(num_steps=p.eval_steps),
            custom_config=dict(trainer_config, max_predictions_per_seq=p.phase2_max_predictions_per_seq,
                               warmup_steps=min(p.warmup_steps, p.phase2_train_steps // 10)),
        ).with_id("TrainerPhase2")
        components += [instances2, trainer2]
    return tfx.dsl.Pipeline(
        pipeline_name=p.pipeline_name,
        pipeline_root=os.path.join(config.pipelines_root, p.pipeline_name),
        components=components,
        metadata_connection_config=common.metadata_config(config),
        beam_pipeline_args=list(config.beam_pipeline_args),
        enable_cache=True,
    )
