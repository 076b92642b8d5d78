"""MLM + NSP instance creation, following google-research/bert's create_pretraining_data.py.

Pure Python on token-id lists so it is easy to test and to run inside a Beam DoFn. The random
generator is passed in explicitly; the same seed gives the same instances.
"""
from __future__ import annotations

import dataclasses
import random
from typing import Sequence

Document = Sequence[Sequence[int]]  # sentences of token ids


@dataclasses.dataclass
class Instance:
    """One ``[CLS] A [SEP] B [SEP]`` pair before masking."""

    token_ids: list[int]  # [seq] unpadded
    segment_ids: list[int]  # [seq] 0 for A (with [CLS] and first [SEP]), 1 for B
    is_random_next: bool
    truncated: bool


def truncate_seq_pair(tokens_a: list, tokens_b: list, max_num_tokens: int, rng: random.Random) -> bool:
    """Trims the longer segment one token at a time, from the front or back at random.

    Returns whether anything was removed.
    """
    truncated = False
    while len(tokens_a) + len(tokens_b) > max_num_tokens:
        longer = tokens_a if len(tokens_a) > len(tokens_b) else tokens_b
        if rng.random() < 0.5:
            del longer[0]
        else:
            longer.pop()
        truncated = True
    return truncated


def create_instances_from_document(
    documents: Sequence[Document],
    document_index: int,
    max_seq_length: int,
    short_seq_prob: float,
    cls_id: int,
    sep_id: int,
    rng: random.Random,
) -> list[Instance]:
    """Creates NSP segment pairs from one document; ``documents`` supplies random next segments."""
    document = documents[document_index]
    max_num_tokens = max_seq_length - 3  # [CLS], [SEP], [SEP]
    # Mostly fill the sequence, but sometimes use shorter ones so the model sees the
    # short inputs it will meet when fine-tuning.
    target_seq_length = max_num_tokens
    if rng.random() < short_seq_prob:
        target_seq_length = rng.randint(2, max_num_tokens)

    instances: list[Instance] = []
    current_chunk: list = []
    current_length = 0
    i = 0
    while i < len(document):
        segment = document[i]
        current_chunk.append(segment)
        current_length += len(segment)
        if i == len(document) - 1 or current_length >= target_seq_length:
            if current_chunk:
                a_end = rng.randint(1, len(current_chunk) - 1) if len(current_chunk) >= 2 else 1
                tokens_a = [t for s in current_chunk[:a_end] for t in s]
                tokens_b: list[int] = []
                is_random_next = len(current_chunk) == 1 or rng.random() < 0.5
                if is_random_next:
                    target_b_length = target_seq_length - len(tokens_a)
                    random_index = document_index
                    for _ in range(10):
                        random_index = rng.randint(0, len(documents) - 1)
                        if random_index != document_index:
                            break
                    random_document = documents[random_index]
                    random_start = rng.randint(0, len(random_document) - 1)
                    for j in range(random_start, len(random_document)):
                        tokens_b.extend(random_document[j])
                        if len(tokens_b) >= target_b_length:
                            break
                    # The unused segments go back into the pool, so no text is wasted.
                    i -= len(current_chunk) - a_end
                else:
                    tokens_b = [t for s in current_chunk[a_end:] for t in s]
                truncated = truncate_seq_pair(tokens_a, tokens_b, max_num_tokens, rng)
                if tokens_a and tokens_b:
                    token_ids = [cls_id] + tokens_a + [sep_id] + tokens_b + [sep_id]
                    segment_ids = [0] * (len(tokens_a) + 2) + [1] * (len(tokens_b) + 1)
                    instances.append(Instance(token_ids, segment_ids, is_random_next, truncated))
            current_chunk = []
            current_length = 0
        i += 1
    return instances


@dataclasses.dataclass
class MaskedInstance:
    """An instance with static MLM masking applied (google-research's recipe)."""

    token_ids: list[int]  # with masked positions replaced
    mask_positions: list[int]
    mask_ids: list[int]  # the original ids at mask_positions


def create_masked_lm_predictions(
    token_ids: Sequence[int],
    masked_lm_prob: float,
    max_predictions_per_seq: int,
    vocab_size: int,
    special_ids: set,
    mask_id: int,
    rng: random.Random,
    whole_word_starts: Sequence[bool] | None = None,
) -> MaskedInstance:
    """Chooses ~``masked_lm_prob`` of the tokens (at most ``max_predictions_per_seq``); of those
    80% become [MASK], 10% a random token, 10% stay. With ``whole_word_starts`` (False for
    "##" continuation pieces), all pieces of a chosen word are masked together."""
    groups: list[list[int]] = []
    for i, token in enumerate(token_ids):
        if token in special_ids:
            continue
        if whole_word_starts is not None and groups and not whole_word_starts[i] and groups[-1][-1] == i - 1:
            groups[-1].append(i)
        else:
            groups.append([i])
    rng.shuffle(groups)
    num_to_predict = min(max_predictions_per_seq, max(1, int(round(len(token_ids) * masked_lm_prob))))
    output = list(token_ids)
    chosen: list[int] = []
    for group in groups:
        if len(chosen) >= num_to_predict:
            break
        if len(chosen) + len(group) > num_to_predict:
            continue  # a whole word that no longer fits
        for index in group:
            roll = rng.random()
            if roll < 0.8:
                output[index] = mask_id
            elif roll < 0.9:
                output[index] = rng.randint(0, vocab_size - 1)
            chosen.append(index)
    chosen.sort()
    return MaskedInstance(output, chosen, [token_ids[i] for i in chosen])
