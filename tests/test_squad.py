"""SQuAD metrics (the official scripts' definitions) and SQuAD JSON reading."""
import collections
import json

import pytest

from tfx_bert import squad


@pytest.mark.parametrize("prediction,gold,em,f1", [
    ("The Eiffel Tower", "eiffel tower", 1.0, 1.0),  # case and the article "the"
    ("Eiffel Tower!", "the Eiffel   Tower", 1.0, 1.0),  # punctuation and whitespace
    ("an apple a day", "apple day", 1.0, 1.0),  # a / an removed as words only
    ("theatre", "atre", 0.0, 0.0),  # "the" inside a word stays
    ("Denver Broncos", "Broncos", 0.0, 2 * (1 / 2) * 1 / (1 / 2 + 1)),
    ("the the cat cat", "cat", 0.0, 2 * (1 / 2) * 1 / (1 / 2 + 1)),  # a bag: repeats count once per gold token
    ("1,000 people", "1000 people", 1.0, 1.0),  # punctuation inside numbers is removed too
    ("", "", 1.0, 1.0),  # SQuAD 2.0: no answer predicted for no answer
    ("something", "", 0.0, 0.0),
])
def test_official_definitions(prediction, gold, em, f1):
    assert squad.exact_match(prediction, gold) == em
    assert squad.f1(prediction, gold) == pytest.approx(f1)


def test_best_over_gold_answers_and_unanswerable():
    assert squad.score("Broncos", ["Denver Broncos", "The Broncos"]) == (1.0, 1.0)
    assert squad.score("", []) == (1.0, 1.0)  # unanswerable, abstained
    assert squad.score("Denver", []) == (0.0, 0.0)
    result = squad.evaluate({"q1": "Denver Broncos", "q2": ""}, {"q1": ["Broncos"], "q2": [], "q3": ["x"]})
    assert result["total"] == 3
    assert result["exact_match"] == pytest.approx(100 * (0 + 1 + 0) / 3)
    assert result["f1"] == pytest.approx(100 * (2 / 3 + 1 + 0) / 3)


def _write(tmp_path, qas, context="Denver Broncos won Super Bowl 50 in Santa Clara."):
    path = tmp_path / "dev.json"
    path.write_text(json.dumps({"version": "v2.0", "data": [{"title": "t", "paragraphs": [
        {"context": context, "qas": qas}]}]}))
    return str(path)


def test_reading_counts_bad_answer_starts_and_keeps_unanswerable(tmp_path):
    path = _write(tmp_path, [
        {"id": "ok", "question": "Who won?", "answers": [{"text": "Denver Broncos", "answer_start": 0}]},
        {"id": "shifted", "question": "Where?", "answers": [{"text": "Santa Clara", "answer_start": 3},
                                                            {"text": "Santa Clara", "answer_start": 36}]},
        {"id": "all_bad", "question": "What?", "answers": [{"text": "Super", "answer_start": 0}]},
        {"id": "impossible", "question": "Who lost?", "answers": [], "is_impossible": True},
        {"id": "empty", "question": "  ", "answers": []},
    ])
    counters = collections.Counter()
    questions = squad.read_squad(path, counters)
    assert [q.id for q in questions] == ["ok", "shifted", "impossible"]
    assert questions[1].answers == (("Santa Clara", 36),)
    assert questions[2].answers == ()
    assert counters == {"questions": 3, "bad_answer_start": 2, "skipped_no_valid_answer": 1, "skipped_empty_text": 1}
    with pytest.raises(ValueError, match="question shifted: answer 'Santa Clara' is not at answer_start 3"):
        squad.read_squad(path, strict=True)


def test_not_a_squad_file_is_a_clear_error(tmp_path):
    (tmp_path / "x.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="x.json: not a SQuAD JSON file"):
        squad.read_squad(str(tmp_path / "x.json"))
