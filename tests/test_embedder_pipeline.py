"""pipeline/embedder_pipeline.py through ``tfx-bert export-embedder --push`` (a background run of
the ``finetuned`` fixture, ``embedder_push`` in tests/helpers.py): a sentence-transformers
checkpoint becomes a pushed embedding model (the Pusher's checks: op check, load check, warm-up
requests, atomic version) and an indexed corpus, with no training, and ``tfx-bert retrieve``
finds each document by its own text."""
import json
import os

import pytest

from tests.helpers import EMBEDDER_DOCS

pytestmark = pytest.mark.slow  # waits for the background runs


def test_a_published_encoder_is_pushed_and_indexed_without_training(finetuned, capsys):
    from tfx_bert import cli

    work = finetuned.work("embedder_push")
    assert "[embedder] mean pooling, normalised, 24 tokens" in finetuned.output("embedder_push")  # its own settings
    [version] = os.listdir(os.path.join(work, "serving", "embedder"))
    extra = os.path.join(work, "serving", "embedder", version, "assets.extra")
    assert os.path.exists(os.path.join(extra, "tf_serving_warmup_requests"))
    metadata = json.load(open(os.path.join(extra, "push_metadata.json")))
    assert metadata["signatures"]["embed"]["outputs"]["embedding"]["shape"] == [None, 32]

    assert cli.main(["retrieve", "--store-uri", os.path.join(work, "vectors", "milvus.db"), "--collection", "embedder",
                     "--model-dir", os.path.join(work, "serving", "embedder", version), "--k", "1",
                     *EMBEDDER_DOCS.values()]) == 0
    hits = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert [h["hits"][0]["id"] for h in hits] == list(EMBEDDER_DOCS)
