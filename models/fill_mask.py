"""Fill-mask: the top-K tokens a pretrained BERT's MLM head predicts for each ``[MASK]`` of a text,
with their probabilities (``tfx-bert fill-mask``), to see what a pretraining run learned.

It reads a pretraining run's model directory (the encoder preset, ``pretraining_model.weights.h5``:
the whole pretraining model, its tied MLM head and NSP head) or any checkpoint with an MLM head
that ``pretrain.init_from`` takes (Hugging Face, google-research TF1, keras-hub), imported first. ``[MASK]`` is matched in the raw text
before tokenizing (the tokenizer would lower-case and split it like any other word).
"""
from __future__ import annotations

import shutil
import tempfile

import numpy as np
import tensorflow as tf

from tfx_bert import features
from tfx_bert_app.models import encoder as encoder_lib
from tfx_bert_app.models import pretrained_heads, pretraining

MASK_TEXT = "[MASK]"


class MaskedLM:
    """A BERT with its MLM and NSP heads, and its tokenizer: a pretraining run's model, or any
    checkpoint ``pretrain.init_from`` takes (imported into a temporary directory first)."""

    def __init__(self, model_dir: str, casing: str = "auto"):
        model_dir = encoder_lib.resolve_dir(model_dir)  # a Trainer's Model artifact as MLMD names it, too
        self._imported = None
        if not pretrained_heads.is_pretraining_dir(model_dir):
            self._imported = tempfile.mkdtemp(prefix="fill-mask-")
            heads = pretrained_heads.import_for_pretraining(model_dir, self._imported, casing)
            if not heads["loaded"].get("mlm"):
                shutil.rmtree(self._imported, ignore_errors=True)
                raise ValueError(f"{model_dir} has no MLM head (cls.predictions / cls/predictions): fill-mask needs "
                                 "one (a BertForPreTraining or BertForMaskedLM checkpoint, or a pretraining run's "
                                 "model); an encoder alone cannot fill masks.")
            model_dir = self._imported
        self.tokenizer = encoder_lib.load_tokenizer(model_dir)
        backbone, self.model, self.heads = pretrained_heads.load_pretraining_model(model_dir, dtype="float32")
        self.max_length = int(backbone.max_sequence_length)
        if self._imported:
            shutil.rmtree(self._imported, ignore_errors=True)

    def encode(self, texts: list[str]) -> tuple[dict, list[int]]:
        """Model inputs for ``texts`` (each ``[CLS] pieces [SEP]``, ``[MASK]`` as the mask id) and
        each text's number of masks; a text without one, or too long, is an error naming it."""
        rows, counts = [], []
        for i, text in enumerate(texts):
            parts = text.split(MASK_TEXT)
            if len(parts) < 2:
                raise ValueError(f"text {i + 1} ({text[:60]!r}) has no {MASK_TEXT}: mark the word to predict.")
            pieces = self.tokenizer.tokenize(tf.constant(parts)).to_list()
            ids = [self.tokenizer.cls_id]
            for k, part in enumerate(pieces):
                ids += ([self.tokenizer.mask_id] if k else []) + list(part)
            ids.append(self.tokenizer.sep_id)
            if len(ids) > self.max_length:
                raise ValueError(f"text {i + 1} is {len(ids)} pieces; this model reads at most {self.max_length}.")
            rows.append(ids)
            counts.append(len(parts) - 1)
        width, masks = max(map(len, rows)), max(counts)
        token_ids = np.full((len(rows), width), self.tokenizer.pad_id, np.int32)
        positions = np.zeros((len(rows), masks), np.int32)
        for i, ids in enumerate(rows):
            token_ids[i, :len(ids)] = ids
            found = [p for p, t in enumerate(ids) if t == self.tokenizer.mask_id]
            positions[i, :len(found)] = found
        inputs = {features.TOKEN_IDS: token_ids, features.SEGMENT_IDS: np.zeros_like(token_ids),
                  features.PADDING_MASK: (token_ids != self.tokenizer.pad_id).astype(np.int32),
                  features.MASK_POSITIONS: positions}
        return inputs, counts

    def fill(self, texts: list[str], top_k: int = 5) -> list[list[list[dict]]]:
        """For each text, for each ``[MASK]`` in order: the ``top_k`` tokens, most probable first,
        as ``{"token": ..., "score": probability}``."""
        inputs, counts = self.encode(texts)
        logits = self.model(inputs, training=False)[pretraining.MLM]
        probabilities = tf.nn.softmax(tf.cast(logits, tf.float32), axis=-1).numpy()
        results = []
        for i, count in enumerate(counts):
            masks = []
            for m in range(count):
                best = np.argsort(-probabilities[i, m])[:top_k]
                masks.append([{"token": self.tokenizer.vocab[t], "score": float(probabilities[i, m, t])} for t in best])
            results.append(masks)
        return results


    def next_sentence(self, pairs: list[tuple[str, str]]) -> np.ndarray:
        """The NSP head's probabilities [pairs, 2] (0: the second text follows the first)."""
        first, second = (tf.constant([pair[k] for pair in pairs]) for k in (0, 1))
        inputs = self.tokenizer.pack([self.tokenizer.tokenize(first), self.tokenizer.tokenize(second)],
                                     self.max_length)
        inputs = {k: tf.cast(v, tf.int32) for k, v in inputs.items()}
        inputs[features.MASK_POSITIONS] = tf.zeros((len(pairs), 1), tf.int32)
        logits = self.model(inputs, training=False)[pretraining.NSP]
        return tf.nn.softmax(tf.cast(logits, tf.float32), axis=-1).numpy()


def describe(text: str, masks: list[list[dict]]) -> str:
    """A readable block: the text, then each mask's candidates."""
    lines = [text]
    for m, candidates in enumerate(masks):
        lines.append(f"  [MASK] {m + 1}: " + ", ".join(f"{c['token']} {c['score']:.3f}" for c in candidates))
    return "\n".join(lines)

