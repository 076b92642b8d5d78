import random

import numpy as np
import pytest
import tensorflow as tf

from tfx_bert import tokenization
from tfx_bert_app.components.pretraining_data.instances import truncate_seq_pair


def test_basic_tokenize_splits_punctuation_cjk_and_strips_accents():
    assert tokenization.basic_tokenize("Héllo,  WORLD!") == ["hello", ",", "world", "!"]
    assert tokenization.basic_tokenize("Héllo", lower_case=False) == ["Héllo"]
    assert tokenization.basic_tokenize("中文ab") == ["中", "文", "ab"]
    assert tokenization.basic_tokenize("a\u200bb\x00c\tc") == ["abc", "c"]  # Cf and NUL removed


def test_tokenizer_ids_and_unknown(tiny_vocab_dir):
    tok = tokenization.WordPieceTokenizer.from_directory(tiny_vocab_dir)
    vocab = tok.vocab
    ids = tok.tokenize(tf.constant(["The cats played!", "zebra"])).to_list()
    assert [vocab[i] for i in ids[0]] == ["the", "cat", "##s", "play", "##ed", "!"]
    assert ids[1] == [tok.unk_id]


def test_pack_single_adds_specials_and_pads(tiny_vocab_dir):
    tok = tokenization.WordPieceTokenizer.from_directory(tiny_vocab_dir)
    out = tok.encode(tf.constant(["the cat", "the cat sat on the mat the cat sat on the mat"]), 8)
    ids = out["token_ids"].numpy()
    assert ids.shape == (2, 8)
    assert ids[0, 0] == tok.cls_id and ids[0, 3] == tok.sep_id and ids[0, 4] == tok.pad_id
    assert ids[1, -1] == tok.sep_id  # trimmed to fit, still closed by [SEP]
    np.testing.assert_array_equal(out["padding_mask"].numpy()[0], [1, 1, 1, 1, 0, 0, 0, 0])
    assert out["segment_ids"].numpy().sum() == 0


@pytest.mark.parametrize("words,width", [
    (2, 4),  # [CLS] the cat [SEP]: 4 pieces, exactly one bucket
    (3, 8),  # 5 pieces: the next bucket
    (10, 12),  # 12 pieces, max_seq_length: the full width
    (30, 12),  # over it: cut at max_seq_length, as without buckets
])
def test_trim_padding_cuts_to_the_longest_row_rounded_up_to_a_bucket(tiny_vocab_dir, words, width):
    tok = tokenization.WordPieceTokenizer.from_directory(tiny_vocab_dir)
    texts = tf.constant([" ".join((["the", "cat"] * 15)[:words]), "the", "cat sat"])  # one long row, short ones
    fixed = tok.encode(texts, 12)
    trimmed = tok.encode(texts, 12, length_bucket=4)
    assert trimmed["token_ids"].shape == (3, width)
    for key in ("token_ids", "segment_ids", "padding_mask"):
        np.testing.assert_array_equal(trimmed[key].numpy(), fixed[key].numpy()[:, :width])
        assert not fixed["padding_mask"].numpy()[:, width:].any()  # only padding was cut
    assert tok.encode(texts, 12, length_bucket=0)["token_ids"].shape == (3, 12)
    empty = tok.encode(tf.constant([], tf.string), 12, length_bucket=4)
    assert empty["token_ids"].shape == (0, 4)


@pytest.mark.parametrize("la,lb,seq", [(3, 2, 16), (10, 2, 10), (2, 10, 10), (7, 7, 10), (8, 5, 9), (1, 1, 5)])
def test_pack_pair_trims_longest_first_like_reference(tiny_vocab_dir, la, lb, seq):
    tok = tokenization.WordPieceTokenizer.from_directory(tiny_vocab_dir)
    a = tf.ragged.constant([list(range(10, 10 + la))], dtype=tf.int64)
    b = tf.ragged.constant([list(range(50, 50 + lb))], dtype=tf.int64)
    out = tok.pack([a, b], seq)
    ref_a, ref_b = list(range(10, 10 + la)), list(range(50, 50 + lb))

    class PopBack(random.Random):  # the reference with truncation always at the back
        def random(self):
            return 0.9

    truncate_seq_pair(ref_a, ref_b, seq - 3, PopBack())
    expected = [tok.cls_id] + ref_a + [tok.sep_id] + ref_b + [tok.sep_id]
    expected += [tok.pad_id] * (seq - len(expected))
    assert out["token_ids"].numpy()[0].tolist() == expected
    segments = out["segment_ids"].numpy()[0].tolist()
    assert segments[: len(ref_a) + 2] == [0] * (len(ref_a) + 2)
    assert segments[len(ref_a) + 2: len(ref_a) + len(ref_b) + 3] == [1] * (len(ref_b) + 1)


def test_missing_special_tokens_are_named(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("[PAD]\n[UNK]\nhello\n")
    with pytest.raises(ValueError, match=r"lacks the special tokens \['\[CLS\]', '\[SEP\]', '\[MASK\]'\]"):
        tokenization.read_vocab(str(path))


def test_ids_match_huggingface_wordpiece(tiny_vocab_dir):
    """Parity with the reference BERT WordPiece (HF tokenizers, google-research semantics)."""
    from tokenizers import BertWordPieceTokenizer

    tok = tokenization.WordPieceTokenizer.from_directory(tiny_vocab_dir)
    reference = BertWordPieceTokenizer(f"{tiny_vocab_dir}/vocab.txt", lowercase=True,
                                       strip_accents=True, clean_text=True, handle_chinese_chars=True)
    texts = ["The cat sat on the mat.", "Unbelievable!! happy,sad", "playing dogs run",
             "CAFÉ movie?", "very   good\tbad", "zebra unplayable", "the 中 cat"]
    ours = tok.tokenize(tf.constant(texts)).to_list()
    for text, ids in zip(texts, ours):
        assert ids == reference.encode(text, add_special_tokens=False).ids, text


DIVERSE_TEXTS = [
    "Café naïve Ångström résumé ÉCOLE", "中文字符 日本語のテキスト 한국어 텍스트", "emoji 😀👍🏽 ok ❤️",
    "wow!!!??? ... -- 'quoted' \"dq\" (paren) [br] {c}", "ctrl\x07char\x1bhere",
    "zero\u200bwidth\u200djoin\ufeffbom", "nb\u00a0sp ideo\u3000space thin\u2009space\ttab\nnewline\r\n",
    "a" * 150 + " end", "MiXeD CaSe WoRdS", "numbers 12345 3.14 1,000", "$100 & 50% ^caret~ `tick` @at #hash",
    "unbelievable unbelievably believer", "\u0301combining accent", "Ｆｕｌｌｗｉｄｔｈ ｌｅｔｔｅｒｓ",
    "ﬁ ligature", "İstanbul ǅ title", "x\x00nul\ufffdrepl", "", "   ", "ünïcödé" * 5,
]


def _learned_vocab(texts, lower_case):
    from tensorflow_text.tools.wordpiece_vocab import (
        wordpiece_tokenizer_learner_lib as learner,
    )

    counts = {}
    for text in texts * 3 + ["the quick brown fox jumps over the lazy dog"] * 5:
        for word in tokenization.basic_tokenize(text, lower_case):
            counts[word] = counts.get(word, 0) + 1
    return learner.learn(counts, 400, tokenization.reserved_tokens(), lower_thresh=1)


@pytest.mark.parametrize("lower_case", [True, False], ids=["uncased", "cased"])
def test_parity_with_reference_bert_on_diverse_text(tmp_path, lower_case):
    """Same vocab.txt and casing -> the same ids as HF's BERT WordPiece (google-research
    tokenization.py semantics), on accents, CJK, emoji, punctuation runs, control and
    zero-width characters, odd whitespace and over-long words."""
    from tokenizers import BertWordPieceTokenizer

    vocab = _learned_vocab(DIVERSE_TEXTS, lower_case)
    (tmp_path / "vocab.txt").write_text("\n".join(vocab) + "\n")
    ours = tokenization.WordPieceTokenizer(vocab, tokenization.TokenizerConfig(lower_case=lower_case))
    reference = BertWordPieceTokenizer(str(tmp_path / "vocab.txt"), lowercase=lower_case,
                                       strip_accents=lower_case, clean_text=True, handle_chinese_chars=True)
    ids = ours.tokenize(tf.constant(DIVERSE_TEXTS)).to_list()
    for text, got in zip(DIVERSE_TEXTS, ids):
        assert got == reference.encode(text, add_special_tokens=False).ids, repr(text)
    # A word over the limit is [UNK] in both (HF counts 100 characters, we count 100 bytes).
    assert ids[DIVERSE_TEXTS.index("a" * 150 + " end")][0] == ours.unk_id


def test_documented_difference_multibyte_word_limit(tmp_path):
    """The one known difference: the per-word limit counts UTF-8 bytes here, characters in HF.
    A 60-character word of 2-byte characters (120 bytes) is [UNK] here, split by HF."""
    from tokenizers import BertWordPieceTokenizer

    word = "é" * 60
    vocab = tokenization.reserved_tokens() + ["é", "##é"]
    (tmp_path / "vocab.txt").write_text("\n".join(vocab) + "\n")
    ours = tokenization.WordPieceTokenizer(vocab, tokenization.TokenizerConfig(lower_case=False))
    reference = BertWordPieceTokenizer(str(tmp_path / "vocab.txt"), lowercase=False, strip_accents=False)
    assert ours.tokenize(tf.constant([word])).to_list() == [[ours.unk_id]]
    assert len(reference.encode(word, add_special_tokens=False).ids) == 60
    assert ours.tokenize(tf.constant(["é" * 50])).to_list()[0] == reference.encode("é" * 50, add_special_tokens=False).ids


def test_ascii_fast_path_equals_general_path():
    """Appending " é" forces the general (per-character) path; it only adds a last word."""
    import random as _random

    rng = _random.Random(3)
    alphabet = [chr(c) for c in range(0, 128)]
    for _ in range(300):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        for lower in (True, False):
            general = tokenization.basic_tokenize(text + " é", lower)
            assert tokenization.basic_tokenize(text, lower) == general[:-1], repr(text)


@pytest.fixture
def tokenizer():
    vocab = tokenization.reserved_tokens() + "the cat sat on ##s mat paris new york , . anna".split()
    return tokenization.WordPieceTokenizer(vocab)


def test_first_piece_labelling_and_truncation(tokenizer):
    words = tf.ragged.constant([["Anna", "cats", "sat", "in", "Paris", "."], ["New", "York"]])
    tags = tf.ragged.constant([[1, 0, 0, 0, 3, 0], [3, 4]], dtype=tf.int64)
    packed = tokenizer.pack_words(tokenizer.tokenize_words(words), 8, tags)
    ids = packed["token_ids"].numpy()
    vocab = tokenizer.vocab
    assert [vocab[i] for i in ids[0]] == ["[CLS]", "anna", "cat", "##s", "sat", "[UNK]", "paris", "[SEP]"]
    # "cats" -> cat ##s: labelled at "cat" only; "." no longer fits (budget 6 pieces).
    assert packed["word_positions"].numpy()[0].tolist() == [1, 2, 4, 5, 6, -1, -1, -1]
    assert packed["word_tags"].numpy()[0].tolist() == [1, 0, 0, 0, 3, -1, -1, -1]
    assert packed["word_tags"].numpy()[1].tolist() == [3, 4, -1, -1, -1, -1, -1, -1]


def test_place_rows_puts_each_rows_slice_at_its_position_and_fills_the_rest():
    """Row i's ``count[i]`` values from ``row_starts[i]`` land at positions ``first[i]``...; the
    rest is ``fill``; no values at all (every text empty) still gives the filled shape."""
    values = tf.constant([10, 11, 12, 20, 21], tf.int64)
    placed = tokenization.place_rows(values, tf.constant([0, 3], tf.int64), tf.constant([1, 0], tf.int64),
                                     tf.constant([3, 1], tf.int64), 5, -1)
    assert placed.numpy().tolist() == [[-1, 10, 11, 12, -1], [20, -1, -1, -1, -1]]
    empty = tokenization.place_rows(tf.zeros([0], tf.int64), tf.constant([0, 0], tf.int64), tf.constant([1, 1], tf.int64),
                                    tf.constant([0, 0], tf.int64), 3, 7)
    assert empty.numpy().tolist() == [[7, 7, 7], [7, 7, 7]]
