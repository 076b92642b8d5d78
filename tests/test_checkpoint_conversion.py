"""A google-research-style TF1 checkpoint, written here, becomes a usable encoder."""
import json
import os

import keras_hub
import numpy as np
import pytest
import tensorflow as tf

from tests.helpers import PUBLISHED
from tfx_bert_app.models import checkpoint_conversion, encoder as encoder_lib
from tfx_bert import features, tokenization

HIDDEN, HEADS, LAYERS, INTER, VOCAB, POS = 8, 2, 2, 16, 12, 16


def _write_tf1_bert(directory):
    os.makedirs(directory)
    names = {
        "bert/embeddings/word_embeddings": (VOCAB, HIDDEN), "bert/embeddings/position_embeddings": (POS, HIDDEN),
        "bert/embeddings/token_type_embeddings": (2, HIDDEN), "bert/embeddings/LayerNorm/gamma": (HIDDEN,),
        "bert/embeddings/LayerNorm/beta": (HIDDEN,), "bert/pooler/dense/kernel": (HIDDEN, HIDDEN),
        "bert/pooler/dense/bias": (HIDDEN,), "cls/seq_relationship/output_weights": (2, HIDDEN),
    }
    for i in range(LAYERS):
        p = f"bert/encoder/layer_{i}"
        for part in ("query", "key", "value"):
            names[f"{p}/attention/self/{part}/kernel"] = (HIDDEN, HIDDEN)
            names[f"{p}/attention/self/{part}/bias"] = (HIDDEN,)
        names.update({f"{p}/attention/output/dense/kernel": (HIDDEN, HIDDEN), f"{p}/attention/output/dense/bias": (HIDDEN,),
                      f"{p}/attention/output/LayerNorm/gamma": (HIDDEN,), f"{p}/attention/output/LayerNorm/beta": (HIDDEN,),
                      f"{p}/intermediate/dense/kernel": (HIDDEN, INTER), f"{p}/intermediate/dense/bias": (INTER,),
                      f"{p}/output/dense/kernel": (INTER, HIDDEN), f"{p}/output/dense/bias": (HIDDEN,),
                      f"{p}/output/LayerNorm/gamma": (HIDDEN,), f"{p}/output/LayerNorm/beta": (HIDDEN,)})
    rng = np.random.default_rng(0)
    values = {n: rng.normal(size=s).astype("float32") for n, s in names.items()}
    with tf.Graph().as_default():
        variables = [tf.compat.v1.get_variable(n, initializer=v) for n, v in values.items()]
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.global_variables_initializer())
            tf.compat.v1.train.Saver(variables).save(session, os.path.join(directory, "bert_model.ckpt"))
    json.dump({"vocab_size": VOCAB, "hidden_size": HIDDEN, "num_hidden_layers": LAYERS, "num_attention_heads": HEADS,
               "intermediate_size": INTER, "hidden_act": "gelu", "max_position_embeddings": POS, "type_vocab_size": 2,
               "hidden_dropout_prob": 0.1}, open(os.path.join(directory, "bert_config.json"), "w"))
    vocab = tokenization.reserved_tokens() + ["the", "cat", "sat", "on", "mat", "##s", "a"]
    open(os.path.join(directory, "vocab.txt"), "w").write("\n".join(vocab) + "\n")
    return values


def test_tf1_checkpoint_converts_to_a_loadable_encoder(tmp_path):
    src = tmp_path / "uncased_L-2_H-8_A-2"
    values = _write_tf1_bert(str(src))
    out = checkpoint_conversion.convert_tf1_checkpoint(str(src), str(tmp_path / "encoder"), lower_case=True)
    backbone = keras_hub.models.BertBackbone.from_preset(out)
    weights = {w.path: w.numpy() for w in backbone.weights}
    np.testing.assert_array_equal(weights["token_embedding/embeddings"], values["bert/embeddings/word_embeddings"])
    np.testing.assert_array_equal(weights["transformer_layer_1/self_attention_layer/query/kernel"].reshape(HIDDEN, HIDDEN),
                                  values["bert/encoder/layer_1/attention/self/query/kernel"])
    np.testing.assert_array_equal(weights["transformer_layer_0/self_attention_layer/attention_output/kernel"].reshape(HIDDEN, HIDDEN),
                                  values["bert/encoder/layer_0/attention/output/dense/kernel"])
    np.testing.assert_array_equal(weights["transformer_layer_0/feedforward_layer_norm/gamma"],
                                  values["bert/encoder/layer_0/output/LayerNorm/gamma"])
    # The attention math agrees with the TF1 layout: q for one token equals x @ Wq + bq.
    x = np.ones((1, HIDDEN), "float32")
    q = np.einsum("bh,hnd->bnd", x, weights["transformer_layer_0/self_attention_layer/query/kernel"]).reshape(1, HIDDEN)
    expected = x @ values["bert/encoder/layer_0/attention/self/query/kernel"] + values["bert/encoder/layer_0/attention/self/query/bias"]
    np.testing.assert_allclose(q + weights["transformer_layer_0/self_attention_layer/query/bias"].reshape(1, HIDDEN), expected, rtol=1e-5)
    tok = encoder_lib.load_tokenizer(out)
    assert tok.config.lower_case is True and tok.vocab[-1] == "a"
    inputs = tok.encode(tf.constant(["the cats sat"]), 8)
    outputs = backbone({k: inputs[k] for k in features.MODEL_INPUT_KEYS})
    assert outputs["pooled_output"].shape == (1, HIDDEN)


def test_incomplete_checkpoint_names_what_is_missing(tmp_path):
    src = tmp_path / "bert"
    _write_tf1_bert(str(src))
    config = json.load(open(src / "bert_config.json"))
    config["num_hidden_layers"] = 3
    json.dump(config, open(src / "bert_config.json", "w"))
    with pytest.raises(ValueError, match="lacks .* BERT variables, e.g. .*layer_2"):
        checkpoint_conversion.backbone_from_tf1_checkpoint(str(src))


def test_fine_tuning_tokenizer_from_a_plain_keras_hub_preset(tmp_path):
    """A keras-hub preset directory (no project vocab dir) works as an encoder too."""
    vocab = tokenization.reserved_tokens() + ["hello", "world"]
    backbone = keras_hub.models.BertBackbone(vocabulary_size=len(vocab), num_layers=1, num_heads=2, hidden_dim=8,
                                             intermediate_dim=16, max_sequence_length=16)
    backbone.save_to_preset(str(tmp_path / "preset"))
    keras_hub.models.BertTokenizer(vocabulary=vocab, lowercase=True).save_to_preset(str(tmp_path / "preset"))
    tok = encoder_lib.load_tokenizer(str(tmp_path / "preset"))
    assert tok.tokenize(tf.constant(["Hello world"])).to_list() == [[5, 6]]
    assert encoder_lib.load_backbone(str(tmp_path / "preset")).vocabulary_size == len(vocab)


def test_finetuning_accepts_a_tf1_checkpoint_dir_as_encoder(tmp_path):
    from tfx_bert_app.pipeline import common
    from tfx_bert import config as config_lib

    src = tmp_path / "uncased_L-2_H-8_A-2"
    _write_tf1_bert(str(src))
    config = config_lib.load_config(overrides=[f"work_dir={tmp_path / 'work'}", f"finetune.encoder_uri={src}"])
    with pytest.raises(FileNotFoundError, match="casing is unknown: pass --casing uncased|cased .* finetune.encoder_casing"):
        common.encoder_uri(config)  # a TF1 directory does not say: no guess from its name
    config = config_lib.load_config(overrides=[f"work_dir={tmp_path / 'work'}", f"finetune.encoder_uri={src}",
                                               "finetune.encoder_casing=uncased"])
    uri = common.encoder_uri(config)
    assert os.path.basename(uri).startswith("uncased_L-2_H-8_A-2-") and os.path.dirname(uri) == str(tmp_path / "work" / "converted")
    assert keras_hub.models.BertBackbone.from_preset(uri).num_layers == LAYERS
    assert common.encoder_uri(config) == uri  # converted once, then reused


# --- Published formats against what the reference libraries computed --------------------------
# tests/fixtures/published/build_references.py made these with transformers / sentence-transformers
# (their own environment); this environment has neither PyTorch nor transformers.
FORMATS = {"hf_uncased_gelu": "huggingface", "hf_cased_gelu_new_bin": "huggingface",
           "st_mean_normalize": "sentence-transformers"}


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    root = tmp_path_factory.mktemp("published")
    return {name: checkpoint_conversion.convert_checkpoint(os.path.join(PUBLISHED, name), str(root / name))
            for name in FORMATS}


def _reference_inputs(reference):
    return {"token_ids": np.array(reference["input_ids"], "int32"),
            "segment_ids": np.array(reference["token_type_ids"], "int32"),
            "padding_mask": np.array(reference["attention_mask"], "int32")}


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_formats_are_detected(name):
    assert checkpoint_conversion.detect_format(os.path.join(PUBLISHED, name)) == FORMATS[name]


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_hidden_states_and_pooled_output_equal_the_reference(references, converted, name):
    reference = references[name]
    outputs = encoder_lib.load_backbone(converted[name])(_reference_inputs(reference))
    mask = np.array(reference["attention_mask"], bool)
    sequence = np.abs(outputs["sequence_output"].numpy() - np.array(reference["sequence_output"]))[mask]
    assert sequence.max() < 1e-4, sequence.max()
    assert np.abs(outputs["pooled_output"].numpy() - np.array(reference["pooled_output"])).max() < 1e-4


def test_the_checkpoints_own_gelu_is_what_makes_it_exact(references, converted):
    """The same weights in keras-hub's plain BertBackbone (tanh GELU) miss the erf reference by
    more than three times the tolerance (6e-4 measured): the parity test above can tell the
    activations apart."""
    exact = encoder_lib.load_backbone(converted["hf_uncased_gelu"])
    assert type(exact).__name__ == "BertEncoder" and exact.hidden_act == "gelu"
    plain = keras_hub.models.BertBackbone(**{k: v for k, v in exact.get_config().items()
                                             if k not in ("hidden_act", "layer_norm_epsilon", "name", "trainable",
                                                          "dtype")})
    plain.set_weights(exact.get_weights())
    reference = references["hf_uncased_gelu"]
    mask = np.array(reference["attention_mask"], bool)
    gap = np.abs(plain(_reference_inputs(reference))["sequence_output"].numpy()
                 - np.array(reference["sequence_output"]))[mask].max()
    assert gap > 3e-4, gap


def test_sentence_transformers_pooling_and_normalisation_are_kept(references, converted):
    from tfx_bert_app.models.keras_layers import build_sentence_encoder

    settings = json.load(open(os.path.join(converted["st_mean_normalize"], encoder_lib.SENTENCE_EMBEDDING_FILE)))
    assert (settings["pooling"], settings["normalize"], settings["max_seq_length"]) == ("mean", True, 24)
    reference = references["st_mean_normalize"]
    encoder = build_sentence_encoder(encoder_lib.load_backbone(converted["st_mean_normalize"]), settings["pooling"])
    embeddings = tf.math.l2_normalize(encoder(_reference_inputs(reference)), -1).numpy()
    assert np.abs(embeddings - np.array(reference["embeddings"])).max() < 1e-4


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_tokenization_equals_the_reference_tokenizer(references, converted, name):
    """Each checkpoint's own vocabulary and casing (from its tokenizer_config.json) give the
    reference tokenizer's ids: texts, pairs (an empty second text packs as [CLS] a [SEP]), and
    literal "[CLS]"-style text, which this project treats as plain text (as google-research
    BERT does; Hugging Face matches it as a special token unless split_special_tokens=True)."""
    tokens = references[name]["tokens"]
    tok = encoder_lib.load_tokenizer(converted[name])
    assert tok.config.lower_case == (name != "hf_cased_gelu_new_bin")

    def ids(texts, texts_b=None):
        packed = tok.encode(tf.constant(texts), 160, None if texts_b is None else tf.constant(texts_b))
        rows = packed["token_ids"].numpy().tolist(), packed["segment_ids"].numpy().tolist()
        lengths = packed["padding_mask"].numpy().sum(axis=1)
        return [r[:n] for r, n in zip(rows[0], lengths)], [r[:n] for r, n in zip(rows[1], lengths)]

    assert ids(references["texts"])[0] == tokens["texts"]
    assert ids(references["special_texts"])[0] == tokens["special_texts_split"]
    pair_ids, pair_segments = ids([a for a, _ in references["pairs"]], [b for _, b in references["pairs"]])
    assert (pair_ids, pair_segments) == (tokens["pairs"], tokens["pair_segments"])


def test_unsupported_checkpoints_are_named_before_anything_runs(tmp_path):
    import shutil

    roberta = tmp_path / "roberta"
    shutil.copytree(os.path.join(PUBLISHED, "hf_uncased_gelu"), roberta)
    config = json.load(open(roberta / "config.json"))
    json.dump({**config, "model_type": "roberta"}, open(roberta / "config.json", "w"))
    with pytest.raises(ValueError, match="model_type 'roberta' is not BERT"):
        checkpoint_conversion.convert_checkpoint(str(roberta), str(tmp_path / "out"))
    json.dump({**config, "hidden_act": "quick_gelu"}, open(roberta / "config.json", "w"))
    with pytest.raises(ValueError, match="hidden_act 'quick_gelu' is not supported"):
        checkpoint_conversion.convert_checkpoint(str(roberta), str(tmp_path / "out"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="is not a BERT checkpoint: expected a keras-hub preset"):
        checkpoint_conversion.detect_format(str(tmp_path / "empty"))
    os.remove(roberta / "model.safetensors")
    json.dump(config, open(roberta / "config.json", "w"))
    with pytest.raises(FileNotFoundError, match="holds no model.safetensors or pytorch_model.bin"):
        checkpoint_conversion.convert_checkpoint(str(roberta), str(tmp_path / "out"))


def test_a_pickle_that_is_not_only_tensors_is_refused(tmp_path):
    """A .bin is read without PyTorch and without running code from the pickle."""
    import io
    import pickle
    import zipfile

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("archive/data.pkl", pickle.dumps({"x": Evil()}))
    (tmp_path / "pytorch_model.bin").write_bytes(buffer.getvalue())
    with pytest.raises(pickle.UnpicklingError, match="refusing to load posix.system"):
        checkpoint_conversion.read_torch_bin(str(tmp_path / "pytorch_model.bin"))


# --- Hub handles and keras-hub preset names, as from_preset takes them ------------------------

def _offline_hf_cache(root, repo: str, source: str) -> None:
    """A Hugging Face cache holding ``source``'s files as the repository ``repo`` (what
    ``huggingface_hub`` leaves after a download), so ``hf://repo`` resolves with no network."""
    import shutil

    commit = "0123456789abcdef0123456789abcdef01234567"
    folder = root / f"models--{repo.replace('/', '--')}"
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text(commit)
    shutil.copytree(source, folder / "snapshots" / commit)


def test_a_hugging_face_handle_is_downloaded_then_converted_exactly(tmp_path, monkeypatch, references):
    """``finetune.encoder_uri=hf://org/name`` goes through keras-hub's download (here from an
    offline Hugging Face cache: no hub at run time) and this project's converter, so the erf GELU
    checkpoint still equals what transformers computed."""
    import huggingface_hub.constants

    from tfx_bert import config as config_lib
    from tfx_bert_app.pipeline import common

    _offline_hf_cache(tmp_path / "hub", "tfx-bert/tiny-bert", os.path.join(PUBLISHED, "hf_uncased_gelu"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    assert checkpoint_conversion.is_hub_preset("hf://tfx-bert/tiny-bert")
    config = config_lib.load_config(overrides=[f"work_dir={tmp_path / 'work'}", "finetune.encoder_uri=hf://tfx-bert/tiny-bert",
                                               "finetune.recipe=tiny"])
    uri = common.encoder_uri(config)
    assert os.path.basename(uri).startswith("tiny-bert-") and os.path.dirname(uri) == str(tmp_path / "work" / "converted")
    reference = references["hf_uncased_gelu"]
    outputs = encoder_lib.load_backbone(uri)(_reference_inputs(reference))
    mask = np.array(reference["attention_mask"], bool)
    assert np.abs(outputs["sequence_output"].numpy() - np.array(reference["sequence_output"]))[mask].max() < 1e-4


def test_a_preset_name_is_a_preset_not_a_missing_directory(tmp_path):
    """A keras-hub preset name is recognised (not refused as "not a directory"); where the hub
    cannot be reached the error names the preset and what to do."""
    from tfx_bert import config as config_lib
    from tfx_bert_app.pipeline import common

    assert checkpoint_conversion.is_hub_preset("bert_tiny_en_uncased")
    assert not checkpoint_conversion.is_hub_preset(str(tmp_path / "bert_tiny_en_uncased"))
    assert not checkpoint_conversion.is_hub_preset("no_such_preset")
    config = config_lib.load_config(overrides=[f"work_dir={tmp_path}", "finetune.encoder_uri=kaggle://no/such/keras/model",
                                               "finetune.recipe=tiny"])
    with pytest.raises(ValueError, match=r"'kaggle://no/such/keras/model' is a keras-hub preset or hub handle, and its "
                                         r"config.json could not be fetched .*set finetune.encoder_uri to that directory"):
        common.encoder_uri(config)
