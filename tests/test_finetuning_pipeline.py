"""pipeline/finetuning_pipeline.py: each task's components and their wiring, built without running."""
import pytest
from tfx.dsl.input_resolution.strategies.latest_blessed_model_strategy import LatestBlessedModelStrategy


@pytest.mark.parametrize("task, evaluator", [("retrieval", "RetrievalEvaluator"), ("rerank", "GatedEvaluator")])
def test_retrieval_and_rerank_pipelines_gate_the_push_with_their_evaluators(tmp_path, task, evaluator):
    import json

    from tfx_bert import config as config_lib
    from tfx_bert_app.pipeline.finetuning_pipeline import create_finetuning_pipeline
    from tfx_bert_app.pipeline.parameters import PipelineParameters

    indexing = ([f"finetune.index_corpus={tmp_path}/corpus.jsonl", "finetune.mining_steps=5"] if task == "retrieval"
                else ["finetune.negative_miner=dense", f"finetune.negative_model={tmp_path}/dual"])
    if task == "retrieval":  # the cross-encoder teacher excludes the mining round: a pipeline of its own below
        indexing_with_teacher = [f"finetune.cross_encoder_uri={tmp_path}/rerank/Trainer/model/9/Format-Serving"]
    config = config_lib.load_config(overrides=[f"finetune.task={task}", f"work_dir={tmp_path}",
                                               "finetune.input_format=beir", "finetune.eval_pattern=qrels/dev.tsv",
                                               f"finetune.data_dir={tmp_path}", "distill.enabled=true", *indexing])
    pipeline = create_finetuning_pipeline(config, PipelineParameters(str(tmp_path), 10), str(tmp_path / "encoder"), [])
    components = {c.id: c for c in pipeline.components}
    assert type(components["Evaluator"]).__name__ == evaluator
    blessing = components["Evaluator"].outputs["blessing"]
    assert components["Pusher"].inputs["model_blessing"] is blessing
    if task == "retrieval":
        assert components["VectorIndexer"].inputs["model_blessing"] is blessing
        assert components["Evaluator"].exec_properties["qrels"] == "qrels/dev.tsv"
        assert components["Evaluator"].inputs["baseline_model"] is components["latest_blessed_model"].outputs["model"]
        assert components["Trainer"].exec_properties["data_dir"] == str(tmp_path)  # the mining round reads it
        # Its student is gated by retrieval over the corpus too, relative to the teacher.
        student_gate = components["StudentEvaluator"]
        assert type(student_gate).__name__ == "StudentRetrievalEvaluator"  # its blessing a StudentBlessing
        assert student_gate.outputs["blessing"].type.TYPE_NAME == "tfx_bert.StudentBlessing"
        assert components["StudentPusher"].inputs["model_blessing"] is student_gate.outputs["blessing"]
        assert student_gate.inputs["baseline_model"] is components["Trainer"].outputs["model"]
        assert student_gate.inputs["model"] is components["StudentTrainer"].outputs["model"]
        assert student_gate.exec_properties["min_retention"] == 0.97
        assert components["StudentTrainer"].exec_properties["run_fn"] == "tfx_bert_app.models.finetuning.distill_run_fn"
        assert "teacher_model" not in components["Trainer"].inputs
        # finetune.cross_encoder_uri: the re-ranker is imported (lineage) and is the Trainer's teacher_model.
        config = config_lib.load_config(overrides=[f"finetune.task={task}", f"work_dir={tmp_path}",
                                                   "finetune.input_format=beir", "finetune.eval_pattern=qrels/dev.tsv",
                                                   f"finetune.data_dir={tmp_path}", *indexing_with_teacher])
        taught = {c.id: c for c in create_finetuning_pipeline(
            config, PipelineParameters(str(tmp_path), 10), str(tmp_path / "encoder"), []).components}
        assert taught["cross_encoder_teacher"].exec_properties["artifact_uri"] == f"{tmp_path}/rerank/Trainer/model/9"
        assert taught["Trainer"].inputs["teacher_model"] is taught["cross_encoder_teacher"].outputs["result"]
    else:  # a cross-encoder embeds nothing: indexing is a retrieval / similarity setting
        assert "VectorIndexer" not in components
        mining = json.loads(components["TaskExampleGen"].exec_properties["negative_mining"])
        assert mining["miner"] == "dense" and mining["model"] == f"{tmp_path}/dual"  # the first stage's candidates


def test_the_distillation_branch_trains_from_the_teacher_is_gated_against_it_and_pushed_apart(tmp_path):
    import json
    import os

    from tfx_bert import config as config_lib
    from tfx_bert_app.pipeline.finetuning_pipeline import create_finetuning_pipeline
    from tfx_bert_app.pipeline.parameters import PipelineParameters

    config = config_lib.load_config(overrides=[f"work_dir={tmp_path}", "distill.enabled=true",
                                               "distill.student_layers=3", "distill.train_steps=40"])
    pipeline = create_finetuning_pipeline(config, PipelineParameters(str(tmp_path), 10), str(tmp_path / "encoder"), [])
    c = {component.id: component for component in pipeline.components}
    teacher = c["Trainer"].outputs["model"]
    student = c["StudentTrainer"]
    assert student.inputs["base_model"] is teacher
    assert student.inputs["transform_graph"] is c["Transform"].outputs["transform_graph"]
    assert student.exec_properties["run_fn"] == "tfx_bert_app.models.finetuning.distill_run_fn"
    settings = json.loads(student.exec_properties["custom_config"])
    assert settings["distill"]["student_layers"] == 3 and settings["distill"]["train_steps"] == 40
    assert settings["encoder_dir"] == str(tmp_path / "encoder")  # the vocabulary check's reference
    assert c["StudentEvaluator"].inputs["baseline_model"] is teacher
    assert c["StudentEvaluator"].inputs["model"] is student.outputs["model"]
    assert c["StudentPusher"].inputs["model_blessing"] is c["StudentEvaluator"].outputs["blessing"]
    destination = c["StudentPusher"].exec_properties["push_destination"]
    assert os.path.join("serving", "sentiment-student") in str(destination)
    # The student's Model is marked, and its blessing is a StudentBlessing: the teacher's
    # baseline resolver (TFX's stock one, as KFP v2 compiles it) reads ModelBlessings only.
    from tfx import v1 as tfx
    from tfx.dsl.components.common import resolver

    from tfx_bert_app.components.artifacts import StudentBlessing

    assert student.exec_properties["model_role"] == "student" and c["Trainer"].exec_properties["model_role"] is None
    assert c["StudentEvaluator"].outputs["blessing"].type is StudentBlessing
    assert c["Evaluator"].outputs["blessing"].type is tfx.types.standard_artifacts.ModelBlessing
    baseline = c["latest_blessed_model"]
    assert baseline.exec_properties[resolver.RESOLVER_STRATEGY_CLASS] is LatestBlessedModelStrategy
    assert baseline.inputs["model_blessing"].type is tfx.types.standard_artifacts.ModelBlessing

    plain = create_finetuning_pipeline(config_lib.load_config(overrides=[f"work_dir={tmp_path}"]),
                                       PipelineParameters(str(tmp_path), 10), str(tmp_path / "encoder"), [])
    assert not any(component.id.startswith("Student") for component in plain.components)


def test_a_teacher_given_by_uri_is_imported_and_the_pipeline_trains_gates_and_pushes_the_student_only(tmp_path):
    """``distill.teacher_uri``: another run's fine-tuned model (its serving dir) is imported with
    its lineage; no teacher is trained here; the student's run_fn gets the Transform's encoder to
    check that the teacher shares its vocabulary, and the student's own encoder when given."""
    import json

    from tfx_bert import config as config_lib
    from tfx_bert_app.pipeline.finetuning_pipeline import create_finetuning_pipeline
    from tfx_bert_app.pipeline.parameters import PipelineParameters

    teacher_dir = tmp_path / "runs" / "Trainer" / "model" / "12" / "Format-Serving"
    config = config_lib.load_config(overrides=[f"work_dir={tmp_path}", "distill.enabled=true",
                                               f"distill.teacher_uri={teacher_dir}",
                                               f"distill.student_encoder_uri={tmp_path}/small"])
    encoder = str(tmp_path / "encoder")
    pipeline = create_finetuning_pipeline(config, PipelineParameters(str(tmp_path), 10), encoder, [])
    c = {component.id: component for component in pipeline.components}
    assert sorted(c) == sorted(["TaskExampleGen", "StatisticsGen", "SchemaGen", "ExampleValidator", "pretrained_encoder",
                                "latest_blessed_model", "DataGate", "Transform", "teacher_model",
                                "StudentTrainer", "StudentEvaluator", "StudentPusher"])
    # Everything after the data gate runs only where it passed (a tfx.dsl.Cond on its result).
    from tfx.dsl.compiler import compiler

    nodes = {n.pipeline_node.node_info.id: n.pipeline_node for n in compiler.Compiler().compile(pipeline).nodes}
    gated = sorted(name for name, node in nodes.items() if node.inputs.conditionals)
    assert gated == ["StudentEvaluator", "StudentPusher", "StudentTrainer", "Transform", "teacher_model"]
    # A validation split held out of train is train's distribution: no statistics of its own.
    assert json.loads(c["StatisticsGen"].exec_properties["exclude_splits"]) == ["validation"]
    own_files = config_lib.load_config(overrides=[f"work_dir={tmp_path}", "finetune.validation_pattern=dev/*"])
    statistics = {c.id: c for c in create_finetuning_pipeline(own_files, PipelineParameters(str(tmp_path), 10), encoder,
                                                              []).components}["StatisticsGen"]
    assert json.loads(statistics.exec_properties["exclude_splits"]) == []
    assert c["teacher_model"].exec_properties["artifact_uri"] == str(teacher_dir.parent)  # the artifact root
    teacher = c["teacher_model"].outputs["result"]
    assert c["StudentTrainer"].inputs["base_model"] is teacher
    assert c["StudentEvaluator"].inputs["baseline_model"] is teacher
    settings = json.loads(c["StudentTrainer"].exec_properties["custom_config"])
    assert settings["encoder_dir"] == encoder
    assert settings["distill"]["student_encoder_uri"] == f"{tmp_path}/small"  # another encoder for the student
    assert c["StudentPusher"].inputs["model_blessing"] is c["StudentEvaluator"].outputs["blessing"]
