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


def label_counts(dataset, num_classes: int) -> list[int]:
    """How many examples of each class id the (finite) ``dataset`` of (inputs, class id) batches holds."""
    counts = np.zeros(num_classes, np.int64)
    for _, labels in dataset:
        counts += np.bincount(np.asarray(labels).reshape(-1), minlength=num_classes)[:num_classes]
    return [int(c) for c in counts]


def resolve(class_weights, num_classes: int, count) -> list[float]:
    """The weights to train with: ``class_weights`` as given, or (``balanced``) from the label counts
    ``count()`` returns, printed; empty: none."""
    if not is_balanced(class_weights):
        return [float(w) for w in class_weights]
    counts = count()
    weights = balanced(counts)
    print("  [train] balanced class weights from the train split's label counts "
          + ", ".join(f"{i}: {n} -> {w:.3f}" for i, (n, w) in enumerate(zip(counts, weights))), flush=True)
    return weights
