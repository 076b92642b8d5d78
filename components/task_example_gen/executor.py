"""TaskExampleGen executor: labelled task data -> tf.Examples, split by file pattern (train/eval).

* Classification (GLUE TSV, CSV, TSV, JSONL): ``text``, optional ``text_b``, integer ``label``
  (``label_dtype: float``: a float score, e.g. STS-B's 0-5 similarity).
* Token classification (``conll``: CoNLL-2003 columns, token first and tag last, blank lines
  between sentences, ``-DOCSTART-`` lines ignored; IOB1, IOB2 or BIOES tags, converted to IOB2):
  ``tokens`` (the words), ``tags`` (IOB2 ids over ``label_names``' entity types) and ``text``
  (the words joined by spaces).
* Extractive QA (``squad``: SQuAD v1.1 / v2.0 JSON): one example per question with
  ``question_id``, ``question``, ``context``, ``answer_texts`` (all gold answers; none:
  unanswerable) and the first answer's character span ``answer_start`` / ``answer_end`` (-1:
  none). An answer whose ``answer_start`` does not point at its text is dropped and counted.
* Retrieval and re-ranking (``beir``: ``<input_base>/corpus.jsonl``, ``queries.jsonl``, and the
  patterns name qrels files, e.g. ``qrels/train.tsv``; ``msmarco_triples``: query, positive,
  negative per TSV line): one example per relevant (query, passage) judgement with
  ``query_id``, ``query``, ``doc_id``, ``text`` (the passage), ``label`` (its relevance) and
  ``num_negatives`` non-relevant ``negatives`` / ``negative_ids`` (BEIR: mined by word overlap
  from ``negative_pool`` sampled documents, or from BM25 or a dense model ranking the whole
  corpus with ``negative_mining``; see ``tfx_bert.beir.training_pairs``, ``tfx_bert.mining``). Unknown ids
  in qrels, duplicate document ids, empty queries or documents are skipped and counted.

GLUE's TSVs (SST-2 ``sentence``/``label``; MRPC ``#1 String``/``#2 String``/``Quality``; QNLI,
RTE, ...) have a header row and unquoted fields with stray quote characters, so ``glue_tsv``
reads them without quoting. Bad records (empty text, a label outside the label set, a row with
the wrong number of columns, invalid UTF-8, invalid JSON) are skipped and counted (Beam counters and
``ingestion_report.json``); with ``strict`` on, the first one fails the run naming file:line.
"""
from __future__ import annotations

import collections
import csv
import json
import os
from typing import Any, Iterator

import apache_beam as beam
import tensorflow as tf
from tfx.dsl.components.base import base_beam_executor
from tfx.types import artifact_utils

from tfx_bert_app.components import beam_utils, examples_io
from tfx_bert import beir, features, mining, squad, tagging
from tfx_bert.records import TASK_FORMATS, BadInputError, RecordReader

NAMESPACE = "tfx_bert.task_data"
FORMATS = TASK_FORMATS
SPLITS = ("train", "eval")
SCORE = "score"  # batch scoring's one split: score_pattern's files, read with the same loader
VALIDATION = "validation"  # the Trainer's split for checkpoint selection (held out of train, or read)

INPUT_BASE = "input_base"
TRAIN_PATTERN = "train_pattern"
EVAL_PATTERN = "eval_pattern"
INPUT_FORMAT = "input_format"
TEXT_FIELD = "text_field"
TEXT_B_FIELD = "text_b_field"
LABEL_FIELD = "label_field"
LABEL_NAMES = "label_names"  # JSON list; empty: labels are already 0..num_classes-1
NUM_CLASSES = "num_classes"
STRICT = "strict"
TAG_SCHEME = "tag_scheme"  # conll: iob1 | iob2 | bioes
LABEL_DTYPE = "label_dtype"  # int (class ids) | float (scores: STS-B similarity) | multi (several labels)
LABEL_DELIMITER = "label_delimiter"  # multi: csv/tsv label column "a|b" (JSONL: a JSON list)
NUM_NEGATIVES = "num_negatives"  # beir / msmarco_triples: passages to contrast each pair with
NEGATIVE_POOL = "negative_pool"  # beir: sampled documents the lexically hardest negatives come from
SPAN_RANGE = "span_range"  # latest | rolling:N | static:A-B, for {SPAN}-style patterns (tfx_bert/spans.py)
VALIDATION_PATTERN = "validation_pattern"  # files of the validation split ("": held out of train)
VALIDATION_PERCENT = "validation_percent"  # share of train records held out (by a hash of each) as validation
SCORE_PATTERN = "score_pattern"  # set: the files to score, the only split (train/eval patterns unused)
SLICE_FIELDS = "slice_fields"  # JSON list: columns kept as string features to slice the evaluation by
NEGATIVE_MINING = "negative_mining"  # beir: JSON {miner: bm25 | dense | hybrid, model, MiningSettings...} ("": the sample)


class _Reader:
    """Reads one file into (text, text_b, label) records, counting or raising on bad ones."""

    def __init__(self, props: dict[str, Any]):
        self.format = props[INPUT_FORMAT]
        self.text_field, self.text_b_field, self.label_field = props[TEXT_FIELD], props[TEXT_B_FIELD], props[LABEL_FIELD]
        names = json.loads(props[LABEL_NAMES] or "[]")
        self.label_ids = {str(name): i for i, name in enumerate(names)}
        self.num_classes = len(names) or int(props[NUM_CLASSES])
        self.strict = bool(props[STRICT])
        self.reader = RecordReader(lambda name, n: beam_utils.counter(NAMESPACE, name).inc(n), strict=self.strict)
        self.bad = self.reader.bad
        self.tag_scheme = props.get(TAG_SCHEME) or "iob2"
        self.float_labels = (props.get(LABEL_DTYPE) or "int") == "float"
        self.multi_label = props.get(LABEL_DTYPE) == "multi"
        self.label_delimiter = props.get(LABEL_DELIMITER) or "|"
        self.tag_ids = {t: i for i, t in enumerate(tagging.tag_names(names))}
        self.slice_fields = json.loads(props.get(SLICE_FIELDS) or "[]")

    def sentences(self, path: str) -> Iterator[tuple[list[str], list[int]]]:
        """conll: (words, IOB2 tag ids) per sentence; a sentence with a bad line is skipped."""
        words, tags, start, broken = [], [], 0, False
        for number, line in list(self.reader.lines(path)) + [(0, "")]:
            columns = line.split()
            if columns and columns[0] == "-DOCSTART-":
                continue
            if columns and not broken:
                if len(columns) < 2:
                    self.bad("malformed_line", path, number, f"{line!r} has no tag column")
                    broken = True
                else:
                    words.append(columns[0])
                    tags.append(columns[-1])
                    start = start or number
            if not columns:
                if words and not broken:
                    record = self._tagged(words, tags, path, start)
                    if record is not None:
                        yield record
                words, tags, start, broken = [], [], 0, False

    def _tagged(self, words, tags, path, line):
        try:
            iob2 = tagging.to_iob2(tags, self.tag_scheme)
        except ValueError as e:
            self.bad("invalid_tag", path, line, str(e))
            return None
        unknown = sorted({t for t in iob2 if t not in self.tag_ids})
        if unknown:
            self.bad("unknown_label", path, line, f"{unknown} not in {sorted(self.tag_ids)}")
            return None
        return words, [self.tag_ids[t] for t in iob2]

    def records(self, path: str) -> Iterator[tuple[str, str, int, dict]]:
        """(text, text_b, label, {slice field: value}) per good row."""
        if self.format == "jsonl":
            rows = self.reader.jsonl(path)
        else:
            rows = self.reader.delimited(path, "," if self.format == "csv" else "\t",
                                         csv.QUOTE_NONE if self.format == "glue_tsv" else csv.QUOTE_MINIMAL,
                                         required=(self.text_field, self.text_b_field, self.label_field))
        for number, row in rows:
            record = self._record(row, path, number)
            if record is not None:
                yield record + ({k: str(row.get(k) if row.get(k) is not None else "") for k in self.slice_fields},)

    def _record(self, row: dict, path: str, number: int):
        fields = [f for f in (self.text_field, self.text_b_field, self.label_field) if f]
        missing = [f for f in fields if f not in row]
        if missing:
            self.bad("missing_field", path, number, f"no field(s) {missing}")
            return None
        text = str(row[self.text_field]).strip()
        text_b = str(row[self.text_b_field]).strip() if self.text_b_field else ""
        if not text or (self.text_b_field and not text_b):
            self.bad("empty_text", path, number)
            return None
        if not self.label_field:  # unlabelled data (batch scoring): the texts only
            return text, text_b, None
        if self.multi_label:
            labels = self._label_set(row[self.label_field], path, number)
            return None if labels is None else (text, text_b, labels)
        raw_label = str(row[self.label_field]).strip()
        if self.float_labels:
            try:
                score = float(raw_label)
            except ValueError:
                score = float("nan")
            if score != score:  # not a number
                self.bad("invalid_score", path, number, f"{raw_label!r} is not a number")
                return None
            return text, text_b, score
        if self.label_ids:
            label = self.label_ids.get(raw_label)
        else:
            label = int(raw_label) if raw_label.lstrip("-").isdigit() else None
            label = label if label is not None and 0 <= label < self.num_classes else None
        if label is None:
            expected = sorted(self.label_ids) if self.label_ids else f"0..{self.num_classes - 1}"
            self.bad("unknown_label", path, number, f"{raw_label!r} not in {expected}")
            return None
        return text, text_b, label

    def _label_set(self, value, path: str, number: int) -> list[int] | None:
        """multi: a JSON list or a delimited string of label names -> multi-hot over label_names
        (no label at all is a valid record)."""
        names = value if isinstance(value, list) else str(value).split(self.label_delimiter)
        names = [str(n).strip() for n in names if str(n).strip()]
        unknown = sorted({n for n in names if n not in self.label_ids})
        if unknown:
            self.bad("unknown_label", path, number, f"{unknown} not in {sorted(self.label_ids)}")
            return None
        hot = [0] * len(self.label_ids)
        for name in names:
            hot[self.label_ids[name]] = 1
        return hot


class _ReadFile(beam.DoFn):
    def __init__(self, props: dict[str, Any]):
        self._props = props

    def setup(self):
        self._reader = _Reader(self._props)

    def process(self, path: str):
        if self._reader.format == "conll":
            yield from self._tagged(path)
            return
        if self._reader.format == "squad":
            yield from self._questions(path)
            return
        if self._reader.format in ("beir", "msmarco_triples"):
            yield from self._retrieval_pairs(path)
            return
        try:
            for text, text_b, label, slice_values in self._reader.records(path):
                example = tf.train.Example()
                f = example.features.feature
                f[features.TEXT].bytes_list.value.append(text.encode("utf-8"))
                for key, value in slice_values.items():
                    f[key].bytes_list.value.append(value.encode("utf-8"))
                if self._reader.text_b_field:
                    f[features.TEXT_B].bytes_list.value.append(text_b.encode("utf-8"))
                if isinstance(label, list):
                    f[features.LABEL].int64_list.value.extend(label)
                elif isinstance(label, float):
                    f[features.LABEL].float_list.value.append(label)
                elif label is not None:
                    f[features.LABEL].int64_list.value.append(label)
                    beam_utils.counter(NAMESPACE, f"label_{label}").inc()
                yield example
        except (OSError, tf.errors.OpError) as e:
            raise BadInputError(f"{path}: unreadable input file ({e})") from e


    def _tagged(self, path: str):
        try:
            for words, tag_ids in self._reader.sentences(path):
                example = tf.train.Example()
                f = example.features.feature
                f[features.TOKENS].bytes_list.value.extend(w.encode("utf-8") for w in words)
                f[features.TAGS].int64_list.value.extend(tag_ids)
                f[features.TEXT].bytes_list.value.append(" ".join(words).encode("utf-8"))
                beam_utils.counter(NAMESPACE, "tokens").inc(len(words))
                yield example
        except (OSError, tf.errors.OpError) as e:
            raise BadInputError(f"{path}: unreadable input file ({e})") from e


    def _questions(self, path: str):
        counts = collections.Counter()
        try:
            questions = squad.read_squad(path, counts, strict=self._reader.strict)
        except (OSError, tf.errors.OpError) as e:
            raise BadInputError(f"{path}: unreadable input file ({e})") from e
        except ValueError as e:
            raise BadInputError(str(e)) from e
        for name, value in counts.items():
            if name != "questions":
                beam_utils.counter(NAMESPACE, name).inc(value)
        for question in questions:
            example = tf.train.Example()
            f = example.features.feature
            f["question_id"].bytes_list.value.append(question.id.encode("utf-8"))
            f["question"].bytes_list.value.append(question.question.encode("utf-8"))
            f["context"].bytes_list.value.append(question.context.encode("utf-8"))
            f["answer_texts"].bytes_list.value.extend(text.encode("utf-8") for text, _ in question.answers)
            start, end = -1, -1
            if question.answers:
                text, start = question.answers[0]
                end = start + len(text)
            f["answer_start"].int64_list.value.append(start)
            f["answer_end"].int64_list.value.append(end)
            beam_utils.counter(NAMESPACE, "answerable" if question.answers else "unanswerable").inc()
            yield example


    def _mined_negatives(self, data: beir.RetrievalData, counts: collections.Counter) -> dict | None:
        """{query id: negatives} from a first stage over the whole corpus (BM25, a dense model, or
        both fused) ranking it, when ``negative_mining`` is set."""
        if not self._props.get(NEGATIVE_MINING):
            return None
        spec = json.loads(self._props[NEGATIVE_MINING])
        miner, model = spec.pop("miner", "bm25"), spec.pop("model", "")
        settings = mining.MiningSettings(**spec)
        mined = mining.mine(data.queries, data.qrels, *mining.first_stage(miner, data.corpus, model), settings)
        counts[f"queries_short_of_{miner}_negatives"] += sum(len(n) < settings.num_negatives for n in mined.values())
        return mined

    def _retrieval_pairs(self, path: str):
        counts, corpus_counts = collections.Counter(), collections.Counter()
        num_negatives = int(self._props.get(NUM_NEGATIVES) or 0)
        try:
            if self._reader.format == "beir":
                data = beir.read_beir(self._props[INPUT_BASE], counters=counts, strict=self._reader.strict, qrels_path=path,
                                      corpus_counters=corpus_counts)
                pairs = list(beir.training_pairs(data, num_negatives, int(self._props.get(NEGATIVE_POOL) or 0),
                                                 self._mined_negatives(data, counts)))
            else:
                if num_negatives != 1:
                    raise BadInputError(f"{path}: MS MARCO triples carry one negative per query; set "
                                        f"finetune.num_negatives=1 (it is {num_negatives}).")
                pairs = list(beir.read_triples(path, counts, strict=self._reader.strict))
        except (OSError, tf.errors.OpError) as e:
            raise BadInputError(f"{path}: unreadable input file ({e})") from e
        except ValueError as e:
            raise BadInputError(str(e)) from e
        for name, value in counts.items():
            beam_utils.counter(NAMESPACE, name).inc(value)
        for name, value in corpus_counts.items():  # each split reads the same corpus: counted once
            beam_utils.gauge(NAMESPACE, name).set(value)
        for pair in pairs:
            example = tf.train.Example()
            f = example.features.feature
            for key in ("query_id", "query", "doc_id"):
                f[key].bytes_list.value.append(getattr(pair, key).encode("utf-8"))
            f[features.TEXT].bytes_list.value.append(pair.text.encode("utf-8"))
            f[features.LABEL].int64_list.value.append(pair.relevance)
            f["negatives"].bytes_list.value.extend(t.encode("utf-8") for t in pair.negatives)
            f["negative_ids"].bytes_list.value.extend(d.encode("utf-8") for d in pair.negative_ids)
            yield example


class Executor(base_beam_executor.BaseBeamExecutor):
    """Reads train and eval files with Beam; writes Split-train / Split-eval gzip TFRecords, and
    Split-validation: read from ``validation_pattern``, or ``validation_percent`` of the train
    records held out by a hash of each (a duplicated record never straddles the two)."""

    def Do(self, input_dict, output_dict, exec_properties):
        props = dict(exec_properties)
        if props[INPUT_FORMAT] not in FORMATS:
            raise ValueError(f"input_format {props[INPUT_FORMAT]!r} is not one of {FORMATS}.")
        examples = artifact_utils.get_single_instance(output_dict["examples"])
        patterns = {"train": props[TRAIN_PATTERN], "eval": props[EVAL_PATTERN]}
        if props.get(VALIDATION_PATTERN):
            patterns[VALIDATION] = props[VALIDATION_PATTERN]
        if props.get(SCORE_PATTERN):
            patterns = {SCORE: props[SCORE_PATTERN]}
        percent = 0 if props.get(VALIDATION_PATTERN) or SCORE in patterns else int(props.get(VALIDATION_PERCENT) or 0)
        splits = list(patterns) + ([VALIDATION] if percent else [])
        examples.split_names = artifact_utils.encode_split_names(splits)
        files, spans = examples_io.resolve_spans(
            examples, {split: os.path.join(props[INPUT_BASE], p) for split, p in patterns.items()},
            props.get(SPAN_RANGE) or "latest")
        pipeline = self._make_beam_pipeline()
        read = {split: (pipeline | f"Files[{split}]" >> beam.Create(files[split])
                        | f"Read[{split}]" >> beam.ParDo(_ReadFile(props))) for split in patterns}
        if percent:
            read["train"], read[VALIDATION] = read["train"] | "HoldOut[validation]" >> beam.Partition(
                lambda example, _: int(held_out(example, percent)), 2)
        for split in splits:
            _ = examples_io.write_examples(read[split] | f"Count[{split}]" >> beam.Map(_count, split), examples, split)
        counts = examples_io.finish_ingestion(pipeline, examples, NAMESPACE, {
            "input_base": props[INPUT_BASE], "input_format": props[INPUT_FORMAT],
            "files": {s: len(f) for s, f in files.items()}, "validation_percent": percent, "spans": spans})
        for split in splits:
            if not counts.get(f"{split}_records"):
                source = (f"{percent}% of the train records held out" if split == VALIDATION and percent
                          else f"{files[split]} (format {props[INPUT_FORMAT]})")
                raise ValueError(f"No {split} records were read from {source}; skipped: {counts}."
                                 + (" Raise finetune.validation_percent or set finetune.validation_pattern."
                                    if split == VALIDATION else ""))


def held_out(example, percent: int) -> bool:
    """Whether a train record goes to the validation split: a stable hash of its content (the
    same on every worker and run) below ``percent`` of 100 buckets."""
    import hashlib

    digest = hashlib.blake2b(example.SerializeToString(deterministic=True), digest_size=8).digest()
    return int.from_bytes(digest, "big") % 100 < percent


def _count(example, split: str):
    beam_utils.counter(NAMESPACE, f"{split}_records").inc()
    return example
