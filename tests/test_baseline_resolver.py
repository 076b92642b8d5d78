"""pipeline/baseline_resolver.py: the Evaluator's baseline is the latest blessed teacher, never a
blessed student, which TFX's stock strategy would pick."""
from tfx.dsl.input_resolution.strategies.latest_blessed_model_strategy import LatestBlessedModelStrategy
from tfx.types import standard_artifacts

from tfx_bert_app.components.bert_trainer.executor import MODEL_ROLE_KEY, STUDENT_ROLE, mark_model_role
from tfx_bert_app.pipeline import baseline_resolver


def _model(artifact_id: int, role: str = ""):
    model = standard_artifacts.Model()
    model.id = artifact_id
    if role:
        mark_model_role({"model": [model]}, {MODEL_ROLE_KEY: role})
    return model


def _blessing(model_id: int, blessed: int = 1):
    blessing = standard_artifacts.ModelBlessing()
    blessing.set_int_custom_property("current_model_id", model_id)
    blessing.set_int_custom_property("blessed", blessed)
    return blessing


def test_the_latest_blessed_teacher_is_the_baseline_not_a_later_blessed_student():
    # Run 1: teacher 1 and its student 2, both blessed; run 2: teacher 3, refused.
    models = [_model(1), _model(2, STUDENT_ROLE), _model(3)]
    blessings = [_blessing(1), _blessing(2), _blessing(3, blessed=0)]
    stock = LatestBlessedModelStrategy().resolve_artifacts(None, {"model": list(models), "model_blessing": blessings})
    assert [m.id for m in stock["model"]] == [2]  # the gap: the student
    ours = baseline_resolver.LatestBlessedTeacherStrategy().resolve_artifacts(
        None, {"model": list(models), "model_blessing": blessings})
    assert [m.id for m in ours["model"]] == [1] and ours["model_blessing"] == [blessings[0]]
    # Only students blessed: no baseline (the first teacher's run compares against nothing).
    only_students = baseline_resolver.LatestBlessedTeacherStrategy().resolve_artifacts(
        None, {"model": [_model(3), _model(4, STUDENT_ROLE)], "model_blessing": [_blessing(4)]})
    assert only_students == {"model": [], "model_blessing": []}


def test_the_role_is_a_custom_property_only_where_one_is_given():
    marked, plain = _model(1, STUDENT_ROLE), _model(2)
    mark_model_role({"model": [plain]}, {})
    assert marked.get_string_custom_property(MODEL_ROLE_KEY) == STUDENT_ROLE
    assert not plain.has_custom_property(MODEL_ROLE_KEY)
    assert baseline_resolver.is_student(marked) and not baseline_resolver.is_student(plain)
    assert baseline_resolver.baseline_strategy(kubeflow=True) is LatestBlessedModelStrategy
