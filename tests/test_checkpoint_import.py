"""components/checkpoint_import: the executor writes a pretraining model directory where a
Trainer reads ``base_model`` and the checkpoint's vocabulary as the Vocabulary artifact, both
naming their source. (Continuing from it in a pipeline run: tests/test_e2e.py.)"""
import json
import os

from tfx.types import standard_artifacts

from tests.helpers import PUBLISHED, new_artifact
from tfx_bert import tokenization
from tfx_bert_app.components.artifacts import Vocabulary
from tfx_bert_app.components.checkpoint_import import executor as ex
from tfx_bert_app.models import pretrained_heads


def test_the_checkpoint_becomes_the_base_model_and_the_vocabulary(tmp_path):
    source = os.path.join(PUBLISHED, "hf_pretraining_gelu")
    model = new_artifact(standard_artifacts.Model, tmp_path / "model")
    vocabulary = new_artifact(Vocabulary, tmp_path / "vocabulary")
    ex.Executor().Do({}, {"model": [model], "vocabulary": [vocabulary]}, {ex.SOURCE: source, ex.CASING: "uncased"})
    serving = os.path.join(model.uri, "Format-Serving")
    assert pretrained_heads.is_pretraining_dir(serving)
    assert json.loads(model.get_string_custom_property("heads_loaded")) == {"mlm": True, "nsp": True, "pooler": True}
    for artifact in (model, vocabulary):
        assert artifact.get_string_custom_property(ex.SOURCE) == source
        assert artifact.get_string_custom_property("format") == "huggingface"
    learned = tokenization.WordPieceTokenizer.from_directory(vocabulary.uri)
    assert learned.vocab == tokenization.read_vocab(os.path.join(source, "vocab.txt"))
    assert learned.config.lower_case is True
