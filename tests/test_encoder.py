"""models.encoder: encoders saved and loaded as keras-hub presets; a missing one is a clear error."""
import os

import keras_hub
import numpy as np

from tests.helpers import tiny_backbone
from tfx_bert import features, tokenization
from tfx_bert_app.models import encoder as encoder_lib


def test_encoder_round_trip_as_keras_hub_preset(tmp_path, tiny_vocab_dir):
    tok = tokenization.WordPieceTokenizer.from_directory(tiny_vocab_dir)
    backbone = tiny_backbone(tok.vocabulary_size, 16)
    encoder_lib.save_encoder(str(tmp_path / "enc"), backbone, tiny_vocab_dir, {"mlm_accuracy": 0.5})
    loaded = keras_hub.models.BertBackbone.from_preset(str(tmp_path / "enc"))
    x = {features.TOKEN_IDS: np.array([[2, 5, 6, 3]], "int32"), features.SEGMENT_IDS: np.zeros((1, 4), "int32"),
         features.PADDING_MASK: np.ones((1, 4), "int32")}
    np.testing.assert_allclose(backbone(x)["pooled_output"], loaded(x)["pooled_output"], atol=1e-5)
    assert encoder_lib.load_tokenizer(str(tmp_path / "enc")).vocab == tok.vocab
    hub_tokenizer = keras_hub.models.BertTokenizer.from_preset(str(tmp_path / "enc"))
    assert hub_tokenizer.vocabulary_size() == tok.vocabulary_size
    assert os.path.exists(tmp_path / "enc" / "pretraining_metrics.json")


def test_missing_encoder_is_a_clear_error(tmp_path):
    import pytest

    with pytest.raises(FileNotFoundError, match="not a keras-hub preset"):
        encoder_lib.load_backbone(str(tmp_path))
    with pytest.raises(FileNotFoundError, match="holds no vocabulary"):
        encoder_lib.load_tokenizer(str(tmp_path))
