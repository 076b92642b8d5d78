"""The multi-label TFMA metric equals scikit-learn's definitions on random label sets."""
import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, hamming_loss, precision_score, recall_score

from tfx_bert_app.models import multilabel_metrics


def test_scores_match_scikit_learn():
    rng = np.random.default_rng(3)
    truth = rng.random((200, 5)) < 0.3
    predicted = rng.random((200, 5)) < 0.35
    predicted[:, 4] = False  # a label never predicted: precision 0, as zero_division=0
    counts = {"tp": (truth & predicted).sum(0), "fp": (~truth & predicted).sum(0), "fn": (truth & ~predicted).sum(0),
              "exact": int((truth == predicted).all(1).sum()), "examples": len(truth)}
    names = list("abcde")
    got = multilabel_metrics.scores(counts, names)
    assert got["micro_f1"] == pytest.approx(f1_score(truth, predicted, average="micro", zero_division=0))
    assert got["macro_f1"] == pytest.approx(f1_score(truth, predicted, average="macro", zero_division=0))
    assert got["subset_accuracy"] == pytest.approx(accuracy_score(truth, predicted))
    assert got["hamming_loss"] == pytest.approx(hamming_loss(truth, predicted))
    per_label = f1_score(truth, predicted, average=None, zero_division=0)
    for i, name in enumerate(names):
        assert got[f"f1/{name}"] == pytest.approx(per_label[i])
        assert got[f"precision/{name}"] == pytest.approx(precision_score(truth[:, i], predicted[:, i], zero_division=0))
        assert got[f"recall/{name}"] == pytest.approx(recall_score(truth[:, i], predicted[:, i], zero_division=0))
