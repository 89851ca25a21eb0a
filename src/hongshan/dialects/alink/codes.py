"""Alink's codes for what the thing model finds wrong: each ``ProblemKind`` → the code an Alink
device is answered with (and a refused command's ``CommandResult.code``).

Alibaba documents the general codes in "Error codes for devices" (460: the data is empty,
malformed or has too many parameters). Its table of thing-model codes (63xx) was not found in
public text, so each code below says where we saw it:

====  ===========================================  =============================================
code  meaning                                      source
====  ===========================================  =============================================
460   params empty, or not an object/list          Alibaba, "Error codes for devices"
6300  no such event or service (method not found)  Hongshan issue 3 (not seen in public text)
6304  identifier not in the model (or read-only)   Alibaba "Data formats" checkFailedData sample:
                                                   ``tsl parse: params not exist -> attribute_8``
6306  not an int, or out of its range              Alibaba replies: ``tsl parse: data type is
                                                   not int -> code`` (range: IoTOrbHub [1])
6307  not a float/double, or out of its range      [1]
6308  bool not 0 or 1                              [1]; the words ``tsl parse: value of bool
                                                   type must be int`` are Alibaba's
6309  enum not one of its keys                     [1]
6310  not a string, or too long                    Alibaba replies: ``tsl parse: data type is
                                                   not string -> red``
6311  date not UTC milliseconds                    [1]
6312  struct not an object                         [1]
6324  array longer than its size                   [1]
6328  array not a list                             [1]
====  ===========================================  =============================================

[1] github.com/shikanon/IoTOrbHub ``pkg/util`` (``DataVerification``), an Alibaba-compatible hub.
It agrees with Alibaba on 6304 and 6310 but answers a non-int with 6307 where Alibaba answered
6306, so its numbers are a best guess. When Alibaba's table turns up, change the table here —
nothing else names a number.
"""

from __future__ import annotations

from hongshan.dialects.alink.messages import REQUEST_INVALID
from hongshan.messages import Problem, ProblemKind

THING_MODEL_CODES: dict[ProblemKind, int] = {
    ProblemKind.INVALID: REQUEST_INVALID,
    ProblemKind.UNKNOWN_CALL: 6300,
    ProblemKind.UNKNOWN_IDENTIFIER: 6304,
    ProblemKind.READ_ONLY: 6304,
    ProblemKind.INT_WRONG_TYPE: 6306,
    ProblemKind.INT_OUT_OF_RANGE: 6306,
    ProblemKind.FLOAT_WRONG_TYPE: 6307,
    ProblemKind.FLOAT_OUT_OF_RANGE: 6307,
    ProblemKind.BOOL_WRONG_TYPE: 6308,
    ProblemKind.BOOL_OUT_OF_RANGE: 6308,
    ProblemKind.ENUM_WRONG_TYPE: 6309,
    ProblemKind.ENUM_NOT_A_KEY: 6309,
    ProblemKind.TEXT_WRONG_TYPE: 6310,
    ProblemKind.TEXT_TOO_LONG: 6310,
    ProblemKind.DATE_WRONG_TYPE: 6311,
    ProblemKind.STRUCT_WRONG_TYPE: 6312,
    ProblemKind.ARRAY_WRONG_TYPE: 6328,
    ProblemKind.ARRAY_TOO_LONG: 6324,
}


def code_of(problem: Problem) -> int:
    return THING_MODEL_CODES[problem.kind]


def words_of(problem: Problem, method: str) -> str:
    """A problem as an Alink device is told it: the thing model's words, but for an event or
    service the model lacks, Alibaba's, which name the message's ``method``."""
    if problem.kind is ProblemKind.UNKNOWN_CALL:
        return f"tsl parse: method not found: {method} -> {problem.identifier}"
    return problem.message
