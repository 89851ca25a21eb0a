"""The rule language's grammar, and ``parse``: a rule's text to a ``tree.Rule``.

The grammar is LALR(1) (lark builds the parser tables once, at import); the tree is built while
parsing (lark's inline transformer), so that no rule, however nested, recurses in Python. A
text that is no rule raises ``RuleSyntaxError`` with its line, its column and what was
expected there, in words; nothing else is raised, whatever the text.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from typing import Any, NoReturn, cast

from lark import Lark, Token, Transformer
from lark.exceptions import LarkError, UnexpectedCharacters, UnexpectedInput, UnexpectedToken

from hongshan.errors import HongshanError, RemoteProtocolError
from hongshan.mqtt.topics import validate_topic_filter
from hongshan.rules.functions import FUNCTIONS
from hongshan.rules.tree import (
    And,
    Arithmetic,
    ArrayOf,
    Between,
    Call,
    Case,
    Compare,
    In,
    Index,
    IsNull,
    Like,
    Literal,
    Member,
    Negative,
    Node,
    Not,
    ObjectOf,
    Or,
    Path,
    Rule,
    SelectAll,
    Selected,
    Span,
    children,
)

MAX_LENGTH = 16_384
"""The longest rule text accepted, in characters."""
MAX_DEPTH = 100
"""The deepest nesting of expressions accepted (``a OR b OR c`` is one level, ``1+2+3`` two):
evaluation recurses once per level."""

GRAMMAR = r"""
start: SELECT select_items FROM STRING (WHERE expr)?

select_items: select_item (COMMA select_item)*
select_item: STAR                   -> select_all
           | expr                   -> select_plain
           | expr AS alias          -> select_as
alias: name (DOT name)*
name: NAME | QUOTED_NAME

?expr: disjunction
?disjunction: conjunction
            | disjunction OR conjunction                    -> or_
?conjunction: negation
            | conjunction AND negation                      -> and_
?negation: predicate
         | NOT negation                                     -> not_
?predicate: sum
          | sum COMPARISON sum                              -> compare
          | sum NOT? BETWEEN sum AND sum                    -> between
          | sum NOT? IN LPAR expr (COMMA expr)* RPAR        -> in_list
          | sum NOT? IN collection                          -> in_collection
          | sum NOT? LIKE sum                               -> like
          | sum IS NOT? NULL                                -> is_null
?collection: NAME                                           -> field
           | QUOTED_NAME                                    -> field
           | call
           | array
           | collection DOT name                            -> member
           | collection LSQB expr RSQB                      -> index

?sum: product
    | sum PLUS product                                      -> add
    | sum MINUS product                                     -> subtract
?product: unary
        | product STAR unary                                -> multiply
        | product SLASH unary                               -> divide
        | product PERCENT unary                             -> remainder
?unary: postfix
      | MINUS unary                                         -> negative
      | PLUS unary                                          -> positive
?postfix: atom
        | postfix DOT name                                  -> member
        | postfix LSQB expr RSQB                            -> index
?atom: NUMBER                                               -> number
     | STRING                                               -> string
     | TRUE                                                 -> true
     | FALSE                                                -> false
     | NULL                                                 -> null
     | NAME                                                 -> field
     | QUOTED_NAME                                          -> field
     | call
     | array
     | LBRACE (pair (COMMA pair)*)? RBRACE                  -> object
     | CASE expr? when+ (ELSE expr)? END                    -> case
     | LPAR expr RPAR                                       -> group
call: NAME LPAR (expr (COMMA expr)*)? RPAR
array: LSQB (expr (COMMA expr)*)? RSQB
pair: (STRING | NAME | QUOTED_NAME) COLON expr
when: WHEN expr THEN expr

SELECT: "select"i
FROM: "from"i
WHERE: "where"i
AS: "as"i
AND: "and"i
OR: "or"i
NOT: "not"i
IN: "in"i
BETWEEN: "between"i
LIKE: "like"i
IS: "is"i
NULL: "null"i
TRUE: "true"i
FALSE: "false"i
CASE: "case"i
WHEN: "when"i
THEN: "then"i
ELSE: "else"i
END: "end"i
NAME: /[a-z_][a-z0-9_]*/i
QUOTED_NAME: /`[^`\n]+`/
NUMBER: /\d+(\.\d+)?([eE][+-]?\d+)?/
STRING: /'(?:[^'\\]|\\.|'')*'/ | /"(?:[^"\\]|\\.)*"/
COMPARISON: "=" | "<>" | "!=" | "<=" | ">=" | "<" | ">"
PLUS: "+"
MINUS: "-"
STAR: "*"
SLASH: "/"
PERCENT: "%"
DOT: "."
COMMA: ","
COLON: ":"
LPAR: "("
RPAR: ")"
LSQB: "["
RSQB: "]"
LBRACE: "{"
RBRACE: "}"
%ignore /\s+/
"""


class RuleSyntaxError(HongshanError):
    """A rule's text is not a rule: the message says where (line and column, from 1) and what
    was expected there, e.g. ``line 1, column 27: expected an expression, got the end of the
    rule``. Answered as HTTP 400, with ``line``, ``column`` and ``expected`` in the body."""

    http_status = 400

    def __init__(self, problem: str, line: int, column: int, expected: tuple[str, ...] = ()):
        super().__init__(f"line {line}, column {column}: {problem}")
        self.problem = problem
        self.line = line
        self.column = column
        self.expected = expected

    @property
    def extensions(self) -> dict[str, Any]:
        return {"line": self.line, "column": self.column, "expected": list(self.expected)}


def _start(item: Token | Node | Any) -> int:
    # (lark types a token's positions as optional: the lexer always sets them)
    return (item.start_pos or 0) if isinstance(item, Token) else int(item.span[0])


def _end(item: Token | Node | Any) -> int:
    return (item.end_pos or 0) if isinstance(item, Token) else int(item.span[1])


def _span(items: list[Any]) -> Span:
    return (_start(items[0]), _end(items[-1]))


def _nodes(items: list[Any]) -> list[Any]:
    return [item for item in items if not isinstance(item, Token)]


def _negated(items: list[Any]) -> bool:
    return any(isinstance(item, Token) and item.type == "NOT" for item in items[1:])


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "'": "'", '"': '"'}


def unquote(token: str) -> str:
    """A string literal's value: ``'it''s'`` and ``'it\\'s'`` are ``it's``; a backslash before
    any other character stays (``'\\d+'`` is the regular expression ``\\d+``)."""
    body = token[1:-1]
    if token[0] == "'":
        body = body.replace("''", "'")
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m[1], m[0]), body, flags=re.DOTALL)


def _name(token: Token) -> str:
    text = str(token)
    return text[1:-1] if token.type == "QUOTED_NAME" else text


class _Builder(Transformer[Token, Any]):
    """Builds the tree's nodes as the parser reduces; each method is named after the rule (or
    the ``->`` alias) it builds."""

    def start(self, items: list[Any]) -> tuple[Any, Token, Node | None]:
        return items[1], items[3], items[5] if len(items) > 5 else None

    def select_items(self, items: list[Any]) -> tuple[SelectAll | Selected, ...]:
        return tuple(_nodes(items))

    def select_all(self, items: list[Token]) -> SelectAll:
        return SelectAll(_span(items))

    def select_plain(self, items: list[Node]) -> Selected:
        expr = items[0]
        key: tuple[str, ...] = ()
        if isinstance(expr, Path) and isinstance(expr.steps[-1], str):
            key = (expr.steps[-1],)  # AWS: a field keeps its own name
        elif isinstance(expr, Member):
            key = (expr.name,)
        return Selected(expr, key, expr.span)

    def select_as(self, items: list[Any]) -> Selected:
        expr, _, alias = items
        return Selected(expr, alias[0], (expr.span[0], alias[1]))

    def alias(self, items: list[Any]) -> tuple[tuple[str, ...], int]:
        names = tuple(name for name, _ in _nodes(items))
        return names, items[-1][1]

    def name(self, items: list[Token]) -> tuple[str, int]:
        return _name(items[0]), _end(items[0])

    # -- conditions ----------------------------------------------------------------------------

    def or_(self, items: list[Any]) -> Or:
        left, _, right = items
        parts = (*left.parts, right) if isinstance(left, Or) else (left, right)
        return Or(parts, _span(items))

    def and_(self, items: list[Any]) -> And:
        left, _, right = items
        parts = (*left.parts, right) if isinstance(left, And) else (left, right)
        return And(parts, _span(items))

    def not_(self, items: list[Any]) -> Not:
        return Not(items[1], _span(items))

    def compare(self, items: list[Any]) -> Compare:
        left, op, right = items
        return Compare("<>" if op == "!=" else str(op), left, right, _span(items))

    def between(self, items: list[Any]) -> Between:
        subject, low, high = _nodes(items)
        return Between(subject, low, high, _negated(items), _span(items))

    def in_list(self, items: list[Any]) -> In:
        subject, *options = _nodes(items)
        return In(subject, tuple(options), None, _negated(items), _span(items))

    def in_collection(self, items: list[Any]) -> In:
        subject, collection = _nodes(items)
        return In(subject, None, collection, _negated(items), _span(items))

    def like(self, items: list[Any]) -> Like:
        subject, pattern = _nodes(items)
        return Like(subject, pattern, _negated(items), _span(items))

    def is_null(self, items: list[Any]) -> IsNull:
        return IsNull(items[0], _negated(items), _span(items))

    # -- values --------------------------------------------------------------------------------

    def _arithmetic(self, items: list[Any]) -> Arithmetic:
        left, op, right = items
        return Arithmetic(str(op), left, right, _span(items))

    add = subtract = multiply = divide = remainder = _arithmetic

    def negative(self, items: list[Any]) -> Node:
        operand = items[1]
        span = _span(items)
        if isinstance(operand, Literal) and type(operand.value) in (int, float):
            return Literal(-operand.value, span)
        return Negative(operand, span)

    def positive(self, items: list[Any]) -> Node:
        operand: Node = items[1]
        # (unary plus changes nothing but the text the node stands for)
        if isinstance(operand, Literal):
            return Literal(operand.value, _span(items))
        return operand

    def member(self, items: list[Any]) -> Node:
        base, _, (name, end) = items
        span = (base.span[0], end)
        if isinstance(base, Path):
            return Path((*base.steps, name), span)
        return Member(base, name, span)

    def index(self, items: list[Any]) -> Node:
        base, _, index, _ = items
        span = _span(items)
        if isinstance(base, Path) and isinstance(index, Literal) and type(index.value) is int:
            return Path((*base.steps, index.value), span)
        return Index(base, index, span)

    def number(self, items: list[Token]) -> Literal:
        text = str(items[0])
        value: int | float = float(text) if ("." in text or "e" in text.lower()) else int(text)
        return Literal(value, _span(items))

    def string(self, items: list[Token]) -> Literal:
        return Literal(unquote(str(items[0])), _span(items))

    def true(self, items: list[Token]) -> Literal:
        return Literal(True, _span(items))

    def false(self, items: list[Token]) -> Literal:
        return Literal(False, _span(items))

    def null(self, items: list[Token]) -> Literal:
        return Literal(None, _span(items))

    def field(self, items: list[Token]) -> Path:
        return Path((_name(items[0]),), _span(items))

    def call(self, items: list[Any]) -> Call:
        return Call(str(items[0]).lower(), tuple(_nodes(items)), _span(items))

    def array(self, items: list[Any]) -> ArrayOf:
        return ArrayOf(tuple(_nodes(items)), _span(items))

    def object(self, items: list[Any]) -> ObjectOf:
        return ObjectOf(tuple(pair for pair in items if isinstance(pair, tuple)), _span(items))

    def pair(self, items: list[Any]) -> tuple[str, Node]:
        key = items[0]
        return (unquote(str(key)) if key.type == "STRING" else _name(key)), items[2]

    def when(self, items: list[Any]) -> tuple[Node, Node]:
        return items[1], items[3]

    def case(self, items: list[Any]) -> Case:
        subject: Node | None = None
        whens: list[tuple[Node, Node]] = []
        default: Node | None = None
        for previous, item in itertools.pairwise(items):
            if isinstance(item, tuple):
                whens.append(item)
            elif not isinstance(item, Token):
                if isinstance(previous, Token) and previous.type == "ELSE":
                    default = item
                else:
                    subject = item
        return Case(subject, tuple(whens), default, _span(items))

    def group(self, items: list[Any]) -> Node:
        inner: Node = items[1]
        return inner


_PARSER = Lark(
    GRAMMAR,
    parser="lalr",
    lexer="contextual",
    transformer=_Builder(),
    maybe_placeholders=False,
)


def parse(text: str) -> Rule:
    """The rule ``text`` says, or ``RuleSyntaxError``. ``text`` is
    ``SELECT <expressions> FROM "<topic filter>" [WHERE <condition>]``; see the package
    docstring for the language."""
    if len(text) > MAX_LENGTH:
        _fail(text, f"the rule is longer than {MAX_LENGTH} characters", MAX_LENGTH)
    try:
        # (the tree is what _Builder.start returns, which lark types as a Tree)
        parsed: tuple[Any, Token, Node | None] = cast(Any, _PARSER.parse(text))
        select, topic, where = parsed
    except UnexpectedToken as exc:
        _unexpected_token(text, exc)
    except UnexpectedCharacters as exc:
        _unexpected_character(text, exc)
    except (UnexpectedInput, LarkError) as exc:  # (lark's other errors: none known to occur)
        _fail(text, f"not a rule ({exc.__class__.__name__})", 0)
    topic_filter = unquote(str(topic))
    try:
        validate_topic_filter(topic_filter)
    except RemoteProtocolError as exc:
        _fail(text, f"{exc} (FROM takes an MQTT topic filter)", _start(topic))
    # an expression that is no field is named by its text (``SELECT deviceName()`` gives
    # ``{"deviceName()": ...}``), as AS would name it
    select = tuple(
        Selected(item.expr, (text[slice(*item.span)],), item.span)
        if isinstance(item, Selected) and not item.key
        else item
        for item in select
    )
    rule = Rule(text=text, select=select, topic_filter=topic_filter, where=where)
    _check(rule)
    return rule


def _check(rule: Rule) -> None:
    """Refuse what the grammar lets through: nesting past ``MAX_DEPTH``, a function that does
    not exist or is given too few or too many arguments."""
    roots: list[Node] = [item.expr for item in rule.select if isinstance(item, Selected)]
    if rule.where is not None:
        roots.append(rule.where)
    waiting = [(root, 1) for root in roots]
    while waiting:
        node, depth = waiting.pop()
        if depth > MAX_DEPTH:
            _fail(rule.text, f"expressions nested more than {MAX_DEPTH} deep", node.span[0])
        if isinstance(node, Call):
            _check_call(rule, node)
        waiting.extend((child, depth + 1) for child in children(node))


def _check_call(rule: Rule, call: Call) -> None:
    written = rule.text_of(call).partition("(")[0].strip()
    function = FUNCTIONS.get(call.name)
    if function is None:
        _fail(rule.text, f"no function is named {written}()", call.span[0])
    if not function.min_args <= len(call.args) <= function.max_args:
        given = len(call.args)
        problem = f"{function.name}() takes {function.arity()}, not {given}"
        _fail(rule.text, problem, call.span[0])
    if function.name == "latest" and not (
        isinstance(call.args[0], Literal) and type(call.args[0].value) is str
    ):
        # the identifier is checked against the thing model: it must be written out
        problem = "latest() takes a property's identifier in quotes"
        _fail(rule.text, problem, call.args[0].span[0])


# -- errors in words -------------------------------------------------------------------------

_WORDS = {
    "NAME": "a field name",
    "QUOTED_NAME": "a field name",
    "NUMBER": "a number",
    "STRING": "a string in quotes",
    "COMPARISON": "a comparison (=, <>, <, <=, >, >=)",
    "PLUS": "'+'",
    "MINUS": "'-'",
    "STAR": "'*'",
    "SLASH": "'/'",
    "PERCENT": "'%'",
    "DOT": "'.'",
    "COMMA": "','",
    "COLON": "':'",
    "LPAR": "'('",
    "RPAR": "')'",
    "LSQB": "'['",
    "RSQB": "']'",
    "LBRACE": "'{'",
    "RBRACE": "'}'",
    "$END": "the end of the rule",
}
_EXPRESSION_START = {
    "NAME",
    "QUOTED_NAME",
    "NUMBER",
    "STRING",
    "LPAR",
    "LSQB",
    "LBRACE",
    "MINUS",
    "PLUS",
    "NOT",
    "TRUE",
    "FALSE",
    "NULL",
    "CASE",
}
_OPERATORS = {
    "COMPARISON",
    "PLUS",
    "MINUS",
    "STAR",
    "SLASH",
    "PERCENT",
    "DOT",
    "LSQB",
    "AND",
    "OR",
    "NOT",
    "IN",
    "BETWEEN",
    "LIKE",
    "IS",
}


def _in_words(terminals: set[str], after_from: bool) -> tuple[str, ...]:
    """What the parser would have accepted, in words: the dozen ways an expression may start
    are "an expression", the operators that may follow one are "an operator"."""
    words: list[str] = []
    if after_from and "STRING" in terminals:
        words.append("a topic filter in quotes")
        terminals = terminals - {"STRING"}
    if {"NAME", "NUMBER", "STRING", "LPAR"} <= terminals:
        words.append("an expression")
        terminals = terminals - _EXPRESSION_START
    if {"COMPARISON", "PLUS", "AND", "OR"} <= terminals:
        words.append("an operator")
        terminals = terminals - _OPERATORS
    words.extend(_WORDS.get(terminal, terminal) for terminal in terminals)
    return tuple(sorted(set(words), key=_word_order))


def _word_order(word: str) -> tuple[int, str]:
    # keywords and punctuation first, then the words that stand for many, the end last
    rank = 2 if word.startswith("the end") else (1 if word.startswith("a") else 0)
    return rank, word


def _listed(words: tuple[str, ...]) -> str:
    if not words:
        return "nothing more"
    if len(words) == 1:
        return words[0]
    return f"{', '.join(words[:-1])} or {words[-1]}"


def _after_from(text: str, position: int) -> bool:
    return re.search(r"\bfrom\s*$", text[:position], re.IGNORECASE) is not None


def _unexpected_token(text: str, exc: UnexpectedToken) -> NoReturn:
    token = exc.token
    at_end = token.type == "$END"
    position = len(text.rstrip()) if at_end else _start(token)
    accepts = cast(Callable[[], set[str]], exc.interactive_parser.accepts)
    try:
        accepted = set(accepts())
    except LarkError:
        accepted = set(exc.expected)
    expected = _in_words(accepted, _after_from(text, position))
    got = "the end of the rule" if at_end else repr(str(token))
    _fail(text, f"expected {_listed(expected)}, got {got}", position, expected)


def _unexpected_character(text: str, exc: UnexpectedCharacters) -> NoReturn:
    position = exc.pos_in_stream or 0
    char = text[position] if position < len(text) else ""
    expected = _in_words(set(exc.allowed or ()), _after_from(text, position))
    if char in "'\"":
        problem = "a string that is not closed"
    elif char == "`":
        problem = "a quoted field name that is not closed"
    else:
        problem = f"unexpected character {char!r}; expected {_listed(expected)}"
    _fail(text, problem, position, expected)


def _fail(text: str, problem: str, position: int, expected: tuple[str, ...] = ()) -> NoReturn:
    position = max(0, min(position, len(text)))
    line = text.count("\n", 0, position) + 1
    column = position - (text.rfind("\n", 0, position) + 1) + 1
    raise RuleSyntaxError(problem, line, column, expected) from None
