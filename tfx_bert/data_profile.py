"""What the data gate compares between spans: a profile of a split (label distribution, text
length in word pieces, unknown-piece rate) and the drift measures between two profiles.

Label drift is TFDV's L-infinity distance (the largest change of one label's share); the two
histograms are compared by Jensen-Shannon divergence (base 2: 0 for equal, 1 for disjoint), as
TFDV compares numeric features. TFDV itself cannot: the label's values are ids without a
categorical domain in an inferred schema, and lengths in word pieces and the unknown-piece rate
are not features of the raw data at all (they need the encoder's tokenizer).
"""
from __future__ import annotations

import dataclasses
import math

# A profile's file: the data gate's output, and the copy the Trainer keeps with the model it
# trained on that data (the next span's drift baseline once the model is blessed).
PROFILE_FILE = "data_profile.json"
GATE_FILE = "data_gate.json"  # the gate's report: passed, the anomalies, the profile and its baseline

# Upper edges of the length buckets (word pieces per text; the last is open).
LENGTH_EDGES = (8, 16, 32, 64, 128, 256, 512)
# Upper edges of the unknown-piece-rate buckets (share of a text's pieces that are [UNK]); the
# first holds only texts without any.
UNK_EDGES = (0.0, 0.02, 0.05, 0.1, 0.2, 0.5)


@dataclasses.dataclass
class Profile:
    rows: int = 0
    labels: dict = dataclasses.field(default_factory=dict)  # label id (str) -> count
    lengths: list = dataclasses.field(default_factory=lambda: [0] * (len(LENGTH_EDGES) + 1))
    unknown: list = dataclasses.field(default_factory=lambda: [0] * (len(UNK_EDGES) + 1))

    def add(self, labels, pieces: int, unknown_pieces: int) -> None:
        """One text with its label ids (a class, several labels or a sentence's tags)."""
        self.rows += 1
        for label in labels:
            self.labels[str(label)] = self.labels.get(str(label), 0) + 1
        self.lengths[_bucket(pieces, LENGTH_EDGES)] += 1
        self.unknown[_bucket(unknown_pieces / pieces if pieces else 0.0, UNK_EDGES)] += 1

    @classmethod
    def from_dict(cls, data: dict) -> "Profile":
        return cls(**{f.name: data[f.name] for f in dataclasses.fields(cls) if f.name in data})


def _bucket(value: float, edges) -> int:
    return next((i for i, edge in enumerate(edges) if value <= edge), len(edges))


def _shares(counts) -> list[float]:
    total = sum(counts)
    return [c / total for c in counts] if total else [0.0] * len(counts)


def l_infinity(a: dict, b: dict) -> float:
    """The largest difference of one key's share between two count dicts."""
    keys = sorted(set(a) | set(b))
    pa, pb = _shares([a.get(k, 0) for k in keys]), _shares([b.get(k, 0) for k in keys])
    return max((abs(x - y) for x, y in zip(pa, pb)), default=0.0)


def jensen_shannon(a, b) -> float:
    """Jensen-Shannon divergence (base 2, in [0, 1]) of two histograms of the same buckets."""
    pa, pb = _shares(a), _shares(b)
    mix = [(x + y) / 2 for x, y in zip(pa, pb)]

    def kl(p, q):
        return sum(x * math.log2(x / y) for x, y in zip(p, q) if x > 0)

    return 0.5 * kl(pa, mix) + 0.5 * kl(pb, mix)


@dataclasses.dataclass(frozen=True)
class Anomaly:
    feature: str
    measure: str
    value: float | str
    threshold: float | None  # None: a schema anomaly (the value says what is wrong)

    def __str__(self) -> str:
        if self.threshold is None:
            return f"{self.feature}: {self.measure}: {self.value}"
        return f"{self.feature}: {self.measure} {self.value:g} > {self.threshold:g}"


def drift(current: Profile, baseline: Profile, label_linf: float, length_js: float, unknown_js: float) -> list[Anomaly]:
    """The measures of ``current`` against ``baseline`` that exceed their thresholds (a
    threshold of 0 turns its check off)."""
    checks = [("label", "L-infinity distance", l_infinity(current.labels, baseline.labels), label_linf,
               bool(current.labels or baseline.labels)),
              ("text length", "Jensen-Shannon divergence", jensen_shannon(current.lengths, baseline.lengths), length_js,
               True),
              ("unknown-piece rate", "Jensen-Shannon divergence", jensen_shannon(current.unknown, baseline.unknown),
               unknown_js, True)]
    return [Anomaly(feature, measure, round(value, 4), threshold)
            for feature, measure, value, threshold, applies in checks if applies and threshold and value > threshold]
