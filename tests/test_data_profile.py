"""The data gate's profile and drift measures (tfx_bert/data_profile.py)."""
import pytest

from tfx_bert import data_profile


def _profile(labels, lengths, unknown=0):
    profile = data_profile.Profile()
    for label, length in zip(labels, lengths):
        profile.add([label], length, unknown)
    return profile


def test_l_infinity_is_the_largest_change_of_one_labels_share():
    assert data_profile.l_infinity({"0": 50, "1": 50}, {"0": 50, "1": 50}) == 0
    assert data_profile.l_infinity({"0": 10, "1": 90}, {"0": 50, "1": 50}) == pytest.approx(0.4)
    assert data_profile.l_infinity({"0": 1, "1": 1, "2": 2}, {"0": 1, "1": 1}) == pytest.approx(0.5)  # a new label


def test_jensen_shannon_is_zero_for_equal_histograms_and_one_for_disjoint():
    assert data_profile.jensen_shannon([3, 1, 0], [6, 2, 0]) == pytest.approx(0)
    assert data_profile.jensen_shannon([1, 0], [0, 1]) == pytest.approx(1)
    assert 0 < data_profile.jensen_shannon([5, 5], [6, 4]) < 0.01


def test_drift_names_each_measure_over_its_threshold_and_zero_turns_a_check_off():
    base = _profile([0, 1] * 50, [10] * 100)
    same = _profile([1, 0] * 40, [12] * 80)
    assert data_profile.drift(same, base, 0.1, 0.1, 0.1) == []
    skewed_long = _profile([1] * 90 + [0] * 10, [100] * 100, unknown=30)
    found = data_profile.drift(skewed_long, base, 0.1, 0.1, 0.1)
    assert [(a.feature, a.measure, a.threshold) for a in found] == [
        ("label", "L-infinity distance", 0.1), ("text length", "Jensen-Shannon divergence", 0.1),
        ("unknown-piece rate", "Jensen-Shannon divergence", 0.1)]
    assert str(found[0]) == "label: L-infinity distance 0.4 > 0.1"
    assert [a.feature for a in data_profile.drift(skewed_long, base, 0.1, 0, 0)] == ["label"]


def test_a_profile_buckets_lengths_and_unknown_rates_and_round_trips():
    profile = data_profile.Profile()
    profile.add([2], 8, 0)  # at a bucket's edge: that bucket
    profile.add([0, 1], 9, 1)
    profile.add([], 900, 0)  # past the last edge: the open bucket
    assert profile.rows == 3 and profile.labels == {"2": 1, "0": 1, "1": 1}
    assert profile.lengths[0] == 1 and profile.lengths[1] == 1 and profile.lengths[-1] == 1
    assert profile.unknown[0] == 2 and profile.unknown[data_profile._bucket(1 / 9, data_profile.UNK_EDGES)] == 1
    import dataclasses
    assert data_profile.Profile.from_dict(dataclasses.asdict(profile)) == profile
