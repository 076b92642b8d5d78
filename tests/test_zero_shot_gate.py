"""The ZeroShotGate component: a cosine-similarity model is blessed only if TFMA blessed it and
it ranks the eval pairs better than the pretrained encoder's zero-shot embeddings."""
import json
import os

import pytest
import tensorflow as tf
from tfx.types import standard_artifacts

from tests.helpers import new_artifact, ranking_tokenizer, run_executor, tiny_backbone
from tfx_bert_app.models import keras_layers
from tfx_bert import tokenization

pytestmark = pytest.mark.slow  # three SavedModel exports and two runs: about 15 s

PAIRS = [("the warm soup", "the fresh soup", 4.5), ("a rocket orbits the moon", "the star and the moon", 3.0),
         ("the chef bakes bread", "a sailor and a boat", 0.5), ("does the oven boil soup ?", "the chef boils soup", 3.5),
         ("the sea", "a boat for the sea", 2.5), ("bread", "the rocket", 0.0)]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from tfx_bert_app.models import encoder as encoder_lib
    from tfx_bert_app.models import similarity

    root = tmp_path_factory.mktemp("gate")
    tokenizer = ranking_tokenizer()
    tokenization.write_vocab_dir(str(root / "vocab"), tokenizer.vocab, tokenizer.config)
    models = {}
    for name, seed in (("same", 1),):
        tf.keras.utils.set_random_seed(seed)
        sentence_encoder = keras_layers.build_sentence_encoder(tiny_backbone(tokenizer.vocabulary_size), "mean")
        similarity.export_bi_encoder(similarity.build_pair_model(sentence_encoder, "cosine"), sentence_encoder,
                                     str(root / name / "Format-Serving"), tokenizer, 32, "cosine")
        models[name] = new_artifact(standard_artifacts.Model, root / name)
    tf.keras.utils.set_random_seed(1)  # the "same" model's backbone: its zero-shot ranking is the candidate's
    encoder_lib.save_encoder(str(root / "encoder" / "Format-Serving"), tiny_backbone(tokenizer.vocabulary_size),
                             str(root / "vocab"))
    examples = new_artifact(standard_artifacts.Examples, root / "examples")
    examples.split_names = json.dumps(["eval"])
    os.makedirs(root / "examples" / "Split-eval")
    with tf.io.TFRecordWriter(str(root / "examples" / "Split-eval" / "data.gz"), options="GZIP") as writer:
        for a, b, score in PAIRS:
            writer.write(tf.train.Example(features=tf.train.Features(feature={
                "text": tf.train.Feature(bytes_list=tf.train.BytesList(value=[a.encode()])),
                "text_b": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b.encode()])),
                "label": tf.train.Feature(float_list=tf.train.FloatList(value=[score]))})).SerializeToString())
    return root, models, examples, new_artifact(standard_artifacts.Model, root / "encoder")


def _gate(setup, model: str, upstream_blessed: bool, name: str):
    from tfx_bert_app.components.zero_shot_gate import executor as ex

    root, models, examples, encoder = setup
    upstream = new_artifact(standard_artifacts.ModelBlessing, root / name / "upstream")
    upstream.set_int_custom_property("blessed", int(upstream_blessed))
    gated = new_artifact(standard_artifacts.ModelBlessing, root / name / "gated")
    run_executor(ex.Executor, {"model": [models[model]], "blessing": [upstream], "examples": [examples],
                               "encoder": [encoder]}, {"gated_blessing": [gated]},
                 {ex.EVAL_SPLIT: "eval", ex.POOLING: "mean", ex.MAX_SEQ_LENGTH: 32}, str(root / name / "tmp"))
    return json.load(open(os.path.join(gated.uri, ex.METRICS_FILE))), gated


def test_no_gain_over_the_zero_shot_encoder_is_not_blessed(setup):
    """The candidate is its encoder's own mean pooling: the same Spearman, no gain, not blessed
    though TFMA blessed it. (The blessed path runs in the similarity end-to-end test, whose
    pushed model the gate let through.)"""
    from scipy import stats

    report, gated = _gate(setup, "same", True, "same")
    served = tf.saved_model.load(os.path.join(setup[1]["same"].uri, "Format-Serving")).signatures["serving_default"]
    similarity = served(text=tf.constant([a for a, _, _ in PAIRS]), text_b=tf.constant([b for _, b, _ in PAIRS]))
    expected = stats.spearmanr([s for _, _, s in PAIRS], similarity["similarity"].numpy()).statistic
    assert report["candidate_spearman"] == pytest.approx(expected, abs=1e-6) and report["pairs"] == len(PAIRS)
    assert report["candidate_spearman"] == pytest.approx(report["zero_shot_spearman"], abs=1e-6)
    assert report["evaluator_blessed"] and not report["blessed"] and gated.get_int_custom_property("blessed") == 0
    assert os.path.exists(os.path.join(gated.uri, "NOT_BLESSED"))
    assert gated.get_int_custom_property("current_model_id") == setup[1]["same"].id
