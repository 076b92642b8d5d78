"""models/slices.py: the derived slice features of the served graph, TFMA's slicing specs and the
gate per slice (run by TFMA itself), the run summary's worst slice, and the settings' rules."""
import numpy as np
import pytest
import tensorflow as tf

from tests.helpers import run_tfma
from tfx_bert import config as config_lib
from tfx_bert import run_summary, tokenization
from tfx_bert_app.models import slices


def test_length_and_unknown_rate_buckets():
    names = slices.length_bucket(tf.constant([3, 16, 17, 32, 33, 64, 65]), 64).numpy().tolist()
    assert names == [b"<= 16", b"<= 16", b"<= 32", b"<= 32", b"<= 64", b"<= 64", b"> 64 (cut)"]
    windowed = slices.length_bucket(tf.constant([64, 65]), 64, windowed=True).numpy().tolist()
    assert windowed == [b"<= 64", b"> 64 (windows)"]  # read in windows (finetune.max_windows), not cut
    rates = slices.unknown_rate_bucket(tf.constant([0, 1, 1, 1]), tf.constant([10, 100, 10, 5])).numpy().tolist()
    assert rates == [b"0%", b"< 5%", b"5-20%", b">= 20%"]


def test_the_served_signature_counts_pieces_with_the_models_tokenizer(tiny_vocab_dir):
    tokenizer = tokenization.WordPieceTokenizer.from_directory(tiny_vocab_dir)
    module, signatures = tf.Module(), {}
    slices.add_signature(module, signatures, tokenizer, ("text", "text_b"), 16)

    def example(text, text_b=None):
        e = tf.train.Example()
        e.features.feature["text"].bytes_list.value.append(text.encode())
        if text_b is not None:
            e.features.feature["text_b"].bytes_list.value.append(text_b.encode())
        return e.SerializeToString()

    long_text = " ".join(["the cat sat on the mat"] * 3)  # 18 pieces
    out = signatures[slices.SIGNATURE](examples=tf.constant([
        example("the cat sat"), example("the cat", "the dog"), example(long_text), example("the zebra qwxz sat")]))
    # [CLS] + pieces + a [SEP] per text: 5 pieces; 4 + 3 = 7 (the pair: two [SEP]s); 21 > 16.
    assert out[slices.LENGTH_BUCKET].numpy().tolist() == [b"<= 8", b"<= 8", b"> 16 (cut)", b"<= 8"]
    pieces = tokenizer.tokenize(tf.constant(["the zebra qwxz sat"]))
    assert int(tf.reduce_sum(tf.cast(tf.equal(pieces, tokenizer.unk_id), tf.int32))) == 2
    assert out[slices.UNKNOWN_RATE_BUCKET].numpy().tolist() == [b"0%", b"0%", b"0%", b">= 20%"]


def _examples(rng, n, accuracy, source):
    """Two-class predictions right ``accuracy`` of the time, from ``source``."""
    out = []
    for _ in range(n):
        label = int(rng.integers(0, 2))
        right = rng.random() < accuracy
        p = 0.8 if right else 0.2
        e = tf.train.Example()
        e.features.feature["label"].int64_list.value.append(label)
        e.features.feature["probabilities"].float_list.value.extend([1 - p, p] if label else [p, 1 - p])
        e.features.feature["source"].bytes_list.value.append(source.encode())
        out.append(e)
    return out


@pytest.mark.parametrize("min_slice_size, forum_accuracy", [(0, 0.4), (20, 0.4), (20, 0.9)])
def test_slices_are_reported_and_with_a_minimum_size_a_failing_slice_blocks_the_blessing(tmp_path, min_slice_size,
                                                                                        forum_accuracy):
    """Slices by a column of the data: reported; with min_slice_size, a slice of at least that many
    examples below the threshold refuses the blessing, a smaller one (TFMA omits it) does not."""
    from tfx.types import standard_artifacts

    from tests.helpers import new_artifact
    from tfx_bert_app.components import slice_gate
    from tfx_bert_app.models import classification

    rng = np.random.default_rng(3)
    # web: 120 examples at 90%; forum: 40 (40% fails 0.6); tiny: 5 at 0% (below min_slice_size 20).
    examples = (_examples(rng, 120, 0.9, "web") + _examples(rng, 40, forum_accuracy, "forum")
                + _examples(rng, 5, 0.0, "tiny"))
    f = config_lib.load_config(demo=True, overrides=["finetune.slices=source",
                                                     f"finetune.min_slice_size={min_slice_size}"]).finetune
    config = slices.with_slices(classification.eval_config(f), f.slices, f.min_slice_size)
    metrics, validation = run_tfma(tmp_path, config, examples)
    assert metrics[("sparse_categorical_accuracy", None)] > 0.6  # overall passes
    out = str(tmp_path / "out")
    forgiven = slices.forgive_omitted_slices(out)
    validation = tfma_validation(out)
    failed = {(tuple((k.column, k.bytes_value) for k in per_slice.slice_key.single_slice_keys), failure.metric_key.name)
              for per_slice in validation.metric_validations_per_slice for failure in per_slice.failures}
    if min_slice_size and forum_accuracy < 0.6:
        assert failed == {((("source", b"forum"),), "sparse_categorical_accuracy")} and not forgiven, failed
        assert not validation.validation_ok
    else:
        assert validation.validation_ok and forgiven == bool(min_slice_size), failed
    worst = run_summary.worst_slice(out)
    assert worst["metric"] == "sparse_categorical_accuracy"
    if not min_slice_size:
        assert (worst["slice"], worst["examples"], worst["value"]) == ("source=tiny", 5, 0.0)
    elif forum_accuracy < 0.6:
        assert (worst["slice"], worst["examples"]) == ("source=forum", 40) and worst["value"] < 0.6
    else:  # tiny is omitted under the minimum: the worst of the others passes
        assert worst["slice"] != "source=tiny" and worst["value"] >= 0.6
    assert worst["overall"] == pytest.approx(metrics[("sparse_categorical_accuracy", None)])
    if forgiven:  # the executor turns TFX's NOT_BLESSED into BLESSED
        blessing = new_artifact(standard_artifacts.ModelBlessing, tmp_path / "blessing")
        (tmp_path / "blessing").mkdir()
        (tmp_path / "blessing" / "NOT_BLESSED").write_text("")
        slice_gate.bless(blessing)
        assert sorted(p.name for p in (tmp_path / "blessing").iterdir()) == ["BLESSED"]
        assert blessing.get_int_custom_property("blessed") == 1


def tfma_validation(out):
    import tensorflow_model_analysis as tfma

    return tfma.load_validation_result(out)


@pytest.mark.parametrize("overrides, message", [
    (["finetune.task=ner", "finetune.slices=length_bucket"], "derived by the served graph"),
    (["finetune.task=retrieval", "finetune.slices=source"], "evaluated by retrieval"),
    (["finetune.min_slice_size=10"], "gates slices only when finetune.slices names some"),
    (["finetune.slices=label"], "other than the text and the label"),
    (["finetune.task=qa", "finetune.slices=source"], "columns of the data are read from csv")])
def test_slices_that_cannot_work_are_refused(overrides, message):
    with pytest.raises(ValueError, match=message):
        config_lib.load_config(demo=True, overrides=overrides)
