"""The PretrainingDataGen executor and its instance algorithm (google-research/bert's
create_pretraining_data): well-formed, deterministic instances, static whole-word masking."""
import os
import random

from tfx.types import standard_artifacts

from tests.helpers import new_artifact, read_examples, run_executor
from tfx_bert import tokenization
from tfx_bert_app.components.pretraining_data import executor as data_ex
from tfx_bert_app.components.pretraining_data import instances


def _make_instances(corpus_examples, vocabulary, out_dir, seed=5, extra=None):
    out = new_artifact(standard_artifacts.Examples, out_dir)
    props = {data_ex.MAX_SEQ_LENGTH: 32, data_ex.SHORT_SEQ_PROB: 0.1, data_ex.NSP_SHARDS: 2, data_ex.SEED: seed,
             data_ex.MASKING: "dynamic", data_ex.DUPE_FACTOR: 1, data_ex.MASKED_LM_PROB: 0.15,
             data_ex.MAX_PREDICTIONS: 5, data_ex.WHOLE_WORD_MASKING: 0}
    props.update(extra or {})
    run_executor(data_ex.Executor, {"examples": [corpus_examples], "vocabulary": [vocabulary]},
                 {"pretraining_examples": [out]}, props, str(out_dir) + "_tmp")
    return out


def _rows(artifact, split):
    return sorted(
        (tuple(e.features.feature["token_ids"].int64_list.value),
         tuple(e.features.feature["segment_ids"].int64_list.value),
         e.features.feature["next_sentence_label"].int64_list.value[0])
        for e in read_examples(os.path.join(artifact.uri, f"Split-{split}", "*")))


def test_pretraining_instances_are_well_formed_and_deterministic(corpus_examples, vocabulary, tmp_path):
    first = _make_instances(corpus_examples, vocabulary, tmp_path / "a")
    second = _make_instances(corpus_examples, vocabulary, tmp_path / "b")
    rows = _rows(first, "train")
    assert rows == _rows(second, "train")  # same seed, same instances
    assert rows != _rows(_make_instances(corpus_examples, vocabulary, tmp_path / "c", seed=6), "train")
    tok = tokenization.WordPieceTokenizer.from_directory(vocabulary.uri)
    labels = set()
    for token_ids, segment_ids, label in rows:
        assert len(token_ids) == len(segment_ids) <= 32
        assert token_ids[0] == tok.cls_id and token_ids[-1] == tok.sep_id
        first_sep = token_ids.index(tok.sep_id)
        assert set(segment_ids[: first_sep + 1]) == {0} and set(segment_ids[first_sep + 1:]) == {1}
        labels.add(label)
    assert labels == {0, 1}
    metadata = data_ex.read_metadata(first.uri)
    stats = metadata["statistics"]["train"]
    assert stats["instances"] == len(rows)
    assert 0.3 < stats["random_next_share"] < 0.8
    assert metadata["vocab_size"] == tok.vocabulary_size
    assert os.path.exists(os.path.join(metadata["vocab_dir"], "vocab.txt"))


def test_instance_algorithm_fills_sequences_and_keeps_text():
    rng = random.Random(0)
    docs = [[[10 + d * 100 + s * 10 + t for t in range(5)] for s in range(6)] for d in range(4)]
    made = instances.create_instances_from_document(docs, 0, 20, 0.0, 2, 3, rng)
    assert made
    for inst in made:
        assert len(inst.token_ids) <= 20
        assert inst.token_ids.count(3) == 2
        body = [t for t in inst.token_ids if t not in (2, 3)]
        if not inst.is_random_next:  # the actual next segment: all from document 0
            assert all(10 <= t < 110 for t in body)


def test_truncate_seq_pair_trims_longer_side():
    a, b = list(range(10)), list(range(3))
    assert instances.truncate_seq_pair(a, b, 8, random.Random(1))
    assert len(a) == 5 and len(b) == 3


def test_static_whole_word_masking_instances(corpus_examples, vocabulary, tmp_path):
    out = _make_instances(corpus_examples, vocabulary, tmp_path / "s", extra={
        data_ex.MASKING: "static", data_ex.DUPE_FACTOR: 2, data_ex.WHOLE_WORD_MASKING: 1})
    dynamic = _make_instances(corpus_examples, vocabulary, tmp_path / "d", extra={data_ex.WHOLE_WORD_MASKING: 1})
    # Dynamic whole-word masking: the Trainer's masker gets the vocabulary's "##" pieces.
    vocab = tokenization.WordPieceTokenizer.from_directory(vocabulary.uri).vocab
    continuation = data_ex.read_metadata(dynamic.uri)["continuation_ids"]
    assert continuation == [i for i, t in enumerate(vocab) if t.startswith("##")] and continuation
    assert "continuation_ids" not in data_ex.read_metadata(out.uri)  # static: the masks are written
    records = read_examples(os.path.join(out.uri, "Split-train", "*"))
    assert len(records) > 1.5 * len(_rows(dynamic, "train"))  # dupe_factor copies
    total_masked = total_tokens = 0
    for e in records[:200]:
        f = e.features.feature
        weights = list(f["mask_weights"].float_list.value)
        n = int(sum(weights))
        positions = list(f["mask_positions"].int64_list.value)[:n]
        assert len(weights) == 5 and 1 <= n <= 5
        assert positions == sorted(positions) and 0 not in positions
        total_masked += n
        total_tokens += len(f["token_ids"].int64_list.value)
    stats = data_ex.read_metadata(out.uri)["statistics"]["train"]
    assert 0.05 < stats["masked_token_share"] <= 0.16
    assert abs(stats["masked_token_share"] - total_masked / total_tokens) < 0.03


def test_masked_lm_predictions_recipe_and_whole_words():
    rng = random.Random(0)
    tokens = [2] + list(range(10, 50)) + [3]
    starts = [True] * len(tokens)
    for i in range(2, len(tokens) - 1, 2):
        starts[i] = False  # pairs of pieces form words
    masked_counts = {"mask": 0, "same": 0, "other": 0}
    for _ in range(300):
        m = instances.create_masked_lm_predictions(tokens, 0.15, 10, 100, {2, 3}, 4, rng, starts)
        assert 1 <= len(m.mask_positions) <= 10
        chosen = set(m.mask_positions)
        for p in chosen:  # whole words: a piece is masked only together with its word
            partner = p + 1 if starts[p] else p - 1
            assert partner in chosen
        for p, original in zip(m.mask_positions, m.mask_ids):
            assert original == tokens[p]
            new = m.token_ids[p]
            masked_counts["mask" if new == 4 else "same" if new == original else "other"] += 1
    total = sum(masked_counts.values())
    assert 0.74 < masked_counts["mask"] / total < 0.86
    assert 0.05 < masked_counts["same"] / total < 0.16
