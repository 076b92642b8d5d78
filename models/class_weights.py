"""``finetune.class_weights: balanced``: each class weighted by how rare it is in the train split.

scikit-learn's ``compute_class_weight("balanced")``: w_c = n / (k x n_c) for n training examples
in k classes, n_c of class c, so every class carries the same total weight in the loss. The counts
come from one pass over the train split's labels when the Trainer starts (as ``finetune.epochs``
counts examples), so they are the data's, not a guess.
"""
from __future__ import annotations

import numpy as np

BALANCED = "balanced"


def is_balanced(class_weights) -> bool:
    return [str(w) for w in class_weights] == [BALANCED]


def balanced(counts) -> list[float]:
    """w_c = n / (k n_c); a class without a training example is an error (its weight would be
    infinite)."""
    counts = np.asarray(counts, np.float64)
    missing = [i for i, c in enumerate(counts) if c == 0]
    if missing:
        raise ValueError(f"finetune.class_weights=balanced: class id(s) {missing} have no training example, so "
                         "their weight is undefined; add examples or give finetune.class_weights explicitly.")
    return [float(w) for w in counts.sum() / (len(counts) * counts)]


def positive_weights(counts) -> list[float]:
    """Multi-label: per label, (examples, positives) -> the weight of its positive term in the
    binary cross-entropy, negatives / positives (PyTorch's ``pos_weight``), so a label's
    positives and negatives carry the same total weight; a label that is never (or always)
    positive in the train split is an error."""
    degenerate = [i for i, (n, p) in enumerate(counts) if p == 0 or p == n]
    if degenerate:
        raise ValueError(f"finetune.class_weights=balanced: label(s) {degenerate} are positive in no (or every) "
                         "training example, so their weight is undefined; add examples or give "
                         "finetune.class_weights (one positive weight per label) explicitly.")
    return [float((n - p) / p) for n, p in counts]


def label_counts(labels_batches, num_classes: int) -> list[int]:
    """How many of each class id the (finite) iterable of label batches holds; ids < 0 (NER's
    positions without a word) are not counted."""
    counts = np.zeros(num_classes, np.int64)
    for labels in labels_batches:
        ids = np.asarray(labels).reshape(-1)
        counts += np.bincount(ids[ids >= 0], minlength=num_classes)[:num_classes]
    return [int(c) for c in counts]


def resolve_balanced(data, task) -> None:
    """With ``finetune.class_weights: balanced``, replaces it in ``data.settings`` by the weights
    of the train split's label counts (``task.count_labels``), printed; before the Trainer
    compiles, so the task's inputs and losses read numbers as if the user had given them."""
    if not is_balanced(data.settings.setting("class_weights", [])):
        return
    counts = task.count_labels(data, data.fn_args.train_files)
    # n / (k n_c), unless the task's model code weighs otherwise (multi-label: per label).
    weights = getattr(task.load(), "balanced_weights", balanced)(counts)
    data.settings.class_weights = weights
    print("  [train] balanced class weights from the train split's label counts "
          + ", ".join(f"{i}: {_described(n)} -> {w:.3f}" for i, (n, w) in enumerate(zip(counts, weights))), flush=True)


def _described(count) -> str:
    """A class's count, or a label's (examples, positives): "12 of 300 positive"."""
    return f"{count[1]} of {count[0]} positive" if isinstance(count, tuple) else str(count)
