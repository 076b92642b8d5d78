"""tfx_bert.pretraining_metadata: what PretrainingDataGen writes next to its splits, read back
with the vocabulary resolved inside the artifact; a missing file says where examples must come from."""
import json
import os

import pytest

from tfx_bert import pretraining_metadata


def test_vocab_dir_resolves_inside_the_artifact_and_a_missing_file_is_explained(tmp_path):
    with pytest.raises(FileNotFoundError, match="must come from PretrainingDataGen"):
        pretraining_metadata.read_metadata(str(tmp_path))
    (tmp_path / pretraining_metadata.METADATA_FILE).write_text(json.dumps({"vocab_dir": "vocab", "max_seq_length": 64}))
    metadata = pretraining_metadata.read_metadata(str(tmp_path))
    assert metadata == {"vocab_dir": os.path.join(str(tmp_path), "vocab"), "max_seq_length": 64}
