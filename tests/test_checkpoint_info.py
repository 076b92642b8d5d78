"""tfx_bert/checkpoint_info.py: a checkpoint's architecture, vocabulary size and casing from its
configuration files, for each format pretrain.init_from takes."""
import json
import os

import pytest

from tests.helpers import PUBLISHED
from tfx_bert.checkpoint_info import read_checkpoint_info


def test_each_format_declares_its_architecture_vocabulary_and_casing(tmp_path):
    hf = read_checkpoint_info(os.path.join(PUBLISHED, "hf_pretraining_gelu"))
    assert (hf.num_layers, hf.hidden_dim, hf.num_heads, hf.intermediate_dim, hf.max_positions, hf.vocab_size,
            hf.lower_case) == (2, 32, 4, 64, 64, 72, True)
    assert read_checkpoint_info(os.path.join(PUBLISHED, "hf_cased_gelu_new_bin")).lower_case is False
    sentence = read_checkpoint_info(os.path.join(PUBLISHED, "st_mean_normalize"))  # its Transformer module's
    assert (sentence.hidden_dim, sentence.lower_case) == (32, True)
    import keras_hub

    from tfx_bert_app.models import encoder as encoder_lib

    backbone = keras_hub.models.BertBackbone(vocabulary_size=80, num_layers=1, num_heads=2, hidden_dim=16,
                                             intermediate_dim=24, max_sequence_length=32)
    vocab = tmp_path / "vocab"
    from tests.helpers import write_tiny_vocab

    encoder_lib.save_encoder(str(tmp_path / "preset"), backbone, write_tiny_vocab(vocab))
    preset = read_checkpoint_info(str(tmp_path / "preset"))
    assert (preset.num_layers, preset.hidden_dim, preset.intermediate_dim, preset.max_positions,
            preset.vocab_size, preset.lower_case) == (1, 16, 24, 32, 80, True)
    tf1 = tmp_path / "tf1"
    tf1.mkdir()
    (tf1 / "bert_config.json").write_text(json.dumps({"hidden_size": 8, "num_hidden_layers": 2, "num_attention_heads": 2,
                                                      "intermediate_size": 16, "vocab_size": 30}))
    info = read_checkpoint_info(str(tf1))
    assert (info.max_positions, info.lower_case) == (512, None)  # BERT's default; casing not said


def test_what_is_not_a_bert_configuration_is_named(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"hidden_size": 8}))
    with pytest.raises(ValueError, match=r"config.json lacks 'num_hidden_layers': not a BERT configuration"):
        read_checkpoint_info(str(tmp_path))
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="config.json is not valid JSON"):
        read_checkpoint_info(str(tmp_path))


def test_a_hub_handle_is_read_from_keras_hubs_download(tmp_path, monkeypatch):
    """``hf://org/name`` through keras-hub's download (an offline Hugging Face cache here: no hub
    at run time), as pretrain.init_from takes it; an unreachable one is an error naming it."""
    import huggingface_hub.constants

    from tests.test_checkpoint_conversion import _offline_hf_cache

    _offline_hf_cache(tmp_path / "hub", "tfx-bert/tiny-pretraining", os.path.join(PUBLISHED, "hf_pretraining_gelu"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    info = read_checkpoint_info("hf://tfx-bert/tiny-pretraining")
    assert (info.vocab_size, info.hidden_dim, info.lower_case) == (72, 32, True)
    with pytest.raises(ValueError, match=r"pretrain.init_from 'hf://tfx-bert/nothing' is a keras-hub preset or hub "
                                         r"handle, and its config.json could not be fetched .*set pretrain.init_from "
                                         r"to that directory"):
        read_checkpoint_info("hf://tfx-bert/nothing")
