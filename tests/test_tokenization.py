import random

import numpy as np
import pytest
import tensorflow as tf

from components.pretraining_data.instances import truncate_seq_pair
from tfx_bert import tokenization


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
