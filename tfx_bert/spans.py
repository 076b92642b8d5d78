"""Data spans: TFX's ``{SPAN}``, ``{VERSION}`` and ``{YYYY}`` / ``{MM}`` / ``{DD}`` specs in file
patterns, resolved when a pipeline runs (in its ExampleGen), never when it is built.

A span is a drop of data (a day, a week, a batch of annotations); a version is a re-issue of one
span. ``train/{SPAN}/*.csv`` matches ``train/1/a.csv``, ``train/2/a.csv``...; ``{SPAN:3}`` asks
for a zero-padded width of 3; a date spec counts days since 1970-01-01 (as TFX's
``date_to_span_number``). The span range, with TFX's ``RangeConfig`` semantics:

* ``latest`` (default): the newest span (and its newest version);
* ``rolling:N``: the newest N spans (a rolling window; fewer where fewer exist);
* ``static:A-B``: the spans A..B that exist (at least one).

Splits whose patterns have specs must share the selected spans; a split without specs (a fixed
eval set, say) is read as it is. Written here rather than with TFX's ExampleGen driver, which
takes one span at a time (``RangeConfig.static_range`` with start == end) and no rolling window.
"""
from __future__ import annotations

import dataclasses
import datetime
import re

_SPAN = re.compile(r"\{SPAN(?::(\d+))?\}")
_VERSION = re.compile(r"\{VERSION(?::(\d+))?\}")
_DATES = (("{YYYY}", "year", 4), ("{MM}", "month", 2), ("{DD}", "day", 2))
_EPOCH = datetime.date(1970, 1, 1)
RANGE_HELP = "latest, rolling:N (the newest N spans) or static:A-B (spans A to B)"


@dataclasses.dataclass(frozen=True)
class SpanRange:
    kind: str  # latest | rolling | static
    count: int = 1  # rolling: how many of the newest spans
    start: int = 0  # static: first and last span
    end: int = 0

    def select(self, spans: list[int]) -> list[int]:
        """The spans of ``spans`` (sorted) this range takes."""
        if self.kind == "static":
            return [s for s in spans if self.start <= s <= self.end]
        return spans[-self.count:]

    def __str__(self) -> str:
        return {"latest": "latest", "rolling": f"rolling:{self.count}", "static": f"static:{self.start}-{self.end}"}[
            self.kind]


def parse_range(text: str) -> SpanRange:
    """``latest``, ``rolling:N`` or ``static:A-B`` as a SpanRange; anything else is a ValueError
    that says what is accepted."""
    value = str(text).strip()
    rolling = re.fullmatch(r"rolling:(\d+)", value)
    static = re.fullmatch(r"static:(\d+)-(\d+)", value)
    if value == "latest":
        return SpanRange("latest")
    if rolling and int(rolling.group(1)) >= 1:
        return SpanRange("rolling", count=int(rolling.group(1)))
    if static and int(static.group(1)) <= int(static.group(2)):
        return SpanRange("static", start=int(static.group(1)), end=int(static.group(2)))
    raise ValueError(f"span range {text!r} is not one of {RANGE_HELP} (N >= 1, A <= B)")


def has_specs(pattern: str) -> bool:
    return bool(_SPAN.search(pattern) or _VERSION.search(pattern) or any(s in pattern for s, _, _ in _DATES))


def as_glob(pattern: str) -> str:
    """``pattern`` with every spec a wildcard: the files of all spans (for a cache fingerprint,
    or to check that any input exists)."""
    pattern = _VERSION.sub("*", _SPAN.sub("*", pattern))
    for spec, _, _ in _DATES:
        pattern = pattern.replace(spec, "*")
    return pattern


@dataclasses.dataclass
class Resolved:
    patterns: dict  # split -> the concrete patterns, one per selected span
    spans: list  # the selected spans, oldest first (empty: no pattern has specs)
    version: int | None  # the newest selected span's version (None: no {VERSION})


def resolve(patterns: dict[str, str], span_range: str | SpanRange = "latest") -> Resolved:
    """The concrete patterns of each split for ``span_range``; a pattern that matches no span,
    or splits with no span in common, is one ValueError naming the patterns."""
    rng = span_range if isinstance(span_range, SpanRange) else parse_range(span_range)
    found = {split: _spans_of(pattern) for split, pattern in patterns.items() if has_specs(pattern)}
    if not found:
        return Resolved({split: [p] for split, p in patterns.items()}, [], None)
    for split, spans in found.items():
        if not spans:
            raise ValueError(f"No span matches the {split} pattern {patterns[split]!r} (files are looked up as "
                             f"{as_glob(patterns[split])!r}): check the pattern and that the span's files exist.")
    common = sorted(set.intersection(*(set(spans) for spans in found.values())))
    if not common:
        listed = "; ".join(f"{split}: {sorted(spans)}" for split, spans in found.items())
        raise ValueError(f"The splits have no span in common ({listed}): each split's pattern must match the same spans.")
    selected = rng.select(common)
    if not selected:
        raise ValueError(f"Span range {rng} selects none of the spans there are ({common}).")
    resolved = {split: [_fill(p, *found[split][span]) for span in selected] if split in found else [p]
                for split, p in patterns.items()}
    versions = [found[split][selected[-1]][2] for split in found if found[split][selected[-1]][2] is not None]
    return Resolved(resolved, selected, max(versions) if versions else None)


def _spans_of(pattern: str) -> dict[int, tuple]:
    """span number -> (span tokens, version token, version number) of the files ``pattern``
    matches, each span at its newest version."""
    import tensorflow as tf

    _check_specs(pattern)
    regex = re.compile(_regex(pattern))
    spans: dict[int, tuple] = {}
    for path in tf.io.gfile.glob(as_glob(pattern)):
        match = regex.fullmatch(path)
        if not match:
            continue
        groups = match.groupdict()
        if "span" in groups:
            number, tokens = int(groups["span"]), (groups["span"],)
        else:
            tokens = tuple(groups[name] for _, name, _ in _DATES)
            try:
                number = (datetime.date(*map(int, tokens)) - _EPOCH).days
            except ValueError:
                continue  # not a calendar date: not a span of this pattern
        version = int(groups["version"]) if groups.get("version") is not None else None
        if number not in spans or (version is not None and version > spans[number][2]):
            spans[number] = (tokens, groups.get("version"), version)
    return spans


def _check_specs(pattern: str) -> None:
    dates = [spec for spec, _, _ in _DATES if spec in pattern]
    problems = [
        (len(_SPAN.findall(pattern)) > 1, "has {SPAN} more than once"),
        (len(_VERSION.findall(pattern)) > 1, "has {VERSION} more than once"),
        (bool(_SPAN.search(pattern)) and bool(dates), "has both {SPAN} and date specs"),
        (bool(dates) and (len(dates) != 3 or any(pattern.count(s) != 1 for s in dates)),
         "needs each of {YYYY}, {MM} and {DD} once"),
        (bool(_VERSION.search(pattern)) and not (_SPAN.search(pattern) or dates), "has {VERSION} without a span"),
    ]
    for bad, what in problems:
        if bad:
            raise ValueError(f"File pattern {pattern!r} {what}.")


def _regex(pattern: str) -> str:
    """A regex of ``pattern`` (glob ``*`` and ``?`` within a path part) capturing its specs."""
    tokens = re.split(r"(\{SPAN(?::\d+)?\}|\{VERSION(?::\d+)?\}|\{YYYY\}|\{MM\}|\{DD\})", pattern)
    out = []
    for token in tokens:
        span, version = _SPAN.fullmatch(token), _VERSION.fullmatch(token)
        date = next(((name, width) for spec, name, width in _DATES if token == spec), None)
        if span or version:
            width = (span or version).group(1)
            out.append(f"(?P<{'span' if span else 'version'}>\\d{{{width}}})" if width else
                       f"(?P<{'span' if span else 'version'}>\\d+)")
        elif date:
            out.append(f"(?P<{date[0]}>\\d{{{date[1]}}})")
        else:
            out.append(re.escape(token).replace(r"\*", "[^/]*").replace(r"\?", "[^/]"))
    return "".join(out)


def _fill(pattern: str, span_tokens: tuple, version_token: str | None, _version: int | None) -> str:
    """``pattern`` with one span's tokens (and its version's) in place of the specs."""
    if len(span_tokens) == 1:
        pattern = _SPAN.sub(lambda _: span_tokens[0], pattern)
    else:
        for (spec, _, _), token in zip(_DATES, span_tokens):
            pattern = pattern.replace(spec, token)
    return _VERSION.sub(lambda _: version_token, pattern) if version_token is not None else pattern
