"""The one tokenizer of the project: BERT basic tokenization + WordPiece.

Used by vocabulary learning (``basic_tokenize``, pure Python, for word counts), by
pretraining-data creation, by Transform's ``preprocessing_fn`` and by the exported serving graph
(``WordPieceTokenizer``, built on tensorflow-text's ``FastBertTokenizer``). The serving graph only
uses op types TF Serving 2.16 has: ``FastBertNormalize``, ``FastWordpieceTokenizeWithOffsets``
and TF core ops (packing is written with ragged core ops, not keras-hub's
``MultiSegmentPacker``, which emits ``TFText>RoundRobinTrim``).
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
import unicodedata
from typing import Sequence

PAD, UNK, CLS, SEP, MASK = "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"
RESERVED_TOKENS = (PAD, UNK, CLS, SEP, MASK)
VOCAB_FILENAME = "vocab.txt"
CONFIG_FILENAME = "tokenizer_config.json"


@dataclasses.dataclass(frozen=True)
class TokenizerConfig:
    """How text is normalised and split before WordPiece.

    ``lower_case`` follows BERT: lower-casing and accent stripping go together (uncased
    models); cased models keep both.
    """

    lower_case: bool = True
    max_bytes_per_word: int = 100
    suffix_indicator: str = "##"

    def to_json(self) -> str:
        return json.dumps(
            {**dataclasses.asdict(self), "special_tokens": list(RESERVED_TOKENS)}, indent=2
        )

    @classmethod
    def from_json(cls, text: str) -> "TokenizerConfig":
        data = json.loads(text)
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def reserved_tokens(num_unused: int = 0) -> list[str]:
    """The special tokens, plus ``[unusedN]`` slots users can repurpose when fine-tuning."""
    return list(RESERVED_TOKENS) + [f"[unused{i}]" for i in range(num_unused)]


# --- Basic tokenization (google-research/bert tokenization.py semantics) -------------------


def _is_control(char: str) -> bool:
    if char in "\t\n\r":
        return False
    return unicodedata.category(char) in ("Cc", "Cf")


def _is_whitespace(char: str) -> bool:
    if char in " \t\n\r":
        return True
    return unicodedata.category(char) == "Zs"


def _is_punctuation(char: str) -> bool:
    cp = ord(char)
    # ASCII non-letters/digits are punctuation for BERT even where Unicode disagrees ("$", "^").
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(char).startswith("P")


def _is_cjk(cp: int) -> bool:
    return (
        0x4E00 <= cp <= 0x9FFF
        or 0x3400 <= cp <= 0x4DBF
        or 0x20000 <= cp <= 0x2A6DF
        or 0x2A700 <= cp <= 0x2B73F
        or 0x2B740 <= cp <= 0x2B81F
        or 0x2B820 <= cp <= 0x2CEAF
        or 0xF900 <= cp <= 0xFAFF
        or 0x2F800 <= cp <= 0x2FA1F
    )


_ASCII_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_ASCII_WORDS = re.compile(r"[A-Za-z0-9]+|[!-/:-@\[-`{-~]")


def basic_tokenize(text: str, lower_case: bool = True) -> list[str]:
    """Splits text into words the way BERT's BasicTokenizer does.

    Removes control characters, splits on whitespace and punctuation, isolates CJK characters,
    and (uncased) lower-cases and strips accents.
    """
    if text.isascii():  # fast path, same result: ASCII has no CJK, accents or Unicode spaces
        text = _ASCII_CONTROL.sub("", text)
        return _ASCII_WORDS.findall(text.lower() if lower_case else text)
    chars = []
    for char in text:
        cp = ord(char)
        if cp == 0 or cp == 0xFFFD or _is_control(char):
            continue
        if _is_whitespace(char):
            chars.append(" ")
        elif _is_cjk(cp):
            chars.extend((" ", char, " "))
        else:
            chars.append(char)
    words = []
    for token in "".join(chars).split():
        if lower_case:
            token = unicodedata.normalize("NFD", token.lower())
            token = "".join(c for c in token if unicodedata.category(c) != "Mn")
        current = []
        for char in token:
            if _is_punctuation(char):
                if current:
                    words.append("".join(current))
                    current = []
                words.append(char)
            else:
                current.append(char)
        if current:
            words.append("".join(current))
    return words


# --- Vocabulary files ---------------------------------------------------------------------


def read_vocab(path: str) -> list[str]:
    """Reads a ``vocab.txt`` (one token a line), with a clear error for a bad file."""
    import tensorflow as tf  # deferred: keeps basic_tokenize importable without TF

    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(f"Vocabulary file not found: {path}")
    with tf.io.gfile.GFile(path, "r") as f:
        vocab = [line.rstrip("\n") for line in f]
    while vocab and vocab[-1] == "":
        vocab.pop()
    missing = [t for t in (PAD, UNK, CLS, SEP, MASK) if t not in vocab]
    if missing:
        raise ValueError(f"Vocabulary {path} lacks the special tokens {missing}.")
    return vocab


def write_vocab_dir(directory: str, vocab: Sequence[str], config: TokenizerConfig) -> None:
    """Writes ``vocab.txt`` and ``tokenizer_config.json`` into ``directory``."""
    import tensorflow as tf

    tf.io.gfile.makedirs(directory)
    with tf.io.gfile.GFile(os.path.join(directory, VOCAB_FILENAME), "w") as f:
        f.write("\n".join(vocab) + "\n")
    with tf.io.gfile.GFile(os.path.join(directory, CONFIG_FILENAME), "w") as f:
        f.write(config.to_json())


def read_tokenizer_config(directory: str) -> TokenizerConfig:
    """Reads ``tokenizer_config.json`` from a vocabulary directory (defaults if absent)."""
    import tensorflow as tf

    path = os.path.join(directory, CONFIG_FILENAME)
    if not tf.io.gfile.exists(path):
        return TokenizerConfig()
    with tf.io.gfile.GFile(path) as f:
        return TokenizerConfig.from_json(f.read())


# --- In-graph WordPiece tokenizer ---------------------------------------------------------


# google-research BERT BasicTokenizer boundaries, in RE2 syntax: whitespace drops out;
# punctuation (ASCII symbol ranges and Unicode P*) and CJK ideographs become words of their own.
_PUNCTUATION = r"[!-/:-@\[-`{-~]|\p{P}"
_CJK = (r"[\x{4E00}-\x{9FFF}\x{3400}-\x{4DBF}\x{20000}-\x{2A6DF}\x{2A700}-\x{2B73F}"
        r"\x{2B740}-\x{2B81F}\x{2B820}-\x{2CEAF}\x{F900}-\x{FAFF}\x{2F800}-\x{2FA1F}]")
WORD_KEEP_PATTERN = f"{_PUNCTUATION}|{_CJK}"
WORD_DELIMITER_PATTERN = rf"\s|\p{{Zs}}|{WORD_KEEP_PATTERN}"


def split_words(texts):
    """BERT's basic word split (as ``WordPieceTokenizer.split_words_with_offsets``, without the
    offsets): strings [batch] -> words, ragged [batch, (words)]."""
    import tensorflow_text as tf_text

    return tf_text.regex_split(texts, WORD_DELIMITER_PATTERN, WORD_KEEP_PATTERN)


def _char_offsets(texts, byte_offsets):
    """Byte offsets [batch, (n)] into UTF-8 ``texts`` -> character offsets: how many of the
    row's characters start before each offset (the text's end maps to its character count)."""
    import tensorflow as tf

    _, char_starts = tf.strings.unicode_decode_with_offsets(texts, "UTF-8")
    starts = char_starts.to_tensor(default_value=tf.int64.max)  # [batch, chars], padding after every offset
    rows = tf.gather(starts, byte_offsets.value_rowids())
    index = tf.searchsorted(rows, tf.expand_dims(byte_offsets.flat_values, 1), side="left")
    return byte_offsets.with_flat_values(tf.squeeze(index, 1))


def _pad_words(values, sequence_length: int):
    """Ragged [batch, (words)] int64 -> dense [batch, sequence_length], padded and cut with -1."""
    import tensorflow as tf

    dense = values.to_tensor(default_value=-1)
    width = tf.shape(dense)[1]
    dense = tf.pad(dense, [[0, 0], [0, tf.maximum(0, sequence_length - width)]], constant_values=-1)
    return tf.reshape(dense[:, :sequence_length], [-1, sequence_length])


def place_rows(flat_values, row_starts, first, count, sequence_length: int, fill):
    """Dense [batch, sequence_length]: position p holds ``flat_values[row_starts[i] + p - first[i]]``
    for ``first[i] <= p < first[i] + count[i]``, ``fill`` elsewhere (int64 [batch] arguments).

    Packing with this (a gather and a select) instead of ragged masking and concatenation keeps
    the traced graph small (tens of ops instead of thousands: every Transform, export and
    serving load traces it) and runs faster.
    """
    import tensorflow as tf

    position = tf.range(sequence_length, dtype=tf.int64)[None, :]
    offset = position - first[:, None]
    inside = (offset >= 0) & (offset < count[:, None])
    padded = tf.concat([flat_values, tf.zeros([1], flat_values.dtype)], 0)  # gathers stay in range when empty
    values = tf.gather(padded, tf.where(inside, row_starts[:, None] + offset, tf.size(flat_values, tf.int64)))
    return tf.where(inside, values, tf.cast(fill, flat_values.dtype))


def place_segments(first, sequence_length: int, cls_id: int, sep_id: int, pad_id: int, second=None,
                   closes_second=None):
    """``[CLS] A [SEP]`` or ``[CLS] A [SEP] B [SEP]`` by position (``place_rows``): ``first`` and
    ``second`` are (flat values, row starts, count) with int64 [batch] starts and counts;
    ``closes_second`` (bool [batch], default every row) says which rows end B with its [SEP].
    Returns int64 token_ids and segment_ids and a bool padding_mask, [batch, sequence_length]."""
    import tensorflow as tf

    position = tf.range(sequence_length, dtype=tf.int64)[None, :]
    values, starts, count = first
    first_sep = count[:, None] + 1
    token_ids = place_rows(values, starts, tf.ones_like(count), count, sequence_length, pad_id)
    token_ids = tf.where(position == 0, tf.constant(cls_id, tf.int64), token_ids)
    token_ids = tf.where(position == first_sep, tf.constant(sep_id, tf.int64), token_ids)
    length, segment_ids = first_sep + 1, tf.zeros_like(token_ids)
    if second is not None:
        values_b, starts_b, count_b = second
        closes = tf.ones_like(count_b, tf.bool) if closes_second is None else closes_second
        end_b = first_sep + 1 + count_b[:, None]  # position of B's [SEP]
        in_b = (position > first_sep) & (position < end_b)
        second_sep = closes[:, None] & (position == end_b)
        b = place_rows(values_b, starts_b, count + 2, count_b, sequence_length, pad_id)
        token_ids = tf.where(in_b, b, tf.where(second_sep, tf.constant(sep_id, tf.int64), token_ids))
        segment_ids = tf.cast(in_b | second_sep, tf.int64)
        length += tf.where(closes[:, None], count_b[:, None] + 1, tf.zeros_like(count_b[:, None]))
    return token_ids, segment_ids, position < length


def trim_padding(packed: dict, length_bucket: int) -> dict:
    """Length-aware packing, for serving: ``packed``'s token_ids, segment_ids and padding_mask
    ([batch, max_seq_length], as ``pack`` makes them) cut to the batch's longest row rounded up
    to a multiple of ``length_bucket`` (at most their width; 0: unchanged); other keys as they
    are. What is cut is padding in every row, which the encoder masks, so each row's outputs do
    not change; a batch of short texts no longer pays for max_seq_length positions. Training
    keeps the fixed length (one traced shape, XLA)."""
    if not length_bucket:
        return packed
    import tensorflow as tf

    from tfx_bert import features

    mask = packed[features.PADDING_MASK]
    lengths = tf.reduce_sum(tf.cast(mask, tf.int32), axis=1)
    longest = tf.reduce_max(tf.concat([lengths, [1]], 0))  # an empty batch keeps one bucket
    width = tf.minimum(tf.shape(mask)[1], (longest + length_bucket - 1) // length_bucket * length_bucket)
    return {key: value[:, :width] if key in features.MODEL_INPUT_KEYS else value for key, value in packed.items()}


class WordPieceTokenizer:
    """WordPiece tokenizer and BERT input packer, in TF ops that TF Serving has.

    Example:
    >>> tok = WordPieceTokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hi"])
    >>> tok.pack([tok.tokenize(["hi hi"])], sequence_length=5)["token_ids"].numpy().tolist()
    [[2, 5, 5, 3, 0]]
    """

    def __init__(self, vocab: Sequence[str], config: TokenizerConfig = TokenizerConfig()):
        import tensorflow as tf
        import tensorflow_text as tf_text

        self.vocab = list(vocab)
        self.config = config
        index = {token: i for i, token in enumerate(self.vocab)}
        for token in RESERVED_TOKENS:
            if token not in index:
                raise ValueError(f"Vocabulary lacks the special token {token}.")
        self.pad_id, self.unk_id = index[PAD], index[UNK]
        self.cls_id, self.sep_id, self.mask_id = index[CLS], index[SEP], index[MASK]
        self.vocabulary_size = len(self.vocab)
        # Normalisation is done by normalize() below, so FastBertTokenizer only splits
        # (whitespace, punctuation, CJK) and runs WordPiece.
        self._tokenizer = tf_text.FastBertTokenizer(
            self.vocab,
            suffix_indicator=config.suffix_indicator,
            max_bytes_per_word=config.max_bytes_per_word,
            token_out_type=tf.int64,
            unknown_token=UNK,
            lower_case_nfd_strip_accents=False,
        )

    @classmethod
    def from_directory(cls, directory: str) -> "WordPieceTokenizer":
        """Loads ``vocab.txt`` and ``tokenizer_config.json`` written by ``write_vocab_dir``."""
        return cls(
            read_vocab(os.path.join(directory, VOCAB_FILENAME)),
            read_tokenizer_config(directory),
        )

    def normalize(self, texts):
        """google-research BERT text cleaning, in TF core ops + ``NormalizeUTF8``.

        Drops NUL, U+FFFD, control (Cc) and format (Cf, e.g. zero-width) characters, maps
        tab/newline to spaces; uncased: lower-cases (Unicode), NFD, and strips combining marks.
        tensorflow-text's own ``lower_case_nfd_strip_accents`` applies NFKC case folding
        instead, which maps full-width letters and ligatures to ASCII where BERT keeps them.
        """
        import tensorflow as tf
        import tensorflow_text as tf_text

        texts = tf.strings.regex_replace(texts, r"[\t\n\r]", " ")
        texts = tf.strings.regex_replace(texts, r"[\p{Cc}\p{Cf}\x{FFFD}]", "")
        if self.config.lower_case:
            texts = tf.strings.lower(texts, encoding="utf-8")
            texts = tf_text.normalize_utf8(texts, "NFD")
            texts = tf.strings.regex_replace(texts, r"\p{Mn}", "")
        return texts

    def tokenize(self, texts):
        """Strings [batch] -> WordPiece ids, RaggedTensor int64 [batch, (tokens)]."""
        return self._tokenizer.tokenize(self.normalize(texts))

    def tokenize_with_offsets(self, texts):
        """Like ``tokenize`` plus byte offsets (start, end) of each token.

        Offsets index the *normalised* text for uncased tokenizers (lower-casing and accent
        stripping change byte lengths); cased tokenizers only drop control characters.
        """
        return self._tokenizer.tokenize_with_offsets(self.normalize(texts))

    def pack(self, segments, sequence_length: int) -> dict:
        """Packs one or two ragged id segments into BERT inputs of a fixed length.

        ``[CLS] A [SEP]`` or ``[CLS] A [SEP] B [SEP]``; over-long pairs are trimmed longest
        first, as google-research/bert's ``_truncate_seq_pair`` does. A row whose second text
        has no tokens (empty, or only characters BERT drops) packs as ``[CLS] A [SEP]`` with the
        single-text budget, as google-research and Hugging Face pack it.

        Returns a dict of int32 [batch, sequence_length] tensors: token_ids, segment_ids,
        and a bool padding_mask.
        """
        import tensorflow as tf

        from tfx_bert import features

        if len(segments) not in (1, 2):
            raise ValueError(f"pack() takes one or two segments, got {len(segments)}.")
        lengths = [tf.cast(s.row_lengths(), tf.int64) for s in segments]
        if len(segments) == 1:
            keep = [tf.minimum(lengths[0], sequence_length - 2)]
        else:
            la, lb = lengths
            budget = sequence_length - 2 - tf.cast(lb > 0, tf.int64)  # per row: one [SEP] more with a B
            half_up = (budget + 1) // 2
            keep_a = tf.minimum(la, tf.maximum(budget - lb, half_up))
            keep = [keep_a, tf.minimum(lb, budget - keep_a)]

        def rows(segment, count):
            return tf.cast(segment.flat_values, tf.int64), tf.cast(segment.row_splits[:-1], tf.int64), count

        token_ids, segment_ids, mask = place_segments(  # no second [SEP] after an empty B
            rows(segments[0], keep[0]), sequence_length, self.cls_id, self.sep_id, self.pad_id,
            *([rows(segments[1], keep[1]), lengths[1] > 0] if len(segments) == 2 else []))
        return {
            features.TOKEN_IDS: tf.cast(token_ids, tf.int32),
            features.SEGMENT_IDS: tf.cast(segment_ids, tf.int32),
            features.PADDING_MASK: mask,
        }

    def split_words_with_offsets(self, texts):
        """BERT's basic word split of the *original* text, with character offsets.

        Whitespace separates words; punctuation and CJK characters are words of their own (as
        google-research BERT's BasicTokenizer splits). Returns (words [batch, (words)], starts,
        ends), offsets in Unicode characters of the input, end exclusive.
        """
        import tensorflow_text as tf_text

        words, byte_starts, byte_ends = tf_text.regex_split_with_offsets(
            texts, WORD_DELIMITER_PATTERN, WORD_KEEP_PATTERN)
        return words, _char_offsets(texts, byte_starts), _char_offsets(texts, byte_ends)

    def tokenize_words(self, words):
        """Words [batch, (words)] -> WordPiece ids [batch, (words), (pieces)]."""
        return words.with_flat_values(self._tokenizer.tokenize(self.normalize(words.flat_values)))

    def pack_words(self, word_pieces, sequence_length: int, word_labels=None) -> dict:
        """Packs words' pieces as ``[CLS] pieces [SEP]`` for token classification.

        Besides token_ids / segment_ids / padding_mask it returns ``word_positions`` [batch,
        sequence_length]: the position of each word's first piece (-1 past the last word, for
        a word cut off by truncation or with no pieces); with ``word_labels`` [batch, (words)]
        also ``word_tags``: the label of each word, -1 where there is none.
        """
        import tensorflow as tf

        from tfx_bert import features

        packed = self.pack([word_pieces.merge_dims(1, 2)], sequence_length)
        counts = tf.cast(word_pieces.row_lengths(axis=2), tf.int64)  # [batch, (words)]
        flat = counts.flat_values
        cumulative = tf.cumsum(flat, exclusive=True)
        row_offsets = tf.gather(tf.concat([cumulative, [tf.reduce_sum(flat)]], 0), counts.row_splits[:-1])
        starts = cumulative - tf.repeat(row_offsets, counts.row_lengths())
        kept = (flat > 0) & (starts < sequence_length - 2)
        positions = counts.with_flat_values(tf.where(kept, starts + 1, -1))
        result = dict(packed)
        result[features.WORD_POSITIONS] = _pad_words(positions, sequence_length)
        if word_labels is not None:
            labels = word_labels.with_flat_values(tf.where(kept, tf.cast(word_labels.flat_values, tf.int64), -1))
            result[features.WORD_TAGS] = _pad_words(labels, sequence_length)
        return result

    def encode(self, texts, sequence_length: int, texts_b=None, length_bucket: int = 0) -> dict:
        """Raw strings (and optional second strings) -> packed BERT inputs (``length_bucket``:
        trimmed as ``trim_padding`` does, for serving)."""
        segments = [self.tokenize(texts)]
        if texts_b is not None:
            segments.append(self.tokenize(texts_b))
        return trim_padding(self.pack(segments, sequence_length), length_bucket)
