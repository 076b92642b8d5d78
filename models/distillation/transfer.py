"""Transfer text: unlabelled in-domain lines the teacher labels with its soft outputs, mixed
into a student's batches (DistilBERT's and TinyBERT's transfer set)."""
from __future__ import annotations

import tensorflow as tf


def with_transfer_text(train_dataset, tf_transform_output, d, batch_size: int, seed: int = 0):
    """``train_dataset`` as it is without ``d`` (a teacher's run) or ``d.transfer_pattern``; else
    (batches of (inputs, labels[, weights])) mixed with unlabelled in-domain
    text (``d.transfer_pattern``) that the teacher labels with its soft outputs: about
    ``d.transfer_share`` of each batch's examples are lines of those files, run through the
    task's Transform graph as ``_transfer_features`` says.

    They count in the soft-target loss and not in the labels': a text label is zero at sample
    weight 0 (``WeightedDistiller`` weights the label loss only); a tagger's word tags are all
    -1 (no tag: its losses skip those words), its dataset keeps its (inputs, tags) form."""
    if d is None or not d.transfer_pattern:
        return train_dataset
    from tfx_bert import features

    files = sorted(tf.io.gfile.glob(d.transfer_pattern))
    if not files:
        raise ValueError(f"distill.transfer_pattern {d.transfer_pattern!r} matches no file: give a glob of text "
                         f"files, one text per line (the pretraining corpus's *.txt read as such).")
    raw_spec = dict(tf_transform_output.raw_feature_spec())
    tagger = raw_spec.pop(features.TAGS, None) is not None
    raw_spec.pop(features.LABEL, None)
    lines_per_example, columns = _transfer_features(raw_spec)
    input_spec, label_spec = train_dataset.element_spec[:2]
    tft_layer = tf_transform_output.transform_features_layer()

    def transform(texts):  # [n] lines, or [n, 2]: a line and the next
        transformed = tft_layer(columns(texts))
        n = tf.shape(texts)[0]
        inputs = {k: tf.cast(transformed[k], spec.dtype) for k, spec in input_spec.items()}
        labels = tf.fill(tf.stack([n, *label_spec.shape[1:].as_list()]), tf.constant(-1 if tagger else 0, label_spec.dtype))
        return (inputs, labels) if tagger else (inputs, labels, tf.zeros([n], tf.float32))

    lines = tf.data.TextLineDataset(files).map(tf.strings.strip).filter(lambda line: tf.strings.length(line) > 0)
    if d.transfer_max:
        lines = lines.take(d.transfer_max)
    if lines_per_example == 2:  # a line and the next (mostly of one document, like NSP's positive pairs)
        lines = lines.batch(2, drop_remainder=True)
    transfer = lines.shuffle(10_000, seed=seed).repeat().batch(batch_size).map(transform).unbatch()
    labelled = train_dataset if tagger else train_dataset.map(
        lambda x, y, *w: (x, y, w[0] if w else tf.ones(tf.shape(y)[:1], tf.float32)))
    print(f"  [distill] transfer text: {len(files)} file(s) matching {d.transfer_pattern}, "
          f"{d.transfer_share:.0%} of each batch", flush=True)
    mixed = tf.data.Dataset.sample_from_datasets(
        [labelled.unbatch(), transfer], [1.0 - d.transfer_share, d.transfer_share], seed=seed)
    return mixed.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def _transfer_features(raw_spec: dict):
    """(lines per example, lines -> the task's raw features) for a task whose examples are one
    ``text``, a ``text`` / ``text_b`` pair (a line and the next), or a sentence's ``tokens``
    (a line's words, split as the served tagger splits raw text; and the line as its ``text``)."""
    from tfx_bert import features, tokenization
    from tfx_bert_app.models import export

    keys = set(raw_spec)
    if keys == {features.TEXT}:
        return 1, lambda lines: {features.TEXT: export.reshape_to_spec(lines, raw_spec[features.TEXT])}
    if keys == {features.TEXT, features.TEXT_B}:
        return 2, lambda pairs: {k: export.reshape_to_spec(pairs[:, i], raw_spec[k])
                                 for i, k in enumerate((features.TEXT, features.TEXT_B))}
    if keys in ({features.TOKENS}, {features.TOKENS, features.TEXT}) and isinstance(
            raw_spec[features.TOKENS], tf.io.VarLenFeature):  # CoNLL examples also carry the sentence
        return 1, lambda lines: {features.TOKENS: tokenization.split_words(lines).to_sparse(),
                                 **({features.TEXT: export.reshape_to_spec(lines, raw_spec[features.TEXT])}
                                    if features.TEXT in keys else {})}
    raise ValueError(f"distill.transfer_pattern: this task's examples carry {sorted(keys)}, not one "
                     f"'{features.TEXT}', a '{features.TEXT}', '{features.TEXT_B}' pair or a sentence's "
                     f"'{features.TOKENS}': transfer text cannot stand for them.")
