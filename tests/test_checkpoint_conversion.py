"""A google-research-style TF1 checkpoint, written here, becomes a usable encoder."""
import json
import os

import keras_hub
import numpy as np
import pytest
import tensorflow as tf

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
    out = checkpoint_conversion.convert_tf1_checkpoint(str(src), str(tmp_path / "encoder"))
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
    uri = common.encoder_uri(config)
    assert uri == str(tmp_path / "work" / "converted" / "uncased_L-2_H-8_A-2")
    assert keras_hub.models.BertBackbone.from_preset(uri).num_layers == LAYERS
    assert common.encoder_uri(config) == uri  # converted once, then reused
