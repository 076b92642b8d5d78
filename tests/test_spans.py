"""Span patterns (tfx_bert/spans.py): latest, rolling window, static range, versions, dates, no match."""
import os

import pytest

from tfx_bert import spans


def _touch(root, *paths):
    for path in paths:
        full = os.path.join(root, path)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        open(full, "w").close()


@pytest.fixture
def drops(tmp_path):
    """Spans 1, 2, 3 and 10 of train (span 2 re-issued as version 2), a fixed eval file."""
    _touch(tmp_path, "span-1/v1/train.csv", "span-2/v1/train.csv", "span-2/v2/train.csv", "span-3/v1/train.csv",
           "span-10/v1/train.csv", "span-2/v1/notes.txt", "eval.csv")
    return str(tmp_path)


def _resolve(root, span_range, train="span-{SPAN}/v{VERSION}/*.csv", eval_="eval.csv"):
    return spans.resolve({"train": os.path.join(root, train), "eval": os.path.join(root, eval_)}, span_range)


def test_latest_is_the_newest_span_by_number_not_by_name(drops):
    resolved = _resolve(drops, "latest")
    assert resolved.spans == [10] and resolved.version == 1
    assert resolved.patterns == {"train": [os.path.join(drops, "span-10/v1/*.csv")], "eval": [os.path.join(drops, "eval.csv")]}


def test_a_rolling_window_takes_the_newest_n_spans_each_at_its_newest_version(drops):
    resolved = _resolve(drops, "rolling:3")
    assert resolved.spans == [2, 3, 10]
    assert resolved.patterns["train"] == [os.path.join(drops, p) for p in
                                          ("span-2/v2/*.csv", "span-3/v1/*.csv", "span-10/v1/*.csv")]
    assert _resolve(drops, "rolling:9").spans == [1, 2, 3, 10]  # fewer where fewer exist


def test_a_static_range_takes_the_spans_in_it_and_none_is_an_error(drops):
    assert _resolve(drops, "static:2-3").spans == [2, 3]
    assert _resolve(drops, "static:2-2").version == 2
    with pytest.raises(ValueError, match=r"static:4-9 selects none of the spans there are \(\[1, 2, 3, 10\]\)"):
        _resolve(drops, "static:4-9")


def test_a_pattern_that_matches_no_span_is_one_clear_error(drops):
    with pytest.raises(ValueError, match="No span matches the train pattern .*span-{SPAN}/train.tsv"):
        _resolve(drops, "latest", train="span-{SPAN}/train.tsv")


def test_splits_must_share_their_spans(drops):
    _touch(drops, "dev-7.csv")
    with pytest.raises(ValueError, match=r"no span in common \(train: \[1, 2, 3, 10\]; eval: \[7\]\)"):
        _resolve(drops, "latest", "span-{SPAN}/v1/*.csv", "dev-{SPAN}.csv")


def test_dates_and_widths(tmp_path):
    _touch(tmp_path, "2026/12/04/a.jsonl", "2026/12/05/a.jsonl", "2026/13/01/a.jsonl", "007/a.jsonl", "07/a.jsonl")
    resolved = spans.resolve({"train": str(tmp_path / "{YYYY}/{MM}/{DD}/*.jsonl")}, "rolling:2")
    assert resolved.spans == [20791, 20792]  # days since 1970-01-01, as TFX counts; 2026-13-01 is no date
    assert spans.resolve({"train": str(tmp_path / "{SPAN:3}/*.jsonl")}, "latest").patterns["train"] == [
        str(tmp_path / "007/*.jsonl")]


def test_patterns_without_specs_are_read_as_they_are_and_bad_specs_or_ranges_are_named(tmp_path):
    assert spans.resolve({"train": "train/*"}).spans == [] and not spans.has_specs("train/*")
    assert spans.as_glob("a/{SPAN}/{VERSION:2}/{YYYY}-{MM}-{DD}*") == "a/*/*/*-*-**"
    for bad, message in (("{SPAN}/{SPAN}", "more than once"), ("{VERSION}/x", "without a span"),
                         ("{YYYY}/{MM}", "each of"), ("{SPAN}/{YYYY}/{MM}/{DD}", "both")):
        with pytest.raises(ValueError, match=message):
            spans.resolve({"train": str(tmp_path / bad)})
    for text in ("newest", "rolling:0", "static:3-1", "rolling"):
        with pytest.raises(ValueError, match="is not one of latest, rolling:N"):
            spans.parse_range(text)
    assert str(spans.parse_range(" rolling:4 ")) == "rolling:4"
