"""CheckpointImport executor: ``models/pretrained_heads.import_for_pretraining`` into the Model
artifact's ``Format-Serving`` directory (where a Trainer's ``base_model`` is read, as for a
pretraining Trainer's own model), and the checkpoint's vocabulary as the Vocabulary artifact, so
no vocabulary is learned. Both record where they came from (``source``, ``format``), the model
also which heads were carried over (``heads_loaded``)."""
from __future__ import annotations

import json

from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils
from tfx.utils import path_utils

from tfx_bert import tokenization

SOURCE, CASING = "source", "casing"

class Executor(base_executor.BaseExecutor):
    def Do(self, input_dict, output_dict, exec_properties):
        from tfx_bert_app.models import encoder as encoder_lib, pretrained_heads

        model = artifact_utils.get_single_instance(output_dict["model"])
        vocabulary = artifact_utils.get_single_instance(output_dict["vocabulary"])
        source = exec_properties[SOURCE]
        directory = path_utils.serving_model_path(model.uri)
        heads = pretrained_heads.import_for_pretraining(source, directory, exec_properties.get(CASING) or "auto")
        tokenizer = encoder_lib.load_tokenizer(directory)
        tokenization.write_vocab_dir(vocabulary.uri, tokenizer.vocab, tokenizer.config)
        for artifact in (model, vocabulary):
            artifact.set_string_custom_property(SOURCE, source)
            artifact.set_string_custom_property("format", heads.get("format", "pretraining run"))
        model.set_string_custom_property("heads_loaded", json.dumps(heads.get("loaded", {}), sort_keys=True))
        print(f"  [import] {source}: vocabulary of {len(tokenizer.vocab)} tokens "
              f"({'uncased' if tokenizer.config.lower_case else 'cased'}) -> {vocabulary.uri}", flush=True)
