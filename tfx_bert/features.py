"""Feature keys shared by Transform outputs, Keras inputs and serving signatures.

keras-hub's names are used inside the project; `input_word_ids`/`input_mask`/`input_type_ids`
(TF Hub / Model Garden names) are mapped to these at the edges only.
"""

# Raw (pre-Transform) features.
TEXT = "text"
TEXT_B = "text_b"
LABEL = "label"
NEGATIVES = "negatives"  # ranking data: a query's negative passages
DOC_ID = "doc_id"
TOKENS = "tokens"  # token classification: the words of a sentence
TAGS = "tags"  # token classification: one IOB2 tag id per word

# Model inputs after tokenization and packing.
TOKEN_IDS = "token_ids"
SEGMENT_IDS = "segment_ids"
PADDING_MASK = "padding_mask"
MODEL_INPUT_KEYS = (TOKEN_IDS, SEGMENT_IDS, PADDING_MASK)
WORD_POSITIONS = "word_positions"  # token classification: each word's first piece (-1: none)
WORD_TAGS = "word_tags"  # token classification: each word's tag id (-1: none)
# Long texts in windows (models/windows.py): the model inputs are an example's windows side by side.
WINDOW_MASK = "window_mask"  # [batch, max_windows]: 1 where the example has that window
WINDOWS_CUT = "windows_cut"  # [batch]: the windows past finetune.max_windows, not read

# Pretraining-instance features (written by PretrainingDataGen).
NEXT_SENTENCE_LABEL = "next_sentence_label"
MASK_POSITIONS = "mask_positions"
MASK_IDS = "mask_ids"
MASK_WEIGHTS = "mask_weights"

# Serving outputs of the classification task.
PROBABILITIES = "probabilities"
CLASS_IDS = "class_ids"
