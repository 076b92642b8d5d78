"""Ingestion and vocabulary learning give the same outputs on 1 worker and on 2 worker
processes (DirectRunner multi_processing), so the components are safe to scale out."""
import os

import pytest

from tests.helpers import ingest_corpus, learn_vocabulary, read_examples
from tfx_bert import demo_data

pytestmark = pytest.mark.slow

ONE = ["--direct_running_mode=in_memory", "--direct_num_workers=1"]
TWO = ["--direct_running_mode=multi_processing", "--direct_num_workers=2"]


def _run(tmp_path, corpus_glob, beam_args, name):
    examples = ingest_corpus(corpus_glob, tmp_path / name, beam_args)
    vocab = learn_vocabulary(examples, tmp_path / name, beam_args)
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
