"""pipeline/task_wiring.py: each task's ExampleGen reads its data the way its registry entry
says, and the Evaluator is TFMA's (GatedEvaluator: the stock one whose slice gate skips small slices) with the task's EvalConfig or the RetrievalEvaluator."""
import json

import pytest

from tfx_bert import config as config_lib
from tfx_bert import tasks
from tfx_bert_app.components.task_example_gen import executor as ex
from tfx_bert_app.pipeline import task_wiring


def _finetune(task, *overrides):
    return config_lib.load_config(overrides=[f"finetune.task={task}", *overrides]).finetune


@pytest.mark.parametrize("task, input_format, label_dtype", [
    ("sentiment", "csv", "int"), ("pair_classification", "glue_tsv", "int"), ("multilabel", "csv", "multi"),
    ("similarity", "glue_tsv", "float"), ("nli", "glue_tsv", "int"), ("ner", "conll", None), ("qa", "squad", None),
    ("retrieval", "beir", None), ("rerank", "beir", None)])  # None: no class labels (the component's default)
def test_each_task_reads_its_data_with_its_loader_settings(task, input_format, label_dtype):
    f = _finetune(task)
    props = task_wiring.example_gen(tasks.get_task(task), f, "/data").exec_properties
    assert props[ex.INPUT_FORMAT] == input_format and props[ex.INPUT_BASE] == "/data"
    assert (props[ex.TRAIN_PATTERN], props[ex.EVAL_PATTERN]) == (f.train_pattern, f.eval_pattern)
    assert props.get(ex.LABEL_DTYPE) == (label_dtype or "int")
    if task == "ner":
        assert json.loads(props[ex.LABEL_NAMES]) == list(f.entity_types) and props[ex.TAG_SCHEME] == f.tag_scheme
    if task in ("retrieval", "rerank"):
        assert props[ex.NUM_NEGATIVES] == f.num_negatives
    if task == "similarity":  # cosine scores are floats: no label names, the second text defaults to text_b
        assert props[ex.TEXT_B_FIELD] == f.text_b_field and json.loads(props[ex.LABEL_NAMES] or "[]") == []


def test_evaluators_follow_the_registry_and_retrieval_needs_a_beir_eval_set():
    from tfx.types import channel, standard_artifacts

    examples = channel.Channel(type=standard_artifacts.Examples)
    model = channel.Channel(type=standard_artifacts.Model)
    for name, task in tasks.TASKS.items():
        component = task_wiring.evaluator(task, _finetune(name), "/data", examples, model, None)
        assert type(component).__name__ == ("RetrievalEvaluator" if task.evaluates_by_retrieval else "GatedEvaluator")
    triples = _finetune("retrieval", "finetune.input_format=msmarco_triples", "finetune.num_negatives=1")
    with pytest.raises(ValueError, match="set finetune.retrieval_eval_dir and finetune.retrieval_eval_qrels"):
        task_wiring.evaluator(tasks.get_task("retrieval"), triples, "/data", examples, model, None)
