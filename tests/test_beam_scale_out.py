"""Ingestion and vocabulary learning give the same outputs on 1 worker and on 2 worker
processes (DirectRunner multi_processing), so the components are safe to scale out."""
import os

import pytest
from tfx.types import standard_artifacts

from tfx_bert_app.components.artifacts import Vocabulary
from tfx_bert_app.components.text_example_gen import executor as gen_ex
from tfx_bert_app.components.wordpiece_vocab import executor as vocab_ex
from tests.helpers import new_artifact, read_examples, run_executor
from tfx_bert import demo_data

pytestmark = pytest.mark.slow

ONE = ["--direct_running_mode=in_memory", "--direct_num_workers=1"]
TWO = ["--direct_running_mode=multi_processing", "--direct_num_workers=2"]


def _run(tmp_path, corpus_glob, beam_args, name):
    examples = new_artifact(standard_artifacts.Examples, tmp_path / name / "examples")
    props = {gen_ex.INPUT_PATTERN: corpus_glob, gen_ex.INPUT_FORMAT: "bert_raw", gen_ex.TEXT_FIELD: "text",
             gen_ex.ID_FIELD: "", gen_ex.EVAL_PERCENT: 20, gen_ex.MAX_LINE_CHARS: 1000, gen_ex.STRICT: 0,
             gen_ex.PER_LINE: 0}
    run_executor(gen_ex.Executor, {}, {"examples": [examples]}, props, str(tmp_path / name / "t1"), beam_args)
    vocab = new_artifact(Vocabulary, tmp_path / name / "vocab")
    run_executor(vocab_ex.Executor, {"examples": [examples]}, {"vocabulary": [vocab]},
                 {vocab_ex.VOCAB_SIZE: 300, vocab_ex.LOWER_CASE: 1, vocab_ex.NUM_UNUSED: 0, vocab_ex.VOCAB_PATH: "",
                  vocab_ex.MAX_BYTES_PER_WORD: 100, vocab_ex.TEXT_FEATURE: "text"},
                 str(tmp_path / name / "t2"), beam_args)
    splits = {split: sorted(e.SerializeToString(deterministic=True)
                            for e in read_examples(os.path.join(examples.uri, f"Split-{split}", "*")))
              for split in ("train", "eval")}
    return splits, open(os.path.join(vocab.uri, "vocab.txt")).read()


def test_two_workers_match_one(tmp_path):
    for i in range(4):  # several files, so the work is really divided between the workers
        demo_data.write_pretraining_corpus(str(tmp_path / "in" / f"part{i}.txt"), num_documents=40, seed=i)
    one = _run(tmp_path, str(tmp_path / "in" / "*.txt"), ONE, "one")
    two = _run(tmp_path, str(tmp_path / "in" / "*.txt"), TWO, "two")
    assert len(one[0]["train"]) > 100
    assert one[0] == two[0]
    assert one[1] == two[1]
