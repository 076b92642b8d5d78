"""models/pretrained_heads.py: a published checkpoint's MLM and NSP heads carried over, checked
against what transformers computed on the committed BertForPreTraining fixture
(tests/fixtures/published/build_references.py), and the same weights written here as a
google-research TF1 checkpoint (its cls/predictions and cls/seq_relationship variables)."""
import json
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf
from safetensors.numpy import load_file, save_file

from tests.helpers import PUBLISHED
from tfx_bert_app.models import fill_mask, pretrained_heads, pretraining

FIXTURE = os.path.join(PUBLISHED, "hf_pretraining_gelu")
TOLERANCE = 1e-4


def _mlm_outputs(lm, texts, probabilities=True):
    """Per text, per [MASK]: the MLM head's probabilities (or logits) over the vocabulary."""
    inputs, counts = lm.encode(texts)
    logits = lm.model(inputs, training=False)[pretraining.MLM]
    values = (tf.nn.softmax(logits, axis=-1) if probabilities else logits).numpy()
    return [[values[i, m] for m in range(count)] for i, count in enumerate(counts)]


def _assert_heads_equal(lm, reference, pairs, texts=None):
    """Probabilities and logits (the GELU variants' probabilities differ by less than the
    tolerance on these weights, their logits by more: the test below shows it)."""
    texts = texts or reference["mask_texts"]
    for key, probabilities in (("mlm_probabilities", True), ("mlm_logits", False)):
        for ours, theirs in zip(_mlm_outputs(lm, texts, probabilities), reference[key]):
            assert len(ours) == len(theirs)
            for a, b in zip(ours, theirs):
                np.testing.assert_allclose(a, b, atol=TOLERANCE)
    np.testing.assert_allclose(lm.next_sentence([tuple(p) for p in pairs]), reference["nsp_probabilities"],
                               atol=TOLERANCE)


def test_hugging_face_heads_fill_masks_and_predict_next_sentences_as_transformers(references, capsys):
    from tfx_bert import cli

    reference = references["hf_pretraining_gelu"]
    lm = fill_mask.MaskedLM(FIXTURE)
    assert lm.heads["loaded"] == {"mlm": True, "nsp": True, "pooler": True}
    assert (lm.heads["hidden_act"], lm.heads["layer_norm_epsilon"]) == ("gelu", 1e-12)
    assert "[import] MLM head: from the checkpoint" in capsys.readouterr().out
    _assert_heads_equal(lm, reference, references["pairs"])
    # The random heads say something: the most likely token is far above a uniform guess; and the
    # erf and tanh GELU (TF1's test) are told apart: their logits differ by more than the tolerance.
    first = np.array(reference["mlm_probabilities"][0][0])
    assert first.max() > 5 / first.size
    tanh = reference["tanh_reference"]
    assert np.abs(np.array(reference["mlm_logits"][0][0]) - tanh["mlm_logits"][0][0]).max() > 5 * TOLERANCE
    # The command a user runs: the top 3 of each text's mask, as transformers ranks and scores them.
    texts = [t for t, masks in zip(reference["mask_texts"], reference["mlm_probabilities"]) if len(masks) == 1]
    assert cli.main(["fill-mask", "--model", FIXTURE, "--json", "--top-k", "3", *texts]) == 0
    printed = json.loads(capsys.readouterr().out.splitlines()[-1])
    vocab = open(os.path.join(FIXTURE, "vocab.txt"), encoding="utf-8").read().split("\n")
    expected = [masks[0] for masks in reference["mlm_probabilities"] if len(masks) == 1]
    assert len(printed) == len(texts)
    for candidates, probabilities in zip(printed, expected):
        top = np.argsort(-np.array(probabilities))[:3]
        assert [c["token"] for c in candidates] == [vocab[t] for t in top]
        np.testing.assert_allclose([c["score"] for c in candidates], np.array(probabilities)[top], atol=TOLERANCE)


def _tf1_name(name: str) -> tuple[str, bool]:
    """A Hugging Face BertForPreTraining weight's google-research TF1 variable name, and whether
    its matrix is stored transposed there ([in, out] kernels against torch's [out, in])."""
    tf1 = name.replace("encoder.layer.", "encoder/layer_").replace(".", "/")
    tf1 = tf1.replace("LayerNorm/weight", "LayerNorm/gamma").replace("LayerNorm/bias", "LayerNorm/beta")
    if tf1 == "cls/predictions/bias":
        return "cls/predictions/output_bias", False
    if tf1.startswith("cls/seq_relationship/"):  # [2, hidden], used with transpose_b
        return tf1.replace("weight", "output_weights").replace("/bias", "/output_bias"), False
    if "embeddings/" in tf1:
        return tf1.replace("/weight", ""), False
    return tf1.replace("/weight", "/kernel"), tf1.endswith("/weight")


def write_tf1_checkpoint(directory: str, tensors: dict) -> None:
    """``tensors`` (a BertForPreTraining state dict) saved as google-research saves BERT:
    ``bert_model.ckpt`` with its variable names, ``bert_config.json`` (its "gelu" is the tanh
    form), ``vocab.txt``; no tokenizer configuration (the casing is not said)."""
    os.makedirs(directory)
    values = {}
    for name, value in tensors.items():
        tf1, transpose = _tf1_name(name)
        values[tf1] = value.T if transpose else value
    with tf.Graph().as_default():
        variables = [tf.compat.v1.get_variable(n, initializer=v) for n, v in values.items()]
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.global_variables_initializer())
            tf.compat.v1.train.Saver(variables).save(session, os.path.join(directory, "bert_model.ckpt"))
    config = json.load(open(os.path.join(FIXTURE, "config.json")))
    json.dump({k: config[k] for k in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                                      "intermediate_size", "max_position_embeddings", "type_vocab_size",
                                      "hidden_dropout_prob")} | {"hidden_act": "gelu"},
              open(os.path.join(directory, "bert_config.json"), "w"))
    shutil.copy(os.path.join(FIXTURE, "vocab.txt"), directory)


def test_tf1_heads_follow_google_research_variables(references, tmp_path):
    tf1 = str(tmp_path / "tf1")
    write_tf1_checkpoint(tf1, load_file(os.path.join(FIXTURE, "model.safetensors")))
    with pytest.raises(FileNotFoundError, match="casing is unknown"):
        fill_mask.MaskedLM(tf1)  # a TF1 directory does not say whether it is cased: no guess
    lm = fill_mask.MaskedLM(tf1, casing="uncased")
    assert lm.heads["loaded"] == {"mlm": True, "nsp": True, "pooler": True}
    assert lm.heads["hidden_act"] == "gelu_new"  # google-research's gelu is the tanh form
    # What transformers computes for these weights with the tanh GELU.
    reference = references["hf_pretraining_gelu"]
    _assert_heads_equal(lm, reference["tanh_reference"], references["pairs"], reference["mask_texts"])


def test_heads_a_checkpoint_lacks_start_new_and_are_named(references, tmp_path, capsys):
    tensors = load_file(os.path.join(FIXTURE, "model.safetensors"))
    masked_lm = tmp_path / "masked_lm"  # BertForMaskedLM: no NSP head, no pooler
    shutil.copytree(FIXTURE, masked_lm)
    save_file({k: v for k, v in tensors.items() if "seq_relationship" not in k and "pooler" not in k},
              str(masked_lm / "model.safetensors"))
    heads = pretrained_heads.import_for_pretraining(str(masked_lm), str(tmp_path / "imported"))
    assert heads["loaded"] == {"mlm": True, "nsp": False, "pooler": False}
    out = capsys.readouterr().out
    assert "[import] NSP head: new (the checkpoint has none" in out and "[import] pooler: new" in out
    lm = fill_mask.MaskedLM(str(tmp_path / "imported"))  # a pretraining model directory: read as it is
    reference = references["hf_pretraining_gelu"]
    for ours, theirs in zip(_mlm_outputs(lm, reference["mask_texts"]), reference["mlm_probabilities"]):
        np.testing.assert_allclose(ours, theirs, atol=TOLERANCE)  # the MLM head needs no pooler
    with pytest.raises(ValueError, match="hf_uncased_gelu has no MLM head .* an encoder alone cannot fill masks"):
        fill_mask.MaskedLM(os.path.join(PUBLISHED, "hf_uncased_gelu"))  # a BertModel
    sentence = pretrained_heads.import_for_pretraining(os.path.join(PUBLISHED, "st_mean_normalize"),
                                                       str(tmp_path / "sentence"))
    assert (sentence["format"], sentence["loaded"]["mlm"], sentence["loaded"]["nsp"]) == (
        "sentence-transformers", False, False)
    # An earlier run's model as MLMD names it (the artifact's directory, its Format-Serving inside):
    # taken as it is, heads and all.
    run = tmp_path / "Trainer" / "model" / "7"
    shutil.copytree(tmp_path / "imported", run / "Format-Serving")
    from tfx_bert.checkpoint_info import read_checkpoint_info

    assert read_checkpoint_info(str(run)).vocab_size == 72
    again = pretrained_heads.import_for_pretraining(str(run), str(tmp_path / "again"))
    assert again["loaded"] == heads["loaded"] and "a pretraining run's model" in capsys.readouterr().out
    partial = tmp_path / "partial"
    shutil.copytree(FIXTURE, partial)
    save_file({k: v for k, v in tensors.items() if k != "cls.predictions.bias"}, str(partial / "model.safetensors"))
    with pytest.raises(ValueError, match=r"part of an MLM head \(cls.predictions.\*\) but not \['bias'\]"):
        pretrained_heads.import_for_pretraining(str(partial), str(tmp_path / "partial-out"))
    untied = tmp_path / "untied"
    shutil.copytree(FIXTURE, untied)
    save_file({**tensors, "cls.predictions.decoder.weight": tensors["bert.embeddings.word_embeddings.weight"] + 1},
              str(untied / "model.safetensors"))
    with pytest.raises(ValueError, match="decoder.weight is not the token embedding table"):
        pretrained_heads.import_for_pretraining(str(untied), str(tmp_path / "untied-out"))


def test_a_keras_hub_masked_lm_presets_head_computes_as_keras_hub(tmp_path):
    import keras
    import keras_hub

    from tfx_bert_app.models import encoder as encoder_lib

    keras.utils.set_random_seed(5)
    backbone = keras_hub.models.BertBackbone(vocabulary_size=64, num_layers=1, num_heads=2, hidden_dim=16,
                                             intermediate_dim=32, max_sequence_length=16)
    masked_lm = keras_hub.models.BertMaskedLM(backbone, preprocessor=None)
    for variable in masked_lm.masked_lm_head.weights:  # not its zero / one initialisation
        variable.assign(np.random.default_rng(1).normal(size=variable.shape).astype("float32"))
    preset = str(tmp_path / "preset")
    masked_lm.save_to_preset(preset)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(59)]
    keras_hub.models.BertTokenizer(vocabulary=vocab, lowercase=True).save_to_preset(preset)
    heads = pretrained_heads.import_for_pretraining(preset, str(tmp_path / "imported"))
    assert heads["loaded"] == {"mlm": True, "nsp": False, "pooler": True} and heads["format"] == "keras-hub"
    _, model, _ = pretrained_heads.load_pretraining_model(str(tmp_path / "imported"))
    ids = np.array([[2, 7, 4, 9, 3, 0]], "int32")
    inputs = {"token_ids": ids, "segment_ids": np.zeros_like(ids), "padding_mask": (ids > 0).astype("int32"),
              "mask_positions": np.array([[2, 3]], "int32")}
    np.testing.assert_allclose(model(inputs)[pretraining.MLM], masked_lm(inputs), atol=1e-5)
    assert encoder_lib.load_tokenizer(str(tmp_path / "imported")).vocab == vocab
