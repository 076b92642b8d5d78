import json
import os

import pytest

from tfx_bert import config as config_lib
from tfx_bert import registry


def test_defaults_validate():
    config = config_lib.load_config()
    assert config.pretrain.vocab_size == 30522
    assert config.finetune.task == "sentiment"


def test_yaml_then_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("pretrain:\n  train_steps: 7\n  lower_case: false\nfinetune:\n  model_name: m\n")
    config = config_lib.load_config(str(path), ["pretrain.train_steps=9", "work_dir=/x"])
    assert config.pretrain.train_steps == 9
    assert config.pretrain.lower_case is False
    assert config.finetune.model_name == "m"
    assert config.metadata_path == "/x/metadata.sqlite"


def test_demo_config_is_tiny_and_reproducible():
    config = config_lib.demo_config()
    assert config.pretrain.model_size == "tiny"
    assert config.pretrain.vocab_size < 30522
    assert config.pretrain.deterministic and config.pretrain.masking == "static" and config.finetune.deterministic


def test_deterministic_pretraining_needs_static_masking():
    with pytest.raises(ValueError, match="pretrain.deterministic needs pretrain.masking=static"):
        config_lib.load_config(overrides=["pretrain.deterministic=true"])
    assert config_lib.load_config(overrides=["pretrain.deterministic=true", "pretrain.masking=static"])


def test_unknown_key_names_the_key_and_known_ones():
    with pytest.raises(ValueError, match=r"Unknown config key 'pretrain.trian_steps'.*train_steps"):
        config_lib.load_config(overrides=["pretrain.trian_steps=3"])


def test_wrong_type_is_explained():
    with pytest.raises(ValueError, match=r"pretrain.train_steps expects int, got 'many'"):
        config_lib.load_config(overrides=["pretrain.train_steps=many"])


def test_invalid_values_are_rejected():
    with pytest.raises(ValueError, match="max_seq_length must be 8..512"):
        config_lib.load_config(overrides=["pretrain.max_seq_length=4"])
    with pytest.raises(ValueError, match="Unknown model size 'huge'"):
        config_lib.load_config(overrides=["pretrain.model_size=huge"])


def test_negative_mining_settings_are_checked_and_reach_the_trainer():
    with pytest.raises(ValueError, match="mining_steps mines from a BEIR corpus"):
        config_lib.load_config(demo=True, overrides=["finetune.task=retrieval", "finetune.mining_steps=10",
                                                     "finetune.input_format=msmarco_triples"])
    with pytest.raises(ValueError, match="negative_miner=dense needs finetune.negative_model"):
        config_lib.load_config(demo=True, overrides=["finetune.task=rerank", "finetune.negative_miner=dense"])
    with pytest.raises(ValueError, match="negative_miner=hybrid needs finetune.negative_model"):
        config_lib.load_config(demo=True, overrides=["finetune.task=rerank", "finetune.negative_miner=hybrid"])
    with pytest.raises(ValueError, match="negative_miner=hybrid fuses ranks"):
        config_lib.load_config(demo=True, overrides=["finetune.task=rerank", "finetune.negative_miner=hybrid",
                                                     "finetune.negative_model=/models/dual", "finetune.negative_margin=0"])
    with pytest.raises(ValueError, match="need 1 <= num_negatives <= negative_rank_max - negative_rank_min"):
        config_lib.load_config(demo=True, overrides=["finetune.task=rerank", "finetune.negative_miner=bm25",
                                                     "finetune.negative_rank_min=5", "finetune.negative_rank_max=8"])
    f = config_lib.load_config(demo=True, overrides=["finetune.task=retrieval", "finetune.mining_steps=10"]).finetune
    settings = config_lib.trainer_settings(f)
    assert settings["mining_steps"] == 10 and settings["train_pattern"] == f.train_pattern
    assert settings["mining_margin"] == float("-inf") and "negative_rank_max" in settings
    assert "train_pattern" not in config_lib.trainer_settings(config_lib.load_config(demo=True).finetune)


def test_finetune_mixed_precision_auto_follows_the_trainer_resources():
    """finetune.mixed_precision: auto is resolved once, from resources.trainer, and reaches the
    Trainer's settings; a value the user sets wins."""
    def precision(*overrides):
        f = config_lib.load_config(demo=True, overrides=list(overrides)).finetune
        assert config_lib.trainer_settings(f)["mixed_precision"] == f.mixed_precision
        return f.mixed_precision

    assert precision() == "float32"
    gpu = ["resources.trainer.accelerator_type=NVIDIA_TESLA_A100", "resources.trainer.accelerator_count=1"]
    assert precision(*gpu) == "mixed_float16"
    assert precision("resources.trainer.accelerator_type=TPU_V3", "resources.trainer.accelerator_count=8") == "mixed_bfloat16"
    assert precision(*gpu, "finetune.mixed_precision=float32") == "float32"
    assert precision("finetune.mixed_precision=mixed_bfloat16") == "mixed_bfloat16"
    with pytest.raises(ValueError, match="finetune.mixed_precision must be one of auto, float32, mixed_bfloat16"):
        config_lib.load_config(demo=True, overrides=["finetune.mixed_precision=bf16"])


def test_missing_config_file():
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        config_lib.load_config("nope.yaml")


def test_model_size_registry_has_published_shapes():
    shapes = {n: (s.num_layers, s.hidden_dim) for n, s in registry.MODEL_SIZES.items()}
    assert shapes == {"tiny": (2, 128), "mini": (4, 256), "small": (4, 512), "medium": (8, 512),
                      "base": (12, 768), "large": (24, 1024)}
    assert registry.get_model_size("base").num_heads == 12


def test_choices_are_typed_and_the_error_lists_the_allowed_values():
    with pytest.raises(ValueError, match=r"finetune.pooling must be one of mean, cls, max; got 'sum'"):
        config_lib.load_config(overrides=["finetune.task=similarity", "finetune.pooling=sum"])
    with pytest.raises(ValueError, match=r"beam.runner must be one of direct, dataflow, flink, spark"):
        config_lib.load_config(overrides=["beam.runner=local"])
    with pytest.raises(ValueError, match=r"Unknown task 'sentimnt'; known tasks: sentiment, "):
        config_lib.load_config(overrides=["finetune.task=sentimnt"])


def test_a_misplaced_key_names_its_place():
    with pytest.raises(ValueError, match=r"finetune.crf is a setting of the ner task\(s\), but finetune.task is "
                                         r"sentiment"):
        config_lib.load_config(overrides=["finetune.crf=true"])
    assert config_lib.load_config(overrides=["finetune.task=ner", "finetune.crf=true"]).finetune.crf
    with pytest.raises(ValueError, match=r"Unknown config key 'pretrain.crf'. It belongs under finetune.crf"):
        config_lib.load_config(overrides=["pretrain.crf=true"])


def test_task_defaults_sit_below_the_users_values(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("finetune:\n  task: nli\n  model_name: my-nli\n")
    config = config_lib.load_config(str(path), [f"work_dir={tmp_path}"])
    f = config.finetune
    assert (f.model_name, f.pipeline_name, f.similarity_objective) == ("my-nli", "tfx-bert-nli", "classification")
    assert f.data_dir == str(tmp_path / "data" / "nli") and not (tmp_path / "data").exists()
    assert config.pretrain.corpus_pattern == str(tmp_path / "data" / "corpus" / "corpus.txt")
    own = config_lib.load_config(overrides=["finetune.task=nli", f"finetune.data_dir={tmp_path}"]).finetune
    # The task's own data format holds for the user's data (MNLI's GLUE TSV columns); the demo
    # data's own settings (its label names) do not.
    assert (own.data_dir, own.input_format, own.train_pattern, own.text_field, own.label_field) == (
        str(tmp_path), "glue_tsv", "train.tsv", "sentence1", "gold_label")
    assert own.label_names == []


def test_trainer_settings_round_trip_to_typed_settings():
    f = config_lib.load_config(overrides=["finetune.task=ner", "finetune.crf=true", "finetune.batch_size=4"]).finetune
    settings = config_lib.trainer_settings(f)
    assert "crf" in settings and "keep_versions" not in settings and "max_query_length" not in settings
    typed = config_lib.settings_from({**settings, "encoder_dir": "/x"})
    assert (typed.crf, typed.batch_size, typed.entity_types) == (True, 4, f.entity_types)


@pytest.mark.parametrize("content, where, message", [
    ("finetune:\n  train_steps: [1\n", ":3:1: ", "not valid YAML: expected ',' or ']'"),
    ("finetune: {a: b: c}\n", ":1:", "not valid YAML"),
    ("- a\n- b\n", " ", "must hold a mapping")])
def test_malformed_config_files_are_one_line_naming_file_and_line(tmp_path, content, where, message):
    path = tmp_path / "c.yaml"
    path.write_text(content)
    with pytest.raises(ValueError) as info:
        config_lib.load_config(str(path))
    assert f"{path}{where}" in str(info.value) and message in str(info.value), info.value
    assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match="is a directory"):
        config_lib.load_config(str(tmp_path))


def test_demo_loader_settings_fill_defaults_but_an_explicit_set_wins(tmp_path):
    config = config_lib.load_config(overrides=["finetune.task=retrieval", f"work_dir={tmp_path}",
                                               "finetune.accuracy_threshold=0.42"])
    f = config.finetune
    path = f.data_dir
    assert path == os.path.join(str(tmp_path), "data", "retrieval")
    assert not os.path.exists(path)  # resolved, not written: loading a configuration writes nothing
    assert (f.input_format, f.train_pattern, f.eval_pattern) == ("beir", "qrels/train.tsv", "qrels/dev.tsv")
    assert f.index_corpus == os.path.join(path, "corpus.jsonl")  # "{data}" filled in
    assert f.accuracy_threshold == 0.42  # the demo's 0.1 does not replace the user's value
    assert (f.model_name, f.pipeline_name) == ("retrieval", "tfx-bert-retrieval")
    rerank = config_lib.demo_config(["finetune.task=rerank", f"work_dir={tmp_path}"]).finetune
    assert (rerank.train_steps, rerank.num_negatives) == (600, 7)  # over demo.yaml's 200 steps
    explicit = config_lib.demo_config(["finetune.task=rerank", "finetune.train_steps=50"]).finetune
    assert explicit.train_steps == 50  # the user's value over the task's demo value


@pytest.mark.parametrize("yaml_value, flag_value, expected", [
    ("5", "5", 5), ("5.0", "5.0", 5), ("5.7", "5.7", "expects int"), ("true", "true", "expects int"),
    (".nan", "nan", "expects int"), ("1e3", "1e3", 1000)])
def test_numbers_read_the_same_from_yaml_and_flags(tmp_path, yaml_value, flag_value, expected):
    path = tmp_path / "config.yaml"
    path.write_text(f"pretrain:\n  train_steps: {yaml_value}\n")
    for load in (lambda: config_lib.load_config(str(path)),
                 lambda: config_lib.load_config(overrides=[f"pretrain.train_steps={flag_value}"])):
        if isinstance(expected, int):
            assert load().pretrain.train_steps == expected
        else:
            with pytest.raises(ValueError, match=f"pretrain.train_steps {expected}"):
                load()


@pytest.mark.parametrize("override, message", [
    ("finetune.learning_rate=nan", "must be a finite number"), ("finetune.learning_rate=-inf", "finite"),
    ("finetune.strict=2", "expects true/false"), ("serving.max_rows=0", "must be positive"),
    ("finetune.dropout=1.5", r"must be in \[0, 1\)"), ("finetune.learning_rate=-1", "must be positive"),
    ("serving.grpc_port=70000", "1..65535"), ("finetune.keep_versions=0", "at least 1")])
def test_non_finite_and_out_of_range_values_are_refused(override, message):
    with pytest.raises(ValueError, match=message):
        config_lib.load_config(overrides=[override])


def _encoder_config(tmp_path, width: int) -> str:
    (tmp_path / "enc").mkdir(exist_ok=True)
    (tmp_path / "enc" / "config.json").write_text(json.dumps({"model_type": "bert", "hidden_size": width}))
    return str(tmp_path / "enc")


@pytest.mark.parametrize("width, recipe", [(32, "tiny"), (256, "compact"), (512, "compact"), (768, "bert"),
                                           (1024, "bert")])
def test_the_recipe_follows_the_encoders_width(tmp_path, width, recipe):
    from tfx_bert import registry

    config = config_lib.load_config(overrides=[f"finetune.encoder_uri={_encoder_config(tmp_path, width)}"])
    defaults = config_lib.FinetuneConfig()
    for key in ("learning_rate", "epochs", "batch_size", "max_seq_length"):
        assert getattr(config.finetune, key) == registry.RECIPES[recipe].get(key, getattr(defaults, key)), key


def test_what_the_user_sets_wins_over_the_recipe(tmp_path):
    uri = _encoder_config(tmp_path, 768)
    config = config_lib.load_config(overrides=[f"finetune.encoder_uri={uri}", "finetune.learning_rate=5e-5"])
    assert (config.finetune.learning_rate, config.finetune.epochs) == (5e-5, 3.0)
    config = config_lib.load_config(overrides=[f"finetune.encoder_uri={uri}", "finetune.train_steps=50"])
    assert (config.finetune.train_steps, config.finetune.epochs) == (50, 0.0)  # steps asked for: no epochs
    config = config_lib.load_config(overrides=[f"finetune.encoder_uri={uri}", "finetune.recipe=tiny"])
    assert (config.finetune.learning_rate, config.finetune.epochs) == (config_lib.FinetuneConfig().learning_rate, 0.0)
    # From this project's own pretraining: the width of pretrain.model_size.
    config = config_lib.load_config(overrides=["pretrain.model_size=base"])
    assert config.finetune.learning_rate == 2e-5


def test_distillation_settings_resolve_from_fine_tuning_and_are_checked(monkeypatch):
    import dataclasses

    from tfx_bert import tasks

    load_config = config_lib.load_config
    c = load_config(overrides=["distill.enabled=true", "finetune.train_steps=77"])
    assert (c.distill.model_name, c.distill.train_steps, c.distill.learning_rate) == (
        "sentiment-student", 77, c.finetune.learning_rate)
    assert load_config(overrides=["distill.train_steps=5", "distill.model_name=small"]).distill.train_steps == 5
    # Every built-in task has a distillation stage; a registry entry without one is refused.
    assert all(tasks.get_task(name).distillable for name in tasks.BUILT_IN)
    monkeypatch.setattr(type(tasks.TASKS["retrieval"]), "distillable", False)
    with pytest.raises(ValueError, match="retrieval task has no distillation stage yet.*sentiment, "
                                         "pair_classification, multilabel, ner, qa, similarity, nli, rerank"):
        load_config(overrides=["finetune.task=retrieval", "distill.enabled=true"])
    monkeypatch.undo()
    # The served weights' precision: the student's follows the teacher's unless set.
    c = load_config(overrides=["finetune.export_precision=int8"])
    assert (c.finetune.export_precision, c.distill.export_precision) == ("int8", "int8")
    assert load_config(overrides=["distill.export_precision=float16"]).distill.export_precision == "float16"
    for task in ("qa", "similarity", "retrieval", "rerank"):  # every task's export takes it
        assert load_config(overrides=[f"finetune.task={task}", "finetune.export_precision=int8"]).distill.export_precision == "int8"
    for bad, message in (("distill.alpha=1.5", "alpha"), ("distill.temperature=0", "temperature"),
                         ("distill.min_retention=0", "min_retention"), ("distill.student_layers=-1", "student_layers"),
                         ("distill.model_name=sentiment", "must differ"),
                         ("distill.export_precision=int4", "float32, float16 or int8; got 'int4'"),
                         ("distill.teacher_uri=/models/teacher", "teacher_uri is set but distill.enabled is false"),
                         ("distill.student_layers=2,distill.student_encoder_uri=/enc", "exclude each other"),
                         ("distill.ffn_keep=0", r"ffn_keep must be in \(0, 1\]"),
                         ("distill.ffn_keep=0.5,distill.student_encoder_uri=/enc", "ffn_keep and distill.student_enc"),
                         ("distill.hidden_weight=-1", "hidden_weight must be >= 0"),
                         ("distill.attention_weight=-1", "attention_weight must be >= 0"),
                         ("distill.relation_heads=-1", "relation_heads must be >= 0"),
                         ("distill.layer_mapping=middle", "layer_mapping must be one of last, all"),
                         ("finetune.task=rerank,distill.attention_weight=1", "rerank task's model is not fed one"),
                         ("finetune.task=qa,distill.transfer_pattern=/corpus/*.txt", "qa task's examples are not one text"),
                         ("distill.transfer_share=1", r"transfer_share must be in \(0, 1\)"),
                         ("distill.transfer_max=-1", "transfer_max >= 0"),
                         ("finetune.task=retrieval,finetune.cross_encoder_uri=/r,finetune.num_negatives=0",
                          "cross_encoder_uri: Margin-MSE needs hard negatives"),
                         ("finetune.task=retrieval,finetune.cross_encoder_alpha=0", "cross_encoder_alpha must be in"),
                         ("finetune.cross_encoder_uri=/r", "cross_encoder_uri is a setting of the retrieval task"),
                         ("finetune.task=similarity,distill.hidden_weight=1", "similarity task's model is not fed one"),
                         ("finetune.export_precision=int4", "export_precision")):
        with pytest.raises(ValueError, match=message):
            load_config(overrides=bad.split(","))


def test_a_task_rule_blocks_only_its_own_task():
    """QA's query-length rule once refused sentiment with a short max_seq_length, and the user
    could not set max_query_length for sentiment to fix it. Each task's rules now live with it."""
    f = config_lib.load_config(overrides=["finetune.task=sentiment", "finetune.max_seq_length=16"]).finetune
    assert (f.task, f.max_seq_length) == ("sentiment", 16)
    with pytest.raises(ValueError, match=r"max_query_length must be 1..max_seq_length-4 .* got 16 with "
                                         r"finetune.max_seq_length 16"):
        config_lib.load_config(overrides=["finetune.task=qa", "finetune.max_seq_length=16"])
    assert config_lib.load_config(overrides=["finetune.task=qa", "finetune.max_seq_length=16",
                                             "finetune.max_query_length=8"]).finetune.max_query_length == 8


@pytest.mark.parametrize("task, bad, key", [
    ("sentiment", "finetune.class_weights=1,2,3", "finetune.class_weights"),
    ("pair_classification", "finetune.text_b_field=", "finetune.text_b_field"),
    ("multilabel", "finetune.decision_threshold=1.5", "finetune.decision_threshold"),
    ("ner", "finetune.entity_types=", "finetune.entity_types"),
    ("qa", "finetune.doc_stride=0", "finetune.doc_stride"),
    ("similarity", "finetune.pooling=sum", "finetune.pooling"),
    ("nli", "finetune.similarity_objective=dot", "finetune.similarity_objective"),
    ("retrieval", "finetune.temperature=0", "finetune.temperature"),
    ("rerank", "finetune.num_negatives=0", "finetune.num_negatives")])
def test_each_tasks_rules_refuse_a_bad_value_naming_the_key(task, bad, key):
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        config_lib.load_config(overrides=[f"finetune.task={task}", bad])
    config_lib.load_config(overrides=[f"finetune.task={task}"])  # the task's own defaults pass


def test_a_task_setting_is_read_and_written_through_finetune_and_unknown_ones_are_named():
    f = config_lib.FinetuneConfig.for_task("qa", doc_stride=7, batch_size=4)
    assert (f.doc_stride, f.task_settings.doc_stride, f.batch_size) == (7, 7, 4)
    with pytest.raises(AttributeError, match=r"finetune.crf is a setting of the ner task\(s\), but finetune.task is qa"):
        f.crf = True
    with pytest.raises(AttributeError, match="finetune.nope is not a setting of fine-tuning or of the qa task"):
        f.nope
    with pytest.raises(ValueError, match=r"Unknown config key 'finetune.nope'.*Known keys here: .*doc_stride"):
        config_lib.load_config(overrides=["finetune.task=qa", "finetune.nope=1"])


def test_a_key_given_twice_in_one_yaml_file_names_both_lines(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("finetune:\n  train_steps: 5\n  learning_rate: 0.001\n  train_steps: 6\n")
    with pytest.raises(ValueError, match=r"c.yaml:4:3: not valid YAML: key 'train_steps' is given twice \(first at "
                                         r"line 2\); keep one"):
        config_lib.load_config(str(path))
    path.write_text("finetune:\n  task: qa\npretrain:\n  train_steps: 3\nfinetune:\n  doc_stride: 2\n")
    with pytest.raises(ValueError, match=r"c.yaml:5:1: .*key 'finetune' is given twice \(first at line 1\)"):
        config_lib.load_config(str(path))


def test_a_tasks_own_data_format_holds_for_the_users_data(tmp_path):
    """With finetune.data_dir set, BEIR data needs neither input_format nor index_corpus given:
    they are the retrieval task's own (before, they fell back to csv and to no index)."""
    f = config_lib.load_config(overrides=["finetune.task=retrieval", f"finetune.data_dir={tmp_path}"]).finetune
    assert (f.input_format, f.train_pattern, f.eval_pattern) == ("beir", "qrels/train.tsv", "qrels/dev.tsv")
    assert (f.index_corpus, f.data_dir) == (os.path.join(str(tmp_path), "corpus.jsonl"), str(tmp_path))
    assert f.train_steps != 600  # the demo's own budget stays with the demo data
    ner = config_lib.load_config(overrides=["finetune.task=ner", f"finetune.data_dir={tmp_path}",
                                            "finetune.entity_types=PER,LOC,ORG,MISC"]).finetune
    assert (ner.input_format, ner.train_pattern, ner.tag_scheme) == ("conll", "train.txt", "iob2")
    with pytest.raises(ValueError, match="the ner task needs finetune.entity_types"):
        config_lib.load_config(overrides=["finetune.task=ner", f"finetune.data_dir={tmp_path}"])


PRETRAINING_FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "published", "hf_pretraining_gelu")


def test_init_from_takes_the_checkpoints_settings_and_the_continued_pretraining_recipe():
    config = config_lib.load_config(overrides=[f"pretrain.init_from={PRETRAINING_FIXTURE}"])
    p = config.pretrain
    assert (p.model_size, p.vocab_size, p.lower_case) == (config_lib.FROM_CHECKPOINT, 72, True)
    assert (p.learning_rate, p.train_steps, p.warmup_steps) == (2e-5, 12_500, 750)  # 6% of the steps warm up
    assert p.max_seq_length == 64  # the recipe's 128, capped at the checkpoint's positions
    # Fine-tuning's recipe follows the checkpoint's width (32: tiny's defaults), not pretrain.model_size's.
    assert registry.recipe_for_width(32) == "tiny" and not registry.RECIPES["tiny"]
    assert config.finetune.learning_rate == config_lib.FinetuneConfig().learning_rate
    # What the user sets wins where it does not contradict the checkpoint; warm-up follows the steps.
    config = config_lib.load_config(overrides=[f"pretrain.init_from={PRETRAINING_FIXTURE}", "pretrain.train_steps=200",
                                               "pretrain.learning_rate=1e-4", "pretrain.lower_case=true"], demo=True)
    assert (config.pretrain.train_steps, config.pretrain.warmup_steps, config.pretrain.learning_rate) == (200, 12, 1e-4)
    with pytest.raises(ValueError, match="Unknown model size 'checkpoint'"):
        config_lib.load_config(overrides=["pretrain.model_size=checkpoint"])  # only with init_from


@pytest.mark.parametrize("setting, message", [
    ("pretrain.model_size=small", r"pretrain.model_size=small \(4 layers x 512 wide, 8 heads, intermediate 2048\) "
                                  r"contradicts pretrain.init_from=.*hf_pretraining_gelu/config.json\): 2 layers x 32 "
                                  r"wide, 4 heads, intermediate 64"),
    ("pretrain.vocab_size=30522", r"pretrain.vocab_size=30522 contradicts .*a vocabulary of 72 tokens"),
    ("pretrain.lower_case=false", r"pretrain.lower_case=false contradicts .*uncased \(lower_case true\)"),
    ("pretrain.vocab_path=/v/vocab.txt", r"pretrain.vocab_path=/v/vocab.txt contradicts .*own vocabulary"),
    ("pretrain.max_seq_length=128", r"pretrain.max_seq_length=128 contradicts .*: 64 positions"),
])
def test_a_setting_that_contradicts_the_checkpoint_names_both_values(setting, message):
    with pytest.raises(ValueError, match=message):
        config_lib.load_config(overrides=[f"pretrain.init_from={PRETRAINING_FIXTURE}", setting])


def test_init_from_a_checkpoint_that_does_not_say_its_casing_needs_it_set(tmp_path):
    tf1 = tmp_path / "tf1"
    tf1.mkdir()
    config = json.load(open(os.path.join(PRETRAINING_FIXTURE, "config.json")))
    (tf1 / "bert_config.json").write_text(json.dumps({k: v for k, v in config.items() if k != "model_type"}))
    with pytest.raises(ValueError, match=r"does not say whether it is cased .* set pretrain.lower_case"):
        config_lib.load_config(overrides=[f"pretrain.init_from={tf1}"])
    assert config_lib.load_config(overrides=[f"pretrain.init_from={tf1}", "pretrain.lower_case=false"]).pretrain.lower_case \
        is False
    with pytest.raises(FileNotFoundError, match="holds no BERT configuration"):
        config_lib.load_config(overrides=[f"pretrain.init_from={tmp_path / 'nothing'}"])
