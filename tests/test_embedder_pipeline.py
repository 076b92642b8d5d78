"""pipeline/embedder_pipeline.py through ``tfx-bert export-embedder --push``: a
sentence-transformers checkpoint becomes a pushed embedding model (the Pusher's checks: op
check, load check, warm-up requests, atomic version) and an indexed corpus, with no training,
and ``tfx-bert retrieve`` finds each document by its own text."""
import json
import os
import subprocess
import sys

import pytest

from tests.helpers import PUBLISHED, REPO

pytestmark = pytest.mark.slow  # a TFX run in a subprocess, about 30 s


def test_a_published_encoder_is_pushed_and_indexed_without_training(tmp_path, capsys):
    from tfx_bert import cli

    docs = {"d1": "the cat sat on the mat", "d2": "money in the river bank", "d3": "a very good movie",
            "d4": "hello world of dogs"}
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"_id": k, "title": "", "text": v}) + "\n" for k, v in docs.items()))
    work = tmp_path / "work"
    proc = subprocess.run([sys.executable, "-m", "tfx_bert.cli", "export-embedder", "--push", "--encoder",
                           os.path.join(PUBLISHED, "st_mean_normalize"), "--work-dir", str(work),
                           "--set", f"embedder.index_corpus={corpus}"],
                          capture_output=True, text=True, cwd=REPO, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "[embedder] mean pooling, normalised, 24 tokens" in proc.stdout  # the model's own settings
    [version] = os.listdir(work / "serving" / "embedder")
    extra = work / "serving" / "embedder" / version / "assets.extra"
    assert (extra / "tf_serving_warmup_requests").exists()
    metadata = json.load(open(extra / "push_metadata.json"))
    assert metadata["signatures"]["embed"]["outputs"]["embedding"]["shape"] == [None, 32]

    assert cli.main(["retrieve", "--store-uri", str(work / "vectors" / "milvus.db"), "--collection", "embedder",
                     "--model-dir", str(work / "serving" / "embedder" / version), "--k", "1", *docs.values()]) == 0
    hits = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert [h["hits"][0]["id"] for h in hits] == list(docs)
