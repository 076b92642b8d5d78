"""The metadata PretrainingDataGen writes next to its splits, read by the pretraining Trainer."""
from __future__ import annotations

import json
import os

METADATA_FILE = "pretraining_metadata.json"


def read_metadata(examples_uri: str) -> dict:
    """Reads the metadata a PretrainingDataGen run wrote next to its splits."""
    import tensorflow as tf

    path = os.path.join(examples_uri, METADATA_FILE)
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(
            f"{path} is missing: the Trainer's examples must come from PretrainingDataGen.")
    with tf.io.gfile.GFile(path) as f:
        metadata = json.load(f)
    metadata["vocab_dir"] = os.path.join(examples_uri, metadata["vocab_dir"])
    return metadata
