"""models.whole_word_masking: dynamic whole-word masks as google-research/bert draws them, per
batch: whole words only, within each sequence's budget, never a special piece, 80/10/10."""
import numpy as np
import tensorflow as tf

from tfx_bert_app.models import whole_word_masking

PAD, CLS, SEP, MASK = 0, 2, 3, 4
CONTINUATIONS = list(range(30, 40))  # the "##" pieces of this made-up vocabulary of 40
VOCAB = 40


def _sequences(n, rng):
    """[CLS] words [SEP] words [SEP], a word being a piece of 10-29 and 0-3 "##" pieces."""
    rows = []
    for _ in range(n):
        row = [CLS]
        for segment in range(2):
            for _ in range(rng.integers(4, 12)):
                row += [int(rng.integers(10, 30))] + [int(c) for c in rng.integers(30, 40, rng.integers(0, 4))]
            row.append(SEP)
        rows.append(row)
    return rows


def _words(row):
    """Each piece's word index (a special piece is a word of its own)."""
    index, out = -1, []
    for piece in row:
        index += piece not in CONTINUATIONS or piece in (CLS, SEP)
        out.append(index)
    return out


def test_whole_words_within_the_budget_never_a_special_piece_and_labels_the_originals():
    rng = np.random.default_rng(0)
    rows = _sequences(64, rng)
    masker = whole_word_masking.whole_word_masker(CONTINUATIONS, VOCAB, (PAD, CLS, SEP), 0.15, 10, MASK)
    out = masker(tf.ragged.constant(rows, tf.int32))
    masked = out["token_ids"].to_list()
    positions, ids, weights = (out[k].numpy() for k in ("mask_positions", "mask_ids", "mask_weights"))
    kinds = {"mask": 0, "random": 0, "kept": 0}
    for row, new, pos, label, weight in zip(rows, masked, positions, ids, weights):
        chosen = [int(p) for p, w in zip(pos, weight) if w > 0]
        assert chosen == sorted(chosen) and len(chosen) >= 1
        budget = min(10, max(1, round(0.15 * sum(p not in (CLS, SEP) for p in row))))
        assert len(chosen) <= budget
        assert not {row[p] for p in chosen} & {CLS, SEP, PAD}
        assert list(label[:len(chosen)]) == [row[p] for p in chosen]
        words = _words(row)
        for w in {words[p] for p in chosen}:  # every piece of a chosen word is chosen
            assert {i for i, x in enumerate(words) if x == w} <= set(chosen)
        assert all(new[i] == row[i] for i in range(len(row)) if i not in chosen)  # nothing else changes
        for p in chosen:
            kinds["mask" if new[p] == MASK else "kept" if new[p] == row[p] else "random"] += 1
    total = sum(kinds.values())
    assert abs(kinds["mask"] / total - 0.8) < 0.08 and kinds["random"] + kinds["kept"] > 0.1 * total, kinds


def test_the_rate_is_the_share_of_pieces_and_each_batch_draws_anew():
    rng = np.random.default_rng(1)
    rows = tf.ragged.constant(_sequences(200, rng), tf.int32)
    masker = whole_word_masking.whole_word_masker(CONTINUATIONS, VOCAB, (PAD, CLS, SEP), 0.15, 40, MASK)
    first, second = masker(rows), masker(rows)
    pieces = sum(len(r) - 3 for r in rows.to_list())
    share = first["mask_weights"].numpy().sum() / pieces
    assert 0.11 < share <= 0.16, share  # whole words fill the budget up to a word short
    assert not np.array_equal(first["mask_positions"].numpy(), second["mask_positions"].numpy())


def test_the_pretraining_dataset_masks_whole_words_dynamically(tmp_path):
    from tests.test_pretraining import _write_instances
    from tfx_bert import features
    from tfx_bert_app.models import pretraining

    rows = [([CLS, 10, 31, 32, 11, 12, 33, SEP, 13, 34, 14, SEP], [0] * 8 + [1] * 4, i % 2) for i in range(8)]
    _write_instances(str(tmp_path / "a.gz"), rows)
    metadata = {"max_seq_length": 16, "vocab_size": VOCAB, "whole_word_masking": True,
                "continuation_ids": CONTINUATIONS, "special_ids": {"pad": PAD, "unk": 1, "cls": CLS, "sep": SEP,
                                                                   "mask": MASK}}
    x, y, sw = next(iter(pretraining.make_dataset(str(tmp_path / "*.gz"), metadata, 8, 4, 0.3, seed=1)))
    words = [[1, 2, 3], [4], [5, 6], [8, 9], [10]]  # positions of each word's pieces
    for pos, weight in zip(x[features.MASK_POSITIONS].numpy(), sw[pretraining.MLM].numpy()):
        chosen = set(pos[weight > 0].tolist())
        assert chosen and all(set(w) <= chosen or not set(w) & chosen for w in words), chosen
