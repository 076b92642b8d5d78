"""End-to-end: both pipelines on the tiny configuration, push, and gRPC Predict on raw text.

Slow (minutes); `make test-fast` leaves them out.
"""
import csv
import glob
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers the WordPiece ops the exported graph uses)
import yaml

from tests.helpers import PUBLISHED, REPO, demo_encoder, teacher_model
from tfx_bert_app.models import keras_layers

pytestmark = pytest.mark.slow


def _eval_rows(work):
    with open(os.path.join(work, "data", "sentiment", "eval", "data.csv")) as f:
        return [(r["text"], int(r["label"])) for r in csv.DictReader(f)]


def test_demo_prints_grpc_predictions_and_summary(demo_run):
    _, out = demo_run
    assert "Predictions over gRPC from 127.0.0.1:" in out
    assert "▶ Trainer" in out and "✔ Pusher finished" in out
    assert "== Summary ==" in out


def test_pretraining_learns_beyond_baselines(demo_run):
    work, _ = demo_run
    [path] = glob.glob(os.path.join(work, "pipelines", "tfx-bert-pretrain", "Trainer", "model", "*",
                                    "Format-Serving", "pretraining_metrics.json"))
    m = json.load(open(path))
    # Baselines are measured on the same evaluation batches: always the most frequent token /
    # the most frequent NSP label. Margins are far below what a healthy run reaches.
    assert m["mlm_accuracy"] > m["mlm_unigram_baseline_accuracy"] + 0.15, m
    assert m["nsp_accuracy"] > m["nsp_majority_baseline_accuracy"] + 0.05, m


def test_pushed_model_is_blessed_accurate_and_servable(demo_run):
    from tfx_bert.serving import op_check

    work, _ = demo_run
    versions = glob.glob(os.path.join(work, "serving", "sentiment", "*", "saved_model.pb"))
    assert len(versions) == 1
    version_dir = os.path.dirname(versions[0])
    assert op_check.unsupported_ops(version_dir) == []
    model = tf.saved_model.load(version_dir)
    rows = _eval_rows(work)
    texts = tf.constant([t for t, _ in rows])
    labels = np.array([l for _, l in rows])
    predicted = model.signatures["serving_default"](text=texts)["class_ids"].numpy()
    majority = max(labels.mean(), 1 - labels.mean())
    accuracy = (predicted == labels).mean()
    assert accuracy > majority + 0.2, (accuracy, majority)
    [blessing] = glob.glob(os.path.join(work, "pipelines", "tfx-bert-sentiment", "Evaluator", "blessing", "*", "BLESSED"))
    assert blessing

    # Calibrated (finetune.calibration: temperature): the temperature fitted on the validation
    # split divides the logits of the served softmax; the Evaluator reports the eval split's ECE.
    import tensorflow_model_analysis as tfma

    from tfx_bert_app.models import calibration, distillation

    [run_dir] = glob.glob(os.path.join(work, "pipelines", "tfx-bert-sentiment", "Trainer", "model_run", "*"))
    train_metrics = json.load(open(os.path.join(run_dir, "train_metrics.json")))
    report = train_metrics["calibration"]
    assert report["nll_after"] <= report["nll_before"] and report["examples"] > 0, report
    # Nothing cut silently: the Trainer counted the texts past max_seq_length (the demo's reviews
    # fit), and the served response says how many windows each text lost.
    cut = train_metrics["windows_cut"]
    assert cut["validation"]["texts"] == report["examples"] and cut["train"]["texts"] > 0, cut
    assert cut["train"]["texts_cut"] == 0, cut
    long_text = " ".join([rows[0][0]] * 20)
    assert model.signatures["serving_default"](text=tf.constant([long_text, rows[0][0]]))["windows_cut"].numpy()[0] > 0
    serving_dir = teacher_model(work, "tfx-bert-sentiment")
    keras_model, tokenizer = distillation.load_teacher(serving_dir), distillation.teacher_tokenizer(serving_dir)
    packed = tokenizer.encode(texts[:16], 64)
    logits = keras_model({k: tf.cast(v, tf.int32) for k, v in packed.items()}, training=False).numpy()
    served = model.signatures["serving_default"](text=texts[:16])["probabilities"].numpy()
    np.testing.assert_allclose(served, calibration.probabilities(logits, report["temperature"]), atol=1e-4)
    with open(os.path.join(version_dir, "assets.extra", "model_card.md"), encoding="utf-8") as f:
        assert "- Calibration: " in f.read()  # the pushed version's card says how its probabilities were made
    [evaluation] = glob.glob(os.path.join(work, "pipelines", "tfx-bert-sentiment", "Evaluator", "evaluation", "*"))
    names = {kv.key.name for record in tfma.load_metrics(evaluation) for kv in record.metric_keys_and_values}
    assert calibration.ECE in names


def test_pushed_model_answers_predict_over_grpc_with_raw_text(demo_run):
    from tfx_bert.cli import DevServer
    from tfx_bert.serving.client import ServingClient

    work, _ = demo_run
    base = os.path.join(work, "serving", "sentiment")
    version_dir = glob.glob(os.path.join(base, "*"))[0]
    rows = _eval_rows(work)[:16]
    texts = [t for t, _ in rows]
    local = tf.saved_model.load(version_dir).signatures["serving_default"](text=tf.constant(texts))
    with DevServer("sentiment", base) as server, ServingClient(server.target) as client:
        client.wait_until_available("sentiment")
        remote = client.predict("sentiment", {"text": np.array(texts, dtype=object)})
        example = tf.train.Example()
        example.features.feature["text"].bytes_list.value.append(texts[0].encode())
        via_example = client.predict("sentiment", {"examples": np.array([example.SerializeToString()], dtype=object)},
                                     signature_name="serving_tf_example")
    np.testing.assert_allclose(remote["probabilities"], local["probabilities"].numpy(), atol=1e-5)
    np.testing.assert_array_equal(remote["class_ids"], local["class_ids"].numpy())
    np.testing.assert_allclose(via_example["probabilities"][0], remote["probabilities"][0], atol=1e-5)


def test_demo_distils_a_student_that_keeps_the_teachers_accuracy_is_pushed_and_answers_over_grpc(demo_run):
    """`make demo` distils the fine-tuned classifier (the teacher, 2 layers) into a 1-layer
    student: trained from the teacher's Trainer output, gated on keeping 97% of its accuracy by
    TFMA with the teacher as baseline, pushed under its own name, served over gRPC, and shown
    side by side with the teacher."""
    from tfx_bert.cli import DevServer
    from tfx_bert.serving import op_check
    from tfx_bert.serving.client import ServingClient

    work, out = demo_run
    assert "== Distillation: teacher vs student ==" in out and "retention" in out, out[-3000:]
    _, _, blessed = _check_student(work, "sentiment", "sparse_categorical_accuracy", (2, 1))
    assert blessed
    # The teacher is this run's fine-tuned model (lineage through the Trainer's output).
    [teacher] = glob.glob(os.path.join(work, "pipelines", "tfx-bert-sentiment", "Trainer", "model", "*"))
    assert f"layer classifier {teacher}/Format-Serving" in out

    base = os.path.join(work, "serving", "sentiment-student")
    [version_dir] = glob.glob(os.path.join(base, "*"))
    assert op_check.unsupported_ops(version_dir) == []
    texts = [t for t, _ in _eval_rows(work)[:8]]
    local = tf.saved_model.load(version_dir).signatures["serving_default"](text=tf.constant(texts))
    with DevServer("sentiment-student", base) as server, ServingClient(server.target) as client:
        client.wait_until_available("sentiment-student")
        remote = client.predict("sentiment-student", {"text": np.array(texts, dtype=object)})
    np.testing.assert_allclose(remote["probabilities"], local["probabilities"].numpy(), atol=1e-5)


def test_pair_classification_on_glue_layout_learns_and_reports_glue_metrics(demo_run, finetuned):
    """The pair task on the embedded MRPC-layout data: learns beyond the majority class; TFMA's
    accuracy, macro F1 and MCC equal scikit-learn's on the exported model's predictions; the
    evaluation is sliced by the derived length and unknown-rate buckets."""
    import tensorflow_model_analysis as tfma
    from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

    from tfx_bert.serving import op_check

    work = finetuned.work("pair_classification")
    version_dir = _latest(os.path.join(work, "serving", "pair_classification", "*"))
    assert op_check.unsupported_ops(version_dir) == []
    with open(os.path.join(work, "data", "pairs", "dev.tsv")) as f:
        rows = [line.rstrip("\n").split("\t") for line in f][1:]
    labels = np.array([int(r[0]) for r in rows])
    signature = tf.saved_model.load(version_dir).signatures["serving_default"]
    assert set(signature.structured_input_signature[1]) == {"text", "text_b"}
    predicted = signature(text=tf.constant([r[3] for r in rows]), text_b=tf.constant([r[4] for r in rows]))["class_ids"].numpy()
    from tfx_bert import cli
    from tfx_bert.cli import DevServer

    with DevServer("pair_classification", os.path.dirname(version_dir)) as server:  # the client sends both texts
        out = subprocess.run([sys.executable, "-m", "tfx_bert.cli", "predict", "--target", server.target,
                              "--model-name", "pair_classification", "--task", "pair_classification", rows[0][3], rows[1][3],
                              "--text-b", rows[0][4], "--text-b", rows[1][4]], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr[-2000:]
    assert [json.loads(line)["class_id"] for line in out.stdout.splitlines()] == list(predicted[:2])
    assert cli.main(["predict", "--task", "pair_classification", "only one text"]) == 2  # no --text-b: a clear error
    majority = max(labels.mean(), 1 - labels.mean())
    assert accuracy_score(labels, predicted) > majority + 0.15, (accuracy_score(labels, predicted), majority)

    evaluation = _latest(os.path.join(work, "pipelines", "tfx-bert-pair_classification", "Evaluator", "evaluation", "*"))
    metrics, sliced = {}, {}
    for record in tfma.load_metrics(evaluation):
        keys = tuple((k.column, k.bytes_value.decode()) for k in record.slice_key.single_slice_keys)
        for kv in record.metric_keys_and_values:
            if kv.value.HasField("double_value") and kv.key.model_name in ("", "candidate") and not kv.key.is_diff:
                class_id = kv.key.sub_key.class_id.value if kv.key.sub_key.HasField("class_id") else None
                (sliced.setdefault(keys, {}) if keys else metrics)[(kv.key.name, class_id)] = kv.value.double_value.value
    # finetune.slices: length_bucket and unknown_rate_bucket, computed by the served model's
    # transformed_features signature; each partitions the eval split, the summary names the worst.
    from tfx_bert_app.models import slices

    for key in ("length_bucket", "unknown_rate_bucket"):
        values = {k[0][1]: m for k, m in sliced.items() if k[0][0] == key}
        assert values and sum(m[("example_count", None)] for m in values.values()) == len(rows), (key, list(values))
    assert set(v for (k, v), in sliced if k == "length_bucket") <= set(slices.length_names(64))
    assert "Evaluator: worst slice " in finetuned.output("pair_classification")
    assert metrics[("sparse_categorical_accuracy", None)] == pytest.approx(accuracy_score(labels, predicted), abs=1e-6)
    assert metrics[("macro_f1", None)] == pytest.approx(f1_score(labels, predicted, average="macro"), abs=1e-4)
    assert metrics[("matthews_correlation_coefficient", 1)] == pytest.approx(matthews_corrcoef(labels, predicted), abs=1e-4)
    for name in ("precision", "recall", "f1_score"):
        assert {(name, 0), (name, 1)} <= set(metrics), name



def _conll_sentences(path):
    sentences, current = [], []
    for line in open(path, encoding="utf-8"):
        columns = line.split()
        if not columns or columns[0] == "-DOCSTART-":
            if current:
                sentences.append(current)
            current = []
            continue
        current.append((columns[0], columns[-1]))
    return sentences + ([current] if current else [])


def test_ner_learns_from_context_and_serves_character_spans(demo_run, finetuned):
    """NER on the embedded CoNLL-layout data (IOB1 tags). Thresholds from the data: a quarter of
    the names occur only in the eval split, so a lexicon of training names (the baseline) finds
    none of them; the model must. TFMA's entity F1 equals the F1 of what the served signature
    returns; every returned span is the text it names. The tagger is the CRF one: its Viterbi
    decoding is in the served graph, and its distilled student learns from its emissions."""
    import tensorflow_model_analysis as tfma

    from tfx_bert import demo_data, tagging
    from tfx_bert.serving import op_check

    work = finetuned.work("ner")
    version_dir = _latest(os.path.join(work, "serving", "ner", "*"))  # blessed and pushed
    assert op_check.unsupported_ops(version_dir) == []
    sentences = _conll_sentences(os.path.join(work, "data", "ner", "dev.txt"))
    texts = [" ".join(w for w, _ in s) for s in sentences]
    out = tf.saved_model.load(version_dir).signatures["serving_default"](text=tf.constant(texts))
    predicted = [[t.decode() or "O" for t in row[:len(s)]] for row, s in zip(out["word_tags"].numpy(), sentences)]
    true = [tagging.to_iob2([t for _, t in s], "iob1") for s in sentences]
    scores = tagging.entity_scores(true, predicted)

    evaluation = _latest(os.path.join(work, "pipelines", "tfx-bert-ner", "Evaluator", "evaluation", "*"))
    tfma_f1 = [kv.value.double_value.value for r in tfma.load_metrics(evaluation)
               for kv in r.metric_keys_and_values if kv.key.name == "entity_f1"]
    assert tfma_f1 == [pytest.approx(scores["f1"], abs=1e-6)]
    assert scores["f1"] > 0.4, scores

    unseen = {name for pool in (demo_data.PERSONS, demo_data.LOCATIONS, demo_data.ORGANIZATIONS)
              for name in demo_data._held_out(pool)[1]}
    found = total = 0
    for sentence, true_tags, predicted_tags in zip(sentences, true, predicted):
        predicted_spans = set(tagging.entities(predicted_tags))
        for span in tagging.entities(true_tags):
            if " ".join(w for w, _ in sentence[span[1]:span[2] + 1]) in unseen:
                total += 1
                found += span in predicted_spans
    assert total > 50 and found / total > 0.15, (found, total)  # the lexicon baseline finds 0

    for i, text in enumerate(texts):
        for start, end, entity_text in zip(out["entity_starts"][i].numpy(), out["entity_ends"][i].numpy(),
                                           out["entity_texts"][i].numpy()):
            if start >= 0:
                assert text[start:end] == entity_text.decode()

    models = sorted(glob.glob(os.path.join(work, "pipelines", "tfx-bert-ner", "Trainer", "model", "*", "Format-Serving")),
                    key=lambda p: int(p.split(os.sep)[-2]))
    assert len(models) == 1 and op_check.unsupported_ops(models[-1]) == []  # Viterbi in-graph, servable
    text = "Anna flew to Paris on monday ."
    crf_out = tf.saved_model.load(models[-1]).signatures["serving_default"](text=tf.constant([text]))
    assert [t.decode() for t in crf_out["words"][0].numpy()] == text.split()
    from tfx_bert.cli import DevServer
    from tfx_bert.serving.client import ServingClient

    with DevServer("ner", os.path.join(work, "serving", "ner")) as server, ServingClient(server.target) as client:
        client.wait_until_available("ner")
        [served] = client.extract_entities("ner", [texts[0]])
    _check_student(work, "ner", "entity_f1", (2, 1))  # the CRF tagger's student: its emissions distilled
    # MLMD marks the student's Model (and only it), and its blessing is a StudentBlessing: the
    # ModelBlessings a later run's baseline resolver reads are the teachers' alone.
    roles = _model_roles(work)
    assert {role for uri, role in roles.items() if "/StudentTrainer/" in uri} == {"student"}
    assert {role for uri, role in roles.items() if "/Trainer/" in uri} == {""}
    store = _metadata_store(work)

    def blessed_models(type_name):
        return [a.custom_properties["current_model"].string_value for a in store.get_artifacts_by_type(type_name)]

    assert len(blessed_models("ModelBlessing")) == 1 and all("/Trainer/" in uri for uri in blessed_models("ModelBlessing"))
    assert ["/StudentTrainer/" in uri for uri in blessed_models("tfx_bert.StudentBlessing")] == [True]
    assert "[distill] transfer text: 1 file(s) matching" in finetuned.output("ner")  # words of corpus lines
    [student] = glob.glob(os.path.join(work, "pipelines", "tfx-bert-ner", "StudentTrainer", "model", "*", "Format-Serving"))
    assert op_check.unsupported_ops(student) == []
    student_out = tf.saved_model.load(student).signatures["serving_default"](text=tf.constant([text]))
    assert [t.decode() for t in student_out["words"][0].numpy()] == text.split()
    assert [(e["start"], e["end"], e["text"]) for e in served["entities"]] == [
        (int(s), int(e), x.decode()) for s, e, x in zip(out["entity_starts"][0].numpy(), out["entity_ends"][0].numpy(),
                                                        out["entity_texts"][0].numpy()) if s >= 0]
    unicode_text = "Zoë met Chen Li in Kyoto."
    unicode_out = tf.saved_model.load(version_dir).signatures["serving_default"](text=tf.constant([unicode_text]))
    for start, end, entity_text in zip(unicode_out["entity_starts"][0].numpy(), unicode_out["entity_ends"][0].numpy(),
                                       unicode_out["entity_texts"][0].numpy()):
        if start >= 0:
            assert unicode_text[start:end] == entity_text.decode()  # character, not byte, offsets


def test_qa_learns_answers_across_windows_and_serves_character_spans(demo_run, finetuned):
    """Extractive QA on the embedded SQuAD 2.0-layout data. Thresholds from the data: F1 above
    what picking a random noun phrase of the context scores (the model must learn where answers
    are) and above always answering nothing. TFMA's SQuAD F1 equals the official metric on what
    the served signature returns; answers past the first window are found; every answer is the
    context text at its character span; gRPC and the CLI return the same."""
    import re
    import statistics

    import tensorflow_model_analysis as tfma

    from tfx_bert import squad
    from tfx_bert.cli import DevServer
    from tfx_bert.serving import op_check
    from tfx_bert.serving.client import ServingClient
    from tfx_bert_app.models import encoder, qa_spans

    work, output = finetuned.work("qa"), finetuned.output("qa")
    assert "no_answer_threshold=" in output  # tuned on the eval split and reported
    [version_dir] = glob.glob(os.path.join(work, "serving", "qa", "*"))  # blessed and pushed
    assert op_check.unsupported_ops(version_dir) == []

    questions = squad.read_squad(os.path.join(work, "data", "qa", "dev.json"))
    out = tf.saved_model.load(version_dir).signatures["serving_default"](
        question=tf.constant([q.question for q in questions]), context=tf.constant([q.context for q in questions]))
    predicted = {q.id: out["answer_text"][i].numpy().decode() for i, q in enumerate(questions)}
    gold = {q.id: [a for a, _ in q.answers] for q in questions}
    scores = squad.evaluate(predicted, gold)
    for i, q in enumerate(questions):
        start, end = int(out["answer_start"][i]), int(out["answer_end"][i])
        assert (q.context[start:end] if start >= 0 else "") == predicted[q.id]

    [evaluation] = glob.glob(os.path.join(work, "pipelines", "tfx-bert-qa", "Evaluator", "evaluation", "*"))
    tfma_scores = {kv.key.name: kv.value.double_value.value for r in tfma.load_metrics(evaluation)
                   for kv in r.metric_keys_and_values
                   if kv.key.model_name in ("", "candidate") and not kv.key.is_diff}
    assert tfma_scores["squad_f1"] == pytest.approx(scores["f1"], abs=1e-6)
    assert tfma_scores["squad_exact_match"] == pytest.approx(scores["exact_match"], abs=1e-6)

    # The distilled student (the teacher's start and end distributions; its own no-answer
    # threshold): gated on 97% of the teacher's F1, servable, answering spans of the context.
    _check_student(work, "qa", "squad_f1", (2, 1))
    [student] = glob.glob(os.path.join(work, "pipelines", "tfx-bert-qa", "StudentTrainer", "model", "*", "Format-Serving"))
    assert op_check.unsupported_ops(student) == []
    student_out = tf.saved_model.load(student).signatures["serving_default"](
        question=tf.constant([q.question for q in questions[:16]]), context=tf.constant([q.context for q in questions[:16]]))
    for i, q in enumerate(questions[:16]):
        start, end = int(student_out["answer_start"][i]), int(student_out["answer_end"][i])
        assert (q.context[start:end] if start >= 0 else "") == student_out["answer_text"][i].numpy().decode()

    def random_phrase_f1(q):  # the expected F1 of answering a random "the/a <word> <word>" of the context
        phrases = re.findall(r"\b(?:the|a) ([a-z]+ [a-z]+)\b", q.context)
        return statistics.mean(squad.score(p, gold[q.id])[1] for p in phrases)

    baseline = 100 * statistics.mean(random_phrase_f1(q) for q in questions)
    always_empty = 100 * statistics.mean(not q.answers for q in questions)
    assert scores["f1"] > max(baseline, always_empty) + 8, (scores, baseline, always_empty)

    # Answers that start past the first window's context are found there.
    tokenizer = encoder.load_tokenizer(demo_encoder(demo_run[0]))
    windows = qa_spans.make_windows(tokenizer, tf.constant([q.question for q in questions]),
                                    tf.constant([q.context for q in questions]), 64, 24, 16)  # the config defaults
    first_window_end = {}
    for row, example in enumerate(windows["example_index"].numpy()):
        first_window_end.setdefault(int(example), int(windows["char_ends"][row].numpy().max()))
    late = [i for i, q in enumerate(questions) if q.answers and q.answers[0][1] >= first_window_end[i]]
    late_right = sum(squad.score(predicted[questions[i].id], gold[questions[i].id])[0] for i in late)
    assert len(late) > 20 and late_right >= 3, (len(late), late_right)

    q = questions[0]
    with DevServer("qa", os.path.join(work, "serving", "qa")) as server, ServingClient(server.target) as client:
        client.wait_until_available("qa")
        [served] = client.answer_questions("qa", [q.question], [q.context])
        cli = subprocess.run([sys.executable, "-m", "tfx_bert.cli", "predict", "--task", "qa", "--model-name", "qa",
                              "--target", server.target, "--context", q.context, q.question],
                             capture_output=True, text=True, cwd=REPO, timeout=120)
    assert served["answer"] == predicted[q.id] and served["start"] == int(out["answer_start"][0])
    assert [n["text"] for n in served["nbest"]] == [t.decode() for t in out["nbest_texts"][0].numpy() if t]
    assert cli.returncode == 0, cli.stderr[-2000:]
    assert json.loads(cli.stdout.strip().splitlines()[-1])["answer"] == served["answer"]


def test_similarity_learns_beyond_the_pretrained_encoder_and_serves_embeddings(demo_run, finetuned):
    """Sentence similarity (cosine objective) on the embedded STS-B-layout data. Threshold from
    the data: the fine-tuned Spearman correlation beats the same pretrained encoder's zero-shot
    mean-pooled cosine on the eval pairs. TFMA's Spearman and Pearson equal scipy's on what the
    served signature returns; embeddings from the ``embed`` signature give the same cosine;
    gRPC and the CLI serve both."""
    import tensorflow_model_analysis as tfma
    from scipy import stats

    from tfx_bert.cli import DevServer
    from tfx_bert.serving import op_check
    from tfx_bert.serving.client import ServingClient
    from tfx_bert_app.models import encoder, similarity

    work = finetuned.work("similarity")
    version_dir = max(glob.glob(os.path.join(work, "serving", "similarity", "*")),
                      key=lambda path: int(os.path.basename(path)))  # blessed and pushed
    assert op_check.unsupported_ops(version_dir) == []

    with open(os.path.join(work, "data", "sts", "dev.tsv")) as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    a, b = [r["sentence1"] for r in rows], [r["sentence2"] for r in rows]
    gold = np.array([float(r["score"]) for r in rows])
    served = tf.saved_model.load(version_dir)
    cosine = served.signatures["serving_default"](text=tf.constant(a), text_b=tf.constant(b))["similarity"].numpy()
    spearman = stats.spearmanr(gold, cosine).statistic

    evaluation = max(glob.glob(os.path.join(work, "pipelines", "tfx-bert-similarity", "Evaluator", "evaluation", "*")),
                     key=lambda path: int(os.path.basename(path)))  # the newest
    tfma_scores = {kv.key.name: kv.value.double_value.value for r in tfma.load_metrics(evaluation)
                   for kv in r.metric_keys_and_values
                   if kv.key.model_name in ("", "candidate") and not kv.key.is_diff}
    # TFMA runs the model over other batches: cosines differ in the last float bits, which can swap
    # near-tied ranks, so Spearman agrees to 1e-3 and Pearson to 1e-5, not exactly.
    assert tfma_scores["spearman"] == pytest.approx(spearman, abs=1e-3)
    assert tfma_scores["pearson"] == pytest.approx(stats.pearsonr(gold, cosine).statistic, abs=1e-5)

    pretrained = demo_encoder(demo_run[0])
    tokenizer = encoder.load_tokenizer(pretrained)
    zero_shot = keras_layers.build_sentence_encoder(encoder.load_backbone(pretrained), "mean")

    def embed(texts):
        return tf.math.l2_normalize(zero_shot(dict(tokenizer.encode(tf.constant(texts), 64)), training=False), -1).numpy()

    baseline = stats.spearmanr(gold, (embed(a) * embed(b)).sum(1)).statistic
    assert spearman > max(baseline, 0.0) + 0.1 and spearman > 0.5, (spearman, baseline)

    embeddings = served.signatures["embed"](text=tf.constant(a[:8] + b[:8]))["embedding"].numpy()
    np.testing.assert_allclose((embeddings[:8] * embeddings[8:]).sum(1), cosine[:8], rtol=1e-4, atol=1e-5)

    # The distilled student (the teacher's cosine scores, MSE): gated on 97% of its Spearman;
    # its one-layer tower serves ``embed`` and the pair signature alike.
    _check_student(work, "similarity", "spearman", (2, 1))
    [student_dir] = glob.glob(os.path.join(work, "pipelines", "tfx-bert-similarity", "StudentTrainer", "model", "*",
                                           "Format-Serving"))
    assert op_check.unsupported_ops(student_dir) == []
    student = tf.saved_model.load(student_dir)
    student_cosine = student.signatures["serving_default"](text=tf.constant(a[:8]), text_b=tf.constant(b[:8]))["similarity"]
    student_vectors = student.signatures["embed"](text=tf.constant(a[:8] + b[:8]))["embedding"].numpy()
    np.testing.assert_allclose((student_vectors[:8] * student_vectors[8:]).sum(1), student_cosine.numpy(),
                               rtol=1e-4, atol=1e-5)
    with DevServer("similarity", os.path.join(work, "serving", "similarity")) as server, \
            ServingClient(server.target) as client:
        client.wait_until_available("similarity")
        pairs = client.similarity("similarity", a[:3], b[:3])
        vectors = client.embed("similarity", a[:2])
        cli = subprocess.run([sys.executable, "-m", "tfx_bert.cli", "predict", "--task", "similarity", "--model-name",
                              "similarity", "--target", server.target, a[0], "--text-b", b[0]],
                             capture_output=True, text=True, cwd=REPO, timeout=120)
    assert [p["similarity"] for p in pairs] == pytest.approx(cosine[:3].tolist(), abs=1e-5)
    np.testing.assert_allclose(vectors, embeddings[:2], rtol=1e-4, atol=1e-5)
    assert cli.returncode == 0, cli.stderr[-2000:]
    assert json.loads(cli.stdout.strip().splitlines()[-1])["similarity"] == pytest.approx(cosine[0], abs=1e-5)


def _check_student(work, task, metric, layers):
    """A distillation branch ran in ``work``: the report's layers and feed-forward widths (the
    demo's student keeps half, ``distill.ffn_keep``), and the StudentEvaluator's
    blessing says exactly whether the student kept 97% of the teacher's ``metric`` (TFMA, the
    teacher as baseline). Returns (the student's metric, the teacher's, blessed)."""
    import tensorflow_model_analysis as tfma

    pipeline = os.path.join(work, "pipelines", f"tfx-bert-{task}")
    [report] = glob.glob(os.path.join(pipeline, "StudentTrainer", "model_run", "*", "distillation_report.json"))
    report = json.load(open(report))
    assert (report["teacher"]["layers"], report["student"]["layers"]) == layers
    assert report["student"]["feed_forward"] * 2 == report["teacher"]["feed_forward"] == 512
    assert report["student"]["parameters"] < report["teacher"]["parameters"]
    [evaluation] = glob.glob(os.path.join(pipeline, "StudentEvaluator", "evaluation", "*"))
    values = {kv.key.model_name: kv.value.double_value.value for r in tfma.load_metrics(evaluation)
              for kv in r.metric_keys_and_values if kv.key.name == metric and not kv.key.is_diff}
    blessed = tfma.load_validation_result(evaluation).validation_ok
    assert blessed == (values["candidate"] >= 0.97 * values["baseline"] - 1e-9), values
    return values["candidate"], values["baseline"], blessed


def _assert_read_by_pipeline(work, artifact_uri, pipeline):
    """MLMD of ``work`` holds one artifact at ``artifact_uri`` (an Importer of it reused the
    existing one), and an execution of ``pipeline`` read it: the lineage is recorded."""
    from ml_metadata.proto import metadata_store_pb2

    store = _metadata_store(work)
    [artifact] = store.get_artifacts_by_uri(artifact_uri)
    readers = {e.execution_id for e in store.get_events_by_artifact_ids([artifact.id])
               if e.type == metadata_store_pb2.Event.INPUT}
    context = store.get_context_by_type_and_name("pipeline", pipeline)
    assert readers & {e.id for e in store.get_executions_by_context(context.id)}, (artifact_uri, pipeline)


def _model_roles(work) -> dict:
    """uri -> ``model_role`` custom property ("" when unset) of every Model artifact in ``work``'s MLMD."""
    return {a.uri: a.custom_properties["model_role"].string_value if "model_role" in a.custom_properties else ""
            for a in _metadata_store(work).get_artifacts_by_type("Model")}


def _metadata_store(work):
    """The MLMD store of the runs under ``work``."""
    from ml_metadata.metadata_store import metadata_store

    from tfx_bert import config as config_lib
    from tfx_bert_app.pipeline import common

    return metadata_store.MetadataStore(common.metadata_config(config_lib.load_config(overrides=[f"work_dir={work}"])))


def _latest(pattern, first=False):
    """The newest (``first``: the oldest) of the numbered dirs ``pattern`` matches."""
    return (min if first else max)(glob.glob(pattern), key=lambda path: int(os.path.basename(path)))


def _check_retrieval_student(work, data, ids, qids, teacher_metrics):
    """The dual encoder's distilled student (its teacher's in-batch score matrix, KL): one of the
    teacher's two layers; the StudentEvaluator's retrieval over the whole corpus, the teacher as
    baseline, equals a direct computation with the student's served signatures, and it blessed
    exactly when the student kept 97% of the teacher's nDCG@10; a blessed student is pushed under
    its own name and serves ``embed``."""
    from tfx_bert import retrieval_metrics

    pipeline = os.path.join(work, "pipelines", "tfx-bert-retrieval")
    [report] = glob.glob(os.path.join(pipeline, "StudentTrainer", "model_run", "*", "distillation_report.json"))
    report = json.load(open(report))
    assert (report["teacher"]["layers"], report["student"]["layers"]) == (2, 1)
    [student_dir] = glob.glob(os.path.join(pipeline, "StudentTrainer", "model", "*", "Format-Serving"))
    served = tf.saved_model.load(student_dir)
    doc_vectors = served.signatures["embed"](text=tf.constant([data.corpus[d] for d in ids]))["embedding"].numpy()
    query_vectors = served.signatures["embed_query"](text=tf.constant([data.queries[q] for q in qids]))["embedding"]
    student = retrieval_metrics.evaluate(_rank_all(query_vectors.numpy(), doc_vectors, ids, qids), data.qrels)
    [evaluation] = glob.glob(os.path.join(pipeline, "StudentEvaluator", "evaluation", "*", "metrics.json"))
    gate = json.load(open(evaluation))
    assert gate["candidate"] == pytest.approx(student, abs=1e-3)
    assert gate["baseline"] == pytest.approx(teacher_metrics, abs=1e-3)  # the teacher, the run's own model
    assert gate["blessed"] == (student["ndcg@10"] >= 0.97 * teacher_metrics["ndcg@10"] - 1e-3), gate
    pushed = glob.glob(os.path.join(work, "serving", "retrieval-student", "*"))
    assert bool(pushed) == gate["blessed"]
    print(f"retrieval student: {student['ndcg@10']:.3f} against the teacher's {teacher_metrics['ndcg@10']:.3f} "
          f"(blessed: {gate['blessed']})")


def _rank_all(query_vectors, doc_vectors, ids, qids):
    from tfx_bert_app.components.retrieval_evaluator.executor import exact_top_k

    return dict(zip(qids, exact_top_k(query_vectors, doc_vectors, ids, 100)))


def test_retrieval_and_rerank_learn_index_and_serve_retrieve_then_rerank(demo_run, finetuned):
    """Dense retrieval, then re-ranking, on the embedded BEIR-layout data (600 documents of two
    facts; each dev query asks for a fact no train query asked for). Thresholds from the data: the dual encoder's
    Recall@10 is at least 10x random (10 / 600) and its nDCG@10 beats the pretrained encoder's
    zero-shot mean pooling; the RetrievalEvaluator's metrics equal a direct computation; the
    blessed model's corpus is in the vector store; it reports BM25 (equal to a direct computation)
    and the hybrid. The cross-encoder's MRR@10 over its candidate lists beats a random order's,
    and re-ranking the dual encoder's top 20 beats its own order by 0.05 MRR@10 on the dev
    queries; retrieve-then-rerank over gRPC (two servers, hybrid candidates) returns what the in-process
    path returns, re-ordered top-20 candidates by their cross-encoder scores. The re-ranker's
    distilled student is gated on keeping 97% of its MRR@10 and scores pairs like it; so is the
    dual encoder's, on nDCG@10 over the corpus."""
    import tensorflow_model_analysis as tfma

    from tfx_bert import beir, retrieval_metrics
    from tfx_bert.cli import DevServer
    from tfx_bert.lexical import BM25Index
    from tfx_bert.retrieval import HybridRetriever, Retriever, RetrieveThenRerank
    from tfx_bert.serving import op_check
    from tfx_bert.vector_store import VectorStore
    from tfx_bert_app.models import encoder, similarity

    work, rerank_work = finetuned.work("retrieval"), finetuned.work("rerank")
    with open(os.path.join(rerank_work, "pipelines", "tfx-bert-rerank", "effective_config.yaml")) as f:
        num_negatives = yaml.safe_load(f)["finetune"]["num_negatives"]  # what the run used
    dual_dir = _latest(os.path.join(work, "serving", "retrieval", "*"))
    cross_dir = _latest(os.path.join(rerank_work, "serving", "rerank", "*"))
    assert op_check.unsupported_ops(dual_dir) == [] and op_check.unsupported_ops(cross_dir) == []

    data = beir.read_beir(os.path.join(work, "data", "retrieval"), "dev")
    ids, qids = sorted(data.corpus), sorted(data.qrels)
    docs, queries = [data.corpus[d] for d in ids], [data.queries[q] for q in qids]
    served = tf.saved_model.load(dual_dir)
    doc_vectors = served.signatures["embed"](text=tf.constant(docs))["embedding"].numpy()
    query_vectors = served.signatures["embed_query"](text=tf.constant(queries))["embedding"].numpy()
    fine_tuned = retrieval_metrics.evaluate(_rank_all(query_vectors, doc_vectors, ids, qids), data.qrels)

    report = json.load(open(os.path.join(_latest(os.path.join(
        work, "pipelines", "tfx-bert-retrieval", "Evaluator", "evaluation", "*")), "metrics.json")))
    assert report["blessed"] and report["documents"] == len(ids) and report["queries"] == len(qids)
    assert report["candidate"] == pytest.approx(fine_tuned, abs=1e-3)
    lexical = BM25Index.build(data.corpus)
    bm25 = retrieval_metrics.evaluate({q: dict(h) for q, h in zip(qids, lexical.search(queries, 100))}, data.qrels)
    assert report["bm25"] == pytest.approx(bm25, abs=1e-6) and set(report["hybrid"]) == set(bm25)
    print(f"retrieval: BM25 {report['bm25']}, hybrid {report['hybrid']}")

    pretrained = demo_encoder(demo_run[0])
    tokenizer = encoder.load_tokenizer(pretrained)
    zero_shot = keras_layers.build_sentence_encoder(encoder.load_backbone(pretrained), "mean")

    def embed(texts, length):
        return tf.math.l2_normalize(zero_shot(dict(tokenizer.encode(tf.constant(texts), length)), training=False), -1).numpy()

    baseline = retrieval_metrics.evaluate(_rank_all(embed(queries, 16), embed(docs, 64), ids, qids), data.qrels)
    print(f"retrieval: fine-tuned {fine_tuned}, zero-shot {baseline}")
    assert fine_tuned["recall@10"] >= 10 * (10 / len(ids)), fine_tuned
    assert fine_tuned["ndcg@10"] > baseline["ndcg@10"] + 0.1, (fine_tuned, baseline)
    _check_retrieval_student(work, data, ids, qids, fine_tuned)

    store = VectorStore(os.path.join(work, "vectors", "milvus.db"), "retrieval")
    assert store.count() == len(ids) and store.completed()["count"] == len(ids)
    retriever = Retriever.from_saved_model(dual_dir, store)
    retrieved = retriever.retrieve(queries, 20)
    from_store = retrieval_metrics.evaluate({q: dict(h) for q, h in zip(qids, retrieved)}, data.qrels, recall_ks=(10,))
    assert from_store["recall@10"] == pytest.approx(fine_tuned["recall@10"], abs=0.02)

    evaluation = _latest(os.path.join(rerank_work, "pipelines", "tfx-bert-rerank", "Evaluator", "evaluation", "*"))
    tfma_scores = {kv.key.name: kv.value.double_value.value for r in tfma.load_metrics(evaluation)
                   for kv in r.metric_keys_and_values if kv.key.model_name in ("", "candidate") and not kv.key.is_diff}
    candidates = 1 + num_negatives  # the relevant passage and its negatives
    random_mrr = sum(1 / r for r in range(1, candidates + 1)) / candidates
    assert tfma_scores["mrr@10"] > random_mrr + 0.1, tfma_scores

    # The distilled student (the teacher's score margins, Margin-MSE): the gate's verdict is TFMA's
    # retention of MRR@10; it scores query-passage pairs through the teacher's signature.
    _check_student(rerank_work, "rerank", "mrr@10", (2, 1))
    [student_dir] = glob.glob(os.path.join(rerank_work, "pipelines", "tfx-bert-rerank", "StudentTrainer", "model", "*",
                                            "Format-Serving"))
    assert op_check.unsupported_ops(student_dir) == []
    student_scores = RetrieveThenRerank.saved_model_scorer(student_dir)(queries[0], [data.corpus[d] for d, _ in retrieved[0]])
    assert student_scores.shape == (20,) and np.isfinite(student_scores).all()

    reranker = RetrieveThenRerank(retriever, RetrieveThenRerank.saved_model_scorer(cross_dir), data.corpus, k=20)
    reranked = reranker.search(queries, top_n=10)
    reranked_metrics = retrieval_metrics.evaluate({q: dict(h) for q, h in zip(qids, reranked)}, data.qrels,
                                                  recall_ks=(10,))
    # A random order of each top-20 list: the relevant document (when retrieved) at any rank alike.
    found = [any(doc in data.qrels[q] for doc, _ in hits) for q, hits in zip(qids, retrieved)]
    random_order_mrr = np.mean(found) * sum(1 / r for r in range(1, 11)) / 20
    print(f"retrieve-then-rerank: {reranked_metrics}; retrieval alone {from_store}; random order MRR@10 "
          f"{random_order_mrr:.3f}")
    # Retrieve-then-rerank earns its second stage: the cross-encoder (with the exact-match cue,
    # finetune.exact_match) re-orders the dual encoder's top 20 at least 0.05 MRR@10 above the
    # dual encoder's own order (issue 18's target; README, "Dense retrieval, the vector store and
    # re-ranking"). Without the cue the demo's tiny cross-encoder did not learn within its
    # budget to match a name, a noun and an object across query and passage, and re-ranking
    # lowered MRR@10.
    assert reranked_metrics["mrr@10"] >= from_store["mrr@10"] + 0.05, (reranked_metrics, from_store)
    # Re-ranking keeps the retrieved candidates and orders them by the cross-encoder's scores.
    for hits, retrieved_hits in zip(reranked, retrieved):
        assert {doc for doc, _ in hits} <= {doc for doc, _ in retrieved_hits} and len(hits) == 10
        assert [s for _, s in hits] == sorted((s for _, s in hits), reverse=True)
    # The CLI re-ranks the hybrid (dense + BM25) candidates: in process, the same.
    hybrid = RetrieveThenRerank(HybridRetriever(retriever, lexical), reranker.score, data.corpus, k=20)
    expected_cli = hybrid.search(queries[:2], top_n=10)

    store.close()
    with DevServer("retrieval", os.path.join(work, "serving", "retrieval")) as dual_server, \
            DevServer("rerank", os.path.join(rerank_work, "serving", "rerank")) as cross_server:
        cli = subprocess.run(
            [sys.executable, "-m", "tfx_bert.cli", "retrieve", queries[0], queries[1], "--mode", "hybrid", "--store-uri",
             os.path.join(work, "vectors", "milvus.db"), "--collection", "retrieval", "--target", dual_server.target,
             "--model-name", "retrieval", "--rerank-target", cross_server.target, "--rerank-model-name", "rerank",
             "--corpus", os.path.join(work, "data", "retrieval", "corpus.jsonl"), "--candidates", "20"],
            capture_output=True, text=True, cwd=REPO, timeout=300)
    assert cli.returncode == 0, cli.stderr[-2000:]
    for line, expected in zip(cli.stdout.strip().splitlines()[-2:], expected_cli):
        hits = json.loads(line)["hits"]
        assert [h["id"] for h in hits] == [doc for doc, _ in expected]
        assert [h["score"] for h in hits] == pytest.approx([s for _, s in expected], abs=1e-4)


def test_multilabel_trains_is_blessed_pushed_and_answers_predict_over_grpc(finetuned, capsys):
    """The multi-label task on the embedded topic data, its thresholds tuned on the validation
    split: TFMA's micro / macro F1 and subset accuracy equal scikit-learn's on the pushed model's
    decisions (at those thresholds), it beats the best constant
    label set, and `tfx-bert predict --task multilabel` answers over gRPC with label names, from
    the teacher and from its distilled student."""
    import tensorflow_model_analysis as tfma
    from sklearn.metrics import accuracy_score, f1_score

    from tfx_bert import cli
    from tfx_bert.cli import DevServer
    from tfx_bert.serving import op_check

    work = finetuned.work("multilabel")
    assert glob.glob(os.path.join(work, "pipelines", "tfx-bert-multilabel", "Evaluator", "blessing", "*", "BLESSED"))
    [version_dir] = glob.glob(os.path.join(work, "serving", "multilabel", "*"))
    assert op_check.unsupported_ops(version_dir) == []

    names = ["garden", "kitchen", "music", "sea", "space", "sports"]
    with open(os.path.join(work, "data", "multilabel", "eval", "data.csv")) as f:
        rows = list(csv.DictReader(f))
    truth = np.array([[int(n in r["labels"].split("|")) for n in names] for r in rows])
    outputs = tf.saved_model.load(version_dir).signatures["serving_default"](text=tf.constant([r["text"] for r in rows]))
    predicted = outputs["predicted"].numpy()
    # The thresholds tuned on the validation split (finetune.label_thresholds=tuned) are the graph's.
    [run_dir] = glob.glob(os.path.join(work, "pipelines", "tfx-bert-multilabel", "Trainer", "model_run", "*"))
    tuned = json.load(open(os.path.join(run_dir, "train_metrics.json")))["decision_thresholds"]
    assert list(tuned) == names and all(0 < t < 1 for t in tuned.values()), tuned
    assert (predicted == (outputs["probabilities"].numpy() >= np.array([tuned[n] for n in names]))).all()
    micro = f1_score(truth, predicted, average="micro", zero_division=0)
    constant = np.tile((truth.mean(axis=0) >= truth.mean(axis=0).max()).astype(int), (len(truth), 1))
    assert micro > f1_score(truth, constant, average="micro", zero_division=0) + 0.3, micro

    [evaluation] = glob.glob(os.path.join(work, "pipelines", "tfx-bert-multilabel", "Evaluator", "evaluation", "*"))
    metrics = {kv.key.name: kv.value.double_value.value for record in tfma.load_metrics(evaluation)
               for kv in record.metric_keys_and_values if kv.value.HasField("double_value")}
    assert metrics["micro_f1"] == pytest.approx(micro, abs=1e-6)
    assert metrics["macro_f1"] == pytest.approx(f1_score(truth, predicted, average="macro", zero_division=0), abs=1e-6)
    assert metrics["subset_accuracy"] == pytest.approx(accuracy_score(truth, predicted), abs=1e-6)
    for name in names:
        assert {f"precision/{name}", f"recall/{name}", f"f1/{name}"} <= set(metrics)

    # The distilled student (sigmoid soft targets): kept 97% of the teacher's micro F1, pushed
    # under its own name, and `tfx-bert predict` answers from it as from the teacher.
    student_f1, teacher_f1, blessed = _check_student(work, "multilabel", "micro_f1", (2, 1))
    assert teacher_f1 == pytest.approx(micro, abs=1e-6) and blessed, (student_f1, teacher_f1)
    [student_dir] = glob.glob(os.path.join(work, "serving", "multilabel-student", "*"))
    assert op_check.unsupported_ops(student_dir) == []
    student_predicted = tf.saved_model.load(student_dir).signatures["serving_default"](
        text=tf.constant([r["text"] for r in rows[:2]]))["predicted"].numpy()

    # The follow-up run: a student of the same teacher given by URI (distill.teacher_uri), in a
    # pipeline that trains no teacher. The Importer reuses the teacher's MLMD artifact, so the
    # lineage runs from the first run's Trainer to this student; the gate compares it with the
    # same teacher on the same split.
    uri_pipeline = os.path.join(work, "pipelines", "tfx-bert-multilabel-uri")
    assert not os.path.exists(os.path.join(uri_pipeline, "Trainer"))
    _, uri_teacher_f1, uri_blessed = _check_student(work, "multilabel-uri", "micro_f1", (2, 1))
    assert uri_teacher_f1 == pytest.approx(micro, abs=1e-6)
    assert bool(glob.glob(os.path.join(work, "serving", "multilabel-uri-student", "*"))) == uri_blessed
    _assert_read_by_pipeline(work, os.path.dirname(teacher_model(work, "tfx-bert-multilabel")), "tfx-bert-multilabel-uri")
    # That student also learnt from unlabelled text (the pretraining corpus) the teacher labelled.
    assert "[distill] transfer text: 1 file(s) matching" in finetuned.output("multilabel", run=1)

    capsys.readouterr()
    for model_dir, expected in ((version_dir, predicted[:2]), (student_dir, student_predicted)):
        name = os.path.basename(os.path.dirname(model_dir))
        with DevServer(name, os.path.dirname(model_dir)) as server:
            assert cli.main(["predict", "--target", server.target, "--model-name", name, "--task", "multilabel",
                             rows[0]["text"], rows[1]["text"]]) == 0
        answers = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        for answer, row in zip(answers, expected):
            assert answer["labels"] == [n for n, p in zip(names, row) if p]
            assert len(answer["probabilities"]) == len(names)


def test_fine_tuning_from_published_checkpoints_pushes_and_serves(finetuned, references, capsys):
    """Continued pretraining from a Hugging Face BertForPreTraining (pretrain.init_from; the NLI
    run's first step: CheckpointImport, no vocabulary learned, 20 steps at a negligible learning
    rate), whose heads were carried over: fill-mask and NSP on the pretraining run's output still
    equal transformers' within 1e-4; then fine-tuning from that encoder (found in MLMD; its erf GELU
    kept), and from a keras-hub preset directory a user converted (the Importer's artifact is the
    directory itself, not <uri>/Format-Serving; the continuous-training loop's run): each run
    trains, is pushed and answers a served Predict with the checkpoint's own vocabulary."""
    from tfx_bert import cli
    from tfx_bert.serving import server
    from tfx_bert.serving.client import ServingClient

    hf_work = finetuned.work("nli")
    pretrained = finetuned.output("nli", run=0)
    assert "CheckpointImport" in pretrained and "WordPieceVocabGen" not in pretrained
    assert "[import] NSP head: from the checkpoint" in pretrained and "[train] continuing from" in pretrained
    [encoder] = glob.glob(os.path.join(hf_work, "pipelines", "tfx-bert-pretrain", "Trainer", "model", "*"))
    config = json.load(open(os.path.join(encoder, "Format-Serving", "config.json")))
    assert config["registered_name"] == "tfx_bert>BertEncoder" and config["config"]["hidden_act"] == "gelu"
    reference = references["hf_pretraining_gelu"]
    texts = [t for t, masks in zip(reference["mask_texts"], reference["mlm_probabilities"]) if len(masks) == 1]
    capsys.readouterr()
    assert cli.main(["fill-mask", "--model", encoder, "--json", "--top-k", "72", *texts]) == 0
    printed = json.loads(capsys.readouterr().out.splitlines()[-1])
    vocab = open(os.path.join(PUBLISHED, "hf_pretraining_gelu", "vocab.txt"), encoding="utf-8").read().split("\n")
    for candidates, probabilities in zip(printed, [m[0] for m in reference["mlm_probabilities"] if len(m) == 1]):
        by_token = {c["token"]: c["score"] for c in candidates}
        np.testing.assert_allclose([by_token[t] for t in vocab[:len(probabilities)]], probabilities, atol=1e-4)
    from tfx_bert_app.models import fill_mask

    np.testing.assert_allclose(fill_mask.MaskedLM(encoder).next_sentence([tuple(p) for p in references["pairs"]]),
                               reference["nsp_probabilities"], atol=1e-4)
    for name in ("nli", "loop"):
        work = finetuned.work(name)
        assert "[train]" in finetuned.output(name, run=1 if name == "nli" else 0)
        [base] = glob.glob(os.path.join(work, "serving", "*"))
        version = _latest(os.path.join(base, "*"))
        source = "hf_pretraining_gelu" if name == "nli" else "hf_cased_gelu_new_bin"
        vocab_size = len(open(os.path.join(PUBLISHED, source, "vocab.txt"), encoding="utf-8").read().split("\n")) - 1
        shapes = tf.train.load_checkpoint(os.path.join(version, "variables", "variables")).get_variable_to_shape_map()
        # The token embedding table has the checkpoint's vocabulary and width (the demo encoder is 128 wide).
        assert [vocab_size, 32] in shapes.values() and not any(shape[-1:] == [128] for shape in shapes.values())
        if name == "loop":  # the loop's own end: span 3's version answered its gRPC requests
            answers = finetuned.output(name).split("Predictions over gRPC")[1].splitlines()[1:5]
            assert all(line.split()[0] in ("positive", "negative") and " p=" in line for line in answers), answers
            continue
        texts = np.array(["the cat sat on the mat", "a bad movie"], dtype=object)
        inputs = {"text": texts, "text_b": texts[::-1]}
        running = server.start_server({"model": base}, port=0)
        try:
            with ServingClient(f"127.0.0.1:{running.port}") as client:
                outputs = client.predict("model", inputs)
        finally:
            running.stop()
        assert outputs and all(len(v) == 2 for v in outputs.values()), outputs
