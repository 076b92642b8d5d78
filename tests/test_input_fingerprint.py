"""ExampleGens fingerprint their input files, so a rerun over changed data is not served from
TFX's cache."""
import os
import time

from tfx_bert_app.components import input_fingerprint
from tfx_bert_app.components.task_example_gen.component import TaskExampleGen
from tfx_bert_app.components.text_example_gen.component import TextExampleGen


def test_fingerprint_changes_with_the_files_and_only_then(tmp_path):
    (tmp_path / "train.txt").write_text("a\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.txt").write_text("b\n")
    pattern = [str(tmp_path / "train.txt"), str(tmp_path / "sub")]
    first = input_fingerprint.fingerprint(pattern)
    assert first and first == input_fingerprint.fingerprint(pattern)
    (tmp_path / "sub" / "b.txt").write_text("bb\n")  # a file inside a matched directory
    second = input_fingerprint.fingerprint(pattern)
    assert second != first
    (tmp_path / "sub" / "c.txt").write_text("c\n")  # a new file
    assert input_fingerprint.fingerprint(pattern) != second
    assert input_fingerprint.fingerprint([object()]) == ""  # a runtime parameter: no fingerprint


def test_example_gens_carry_the_fingerprint(tmp_path):
    (tmp_path / "train.json").write_text("{}")
    (tmp_path / "dev.json").write_text("{}")
    gen = TaskExampleGen(input_base=str(tmp_path), train_pattern="train.json", eval_pattern="dev.json",
                         input_format="squad")
    before = gen.exec_properties["input_fingerprint"]
    time.sleep(0.01)
    (tmp_path / "dev.json").write_text('{"data": []}')
    after = TaskExampleGen(input_base=str(tmp_path), train_pattern="train.json", eval_pattern="dev.json",
                           input_format="squad").exec_properties["input_fingerprint"]
    assert before and after and before != after
    text_gen = TextExampleGen(input_pattern=os.path.join(str(tmp_path), "*.json"))
    assert text_gen.exec_properties["input_fingerprint"] == input_fingerprint.fingerprint(
        [os.path.join(str(tmp_path), "*.json")])
