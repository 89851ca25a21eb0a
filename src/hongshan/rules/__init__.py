"""The rule language: SQL as Alibaba Cloud IoT's rules engine and AWS IoT write it.

A rule reads the messages published on the topics its FROM filter matches and, for each one
whose WHERE condition holds, makes the object its SELECT list describes::

    SELECT deviceName() AS device, items.Temperature.value AS temperature
    FROM "/+/+/thing/event/property/post"
    WHERE items.Temperature.value > 38 AND deviceName() IN ('lamp-1', 'lamp-2')

``sql.parse`` reads a rule's text into a ``tree.Rule``.

Syntax
------

``SELECT <items> FROM "<topic filter>" [WHERE <condition>]``. Keywords are written in any
case; comments are not part of the language (as in AWS).

- **FROM** takes an MQTT topic filter in double quotes (Alibaba) or single ones (AWS), with
  ``+`` for one level and ``#`` for the rest.
- **SELECT** items are separated by commas: ``*`` (the payload's fields), or an expression with
  an optional ``AS name``. ``AS a.b`` makes a nested object (AWS). Without ``AS``, a field keeps
  its last name (``items.Temperature.value`` gives ``value``) and any other expression is named
  by its text (``deviceName()`` gives ``"deviceName()"``).
- **Fields** are read from the payload with dots and brackets: ``state.desired.color``,
  ``a.b.c[0].d`` (Alibaba), ``get(a, 'my-key')`` (AWS). A name that is a keyword or not a plain
  identifier is quoted in backticks: `` `my-key` ``.
- **Literals**: numbers (``30``, ``2.5``, ``1e3``), strings in single quotes (``'it''s'`` or
  ``'it\\'s'``) or double quotes, ``true``, ``false``, ``null``, arrays ``[1, 'a']`` and
  objects ``{'k': v}`` (AWS).
- **Operators**, from the loosest: ``OR``; ``AND``; ``NOT``; the comparisons ``= <> != < <= >
  >=``, ``[NOT] BETWEEN a AND b``, ``[NOT] IN (a, b, …)`` or ``[NOT] IN <array>``, ``[NOT]
  LIKE 'pattern'``, ``IS [NOT] NULL``; ``+ -``; ``* / %``; unary ``-``. Parentheses group.
  ``CASE v WHEN x THEN r … [ELSE e] END`` compares ``v`` with each ``x``; ``CASE WHEN cond
  THEN r … END`` tests conditions.
- **Functions** are called by name, in any case: ``deviceName()``, ``topic(2)``.

A text that is no rule raises ``sql.RuleSyntaxError`` (HTTP 400) naming the line and column
(from 1) and what was expected there: ``line 1, column 28: expected an expression, got the end
of the rule``. A rule is at most 16,384 characters and nests expressions at most 100 deep.
"""
