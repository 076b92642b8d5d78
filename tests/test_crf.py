"""models.crf: the CRF's log-likelihood and Viterbi decoding against brute force."""
import itertools

import numpy as np
import pytest

from tfx_bert_app.models import crf


def test_crf_likelihood_and_viterbi_match_brute_force():
    rng = np.random.default_rng(0)
    b, n, t = 5, 4, 3
    logits = rng.normal(size=(b, n, t)).astype("float32")
    transitions = rng.normal(size=(t, t)).astype("float32")
    # The last: no word (a tagger's transfer text): log-likelihood 0, nothing to learn from it.
    mask = np.array([[1, 1, 1, 1], [1, 1, 1, 0], [1, 0, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0]], bool)
    tags = rng.integers(0, t, size=(b, n))
    likelihood = crf.log_likelihood(logits, tags, mask, transitions).numpy()
    decoded = crf.viterbi_decode(logits, mask, transitions).numpy()
    for i in range(b):
        length = int(mask[i].sum())

        def score(seq):
            return (sum(logits[i, j, seq[j]] for j in range(length))
                    + sum(transitions[seq[j - 1], seq[j]] for j in range(1, length)))

        scores = {seq: score(seq) for seq in itertools.product(range(t), repeat=length)}
        log_z = np.log(sum(np.exp(v) for v in scores.values()))
        assert likelihood[i] == pytest.approx(score(tuple(tags[i][:length])) - log_z, abs=1e-4)
        assert tuple(decoded[i][:length]) == max(scores, key=scores.get)
