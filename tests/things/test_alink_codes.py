"""The thing model's problems in Alink's terms: every kind has its code, and an event the
model lacks is refused in Alibaba's words, naming the method."""

from __future__ import annotations

from pathlib import Path

from hongshan.dialects.alink.codes import THING_MODEL_CODES, code_of, words_of
from hongshan.dialects.alink.messages import REQUEST_INVALID
from hongshan.dialects.alink.uplinks import Refusal, event_uplink
from hongshan.messages import Problem, ProblemKind
from hongshan.things.tsl import ThingModel

DATA = Path(__file__).parent / "data"
OXIMETER = ThingModel.from_json((DATA / "oximeter.json").read_bytes())


def test_every_kind_of_problem_has_an_alink_code() -> None:
    for kind in ProblemKind:
        code = code_of(Problem(kind=kind, identifier="V"))
        # Alibaba's "request parameter error", or one of its thing-model codes
        assert code == REQUEST_INVALID or 6300 <= code <= 6399, kind
    assert set(THING_MODEL_CODES) == set(ProblemKind)


def test_the_codes_alibaba_was_seen_answering() -> None:
    """Those of codes.py's table with Alibaba as their source (the rest are a best guess)."""
    seen = {
        ProblemKind.INVALID: 460,
        ProblemKind.UNKNOWN_IDENTIFIER: 6304,  # "tsl parse: params not exist -> attribute_8"
        ProblemKind.INT_WRONG_TYPE: 6306,  # "tsl parse: data type is not int -> code"
        ProblemKind.TEXT_WRONG_TYPE: 6310,  # "tsl parse: data type is not string -> red"
    }
    assert {kind: THING_MODEL_CODES[kind] for kind in seen} == seen


def test_an_unknown_event_is_refused_naming_its_method() -> None:
    made = event_uplink(OXIMETER, "a1Oxi", "oxi-1", "Fainted", {"SpO2": 50}, "7", 0)
    message = "tsl parse: method not found: thing.event.Fainted.post -> Fainted"
    assert made == Refusal(6300, message)


def test_other_problems_keep_the_thing_models_words() -> None:
    problem = Problem(
        kind=ProblemKind.TEXT_TOO_LONG, identifier="V", message="tsl parse: string length 6…"
    )
    assert words_of(problem, "thing.event.property.post") == problem.message
