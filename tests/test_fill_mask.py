"""models/fill_mask.py and `tfx-bert fill-mask`: a pretraining run's model directory (encoder
preset + the whole pretraining model's weights), written here from a small random model, read
back with its MLM head. Published checkpoints' heads: tests/test_pretrained_heads.py."""
import json

import keras
import keras_hub
import numpy as np
import pytest
import tensorflow as tf

from tfx_bert import features
from tfx_bert_app.models import encoder as encoder_lib
from tfx_bert_app.models import fill_mask, pretraining


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """What the pretraining run_fn writes to ``<artifact>/Format-Serving``; and its model."""
    from tests.helpers import write_tiny_vocab
    from tfx_bert import tokenization

    root = tmp_path_factory.mktemp("pretrained")
    vocab_dir = write_tiny_vocab(root / "vocab")
    size = tokenization.WordPieceTokenizer.from_directory(vocab_dir).vocabulary_size
    keras.utils.set_random_seed(3)
    backbone = keras_hub.models.BertBackbone(vocabulary_size=size, num_layers=1, num_heads=2, hidden_dim=16,
                                             intermediate_dim=32, max_sequence_length=16)
    model = pretraining.build_pretraining_model(backbone)
    serving = root / "model" / "7" / "Format-Serving"
    encoder_lib.save_encoder(str(serving), backbone, vocab_dir)
    model.save_weights(str(serving / pretraining.PRETRAINING_WEIGHTS))
    return root / "model" / "7", backbone, model


def test_each_mask_gets_the_mlm_heads_distribution_at_its_position(run_dir):
    artifact, backbone, model = run_dir
    lm = fill_mask.MaskedLM(str(artifact))  # the Model artifact's directory, as MLMD names it
    texts = ["the [MASK] sat on the mat", "[MASK] cat played [MASK] ."]
    inputs, counts = lm.encode(texts)
    assert counts == [1, 2]
    vocab = lm.tokenizer.vocab
    assert [vocab[t] for t in inputs[features.TOKEN_IDS][0][:5]] == ["[CLS]", "the", "[MASK]", "sat", "on"]
    assert inputs[features.MASK_POSITIONS].tolist() == [[2, 0], [1, 5]]  # played: play ##ed
    results = lm.fill(texts, top_k=4)
    # The head by hand on the saved model's sequence output: gather, dense + GELU + LayerNorm,
    # the tied embedding table, the bias.
    head = model.get_layer(pretraining.MLM)
    sequence = backbone({k: inputs[k] for k in features.MODEL_INPUT_KEYS})["sequence_output"]
    for i, positions in enumerate(([2], [1, 5])):
        for m, position in enumerate(positions):
            x = head._intermediate_layer_norm(head._intermediate_dense(sequence[i:i + 1, position]))
            logits = tf.matmul(x, backbone.token_embedding.embeddings, transpose_b=True) + head._bias
            expected = tf.nn.softmax(logits)[0].numpy()
            top = np.argsort(-expected)[:4]
            assert [c["token"] for c in results[i][m]] == [vocab[t] for t in top]
            np.testing.assert_allclose([c["score"] for c in results[i][m]], expected[top], atol=1e-5)


def test_what_fill_mask_cannot_read_is_a_clear_error(run_dir, tmp_path, capsys):
    from tfx_bert import cli

    artifact, _, _ = run_dir
    lm = fill_mask.MaskedLM(str(artifact / "Format-Serving"))
    with pytest.raises(ValueError, match=r"text 2 \('no mask here'\) has no \[MASK\]"):
        lm.encode(["a [MASK]", "no mask here"])
    with pytest.raises(ValueError, match="is 2[0-9] pieces; this model reads at most 16"):
        lm.encode([" ".join(["the"] * 20) + " [MASK]"])
    encoder_only = tmp_path / "encoder"
    encoder_lib.save_encoder(str(encoder_only), encoder_lib.load_backbone(str(artifact / "Format-Serving")),
                             encoder_lib.vocab_dir(str(artifact / "Format-Serving")))
    with pytest.raises(ValueError, match="encoder has no MLM head .* an encoder alone cannot fill masks"):
        fill_mask.MaskedLM(str(encoder_only))
    capsys.readouterr()
    assert cli.main(["fill-mask", "--model", str(artifact), "--json", "--top-k", "2", "the [MASK] sat",
                     "[MASK] cat [MASK]"]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    single, double = json.loads(line)  # one entry per text
    assert len(single) == 2 and single[0]["score"] >= single[1]["score"] > 0
    assert len(double) == 2 and all(len(candidates) == 2 for candidates in double)  # a list per mask
    assert cli.main(["fill-mask", "--model", str(artifact), "--top-k", "0", "the [MASK]"]) == 2
