"""The rule language: SQL as Alibaba Cloud IoT's rules engine and AWS IoT write it.

A rule reads the messages published on the topics its FROM filter matches and, for each one
whose WHERE condition holds, makes the object its SELECT list describes::

    SELECT deviceName() AS device, values.Temperature AS temperature
    FROM "$things/+/+/properties"
    WHERE values.Temperature > 38 AND deviceName() IN ('lamp-1', 'lamp-2')

``sql.parse`` reads a rule's text into a ``tree.Rule``; ``compile.compile`` makes it a
``CompiledRule`` of Python closures (nothing is ``eval``'d) whose ``run(message)`` answers the
SELECTed object, or None when the WHERE does not hold — then ``why_not(message)`` names the
smallest part of the WHERE that did not (``b < 2`` of ``a > 1 AND b < 2``). A message is a
``message.RuleInput``: its topic, its decoded JSON payload, when it arrived, the sender's
client id, its device, the device's tags and latest property values.

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

What a rule reads
-----------------

``references.references(rule)`` names the payload fields a rule reads (the first name of each
path), ``references.fields_under(rule, field)`` the names it reads inside one of them, and
``references.check_against(rule, model, under=...)`` refuses (``RuleRefused``, HTTP 400,
naming it) a rule that names a property the product's thing model lacks — in
``latest('<identifier>')``, or inside the fields where the rule's source keeps property values
(``values`` on the platform's ``$things`` topics). A source checks the rest of its payload's
shape itself: on Alibaba's property-post topic, where the payload is the rules engine's
*thing-model data* (``items.<identifier>.value``), the Alink dialect's source
(``dialects/alink/rule_data.py``) also refuses ``WHERE Temperature > 30``.

Values
------

A value is a JSON value — number, string, boolean, null, array, object — or *Undefined*: no
value, what a missing field reads as (AWS's Undefined). Undefined is never an error:

- A field that is missing, or a path through something that is not an object (``a.b`` where
  ``a`` is 5), an index past an array's end, a function given a wrong argument, a division by
  zero: all Undefined.
- A comparison with Undefined is Undefined, and a WHERE holds only when it is *true*: a rule
  whose condition reads a missing field does not run (AWS: "the WHERE is false").
- ``AND``, ``OR`` and ``NOT`` are three-valued, as in SQL: ``false AND x`` is false and ``true
  OR x`` true whatever ``x``; otherwise Undefined spreads. So ``a > 1 OR b > 1`` runs when
  ``a`` is 2 and ``b`` is missing. A boolean, or the string ``'true'``/``'false'`` in any case,
  is a truth value; any other value (a number too: ``WHERE items.Switch.value`` does not run
  on 1 — write ``= 1``) is Undefined.
- ``IS NULL`` is true for null *and* for a missing field (both say "no value here");
  ``isNull(x)`` and ``isUndefined(x)`` tell them apart.
- In the SELECTed object an Undefined value is left out (``SELECT a, b`` on ``{"a": 1}`` gives
  ``{"a": 1}``), in arrays and objects built by the rule too.

Types are mixed as AWS IoT mixes them:

- ``< <= > >=`` and ``BETWEEN`` compare numbers; a string that is a number (``'10'``,
  ``'-1.5'``, ``'5E-12'``) counts as one, any other value makes the comparison Undefined
  (two strings are not ordered: ``'b' > 'a'`` is Undefined).
- ``=`` and ``<>`` (or ``!=``) compare values of the same type: numbers by value (``1 = 1.0``),
  strings exactly (case counts), arrays item by item, objects key by key in any order, ``null
  = null``. Values of different types are never equal: ``'5' = 5`` is false, ``true = 1``
  false. ``IN`` is ``=`` with each candidate; ``CASE v WHEN x`` too.
- ``+`` adds numbers, and joins strings when either side is one (``'a' + 1`` is ``'a1'``, an
  array or object joins as its JSON). ``- * / %`` take numbers or numeric strings.
- An int divided by an int is an int, cut toward zero: ``7 / 2`` is 3, ``-7 / 2`` is -3 (AWS
  and Java). With a float on either side the result is a float: ``7 / 2.0`` is 3.5. ``%``
  and ``mod()`` keep the sign of the dividend (``-7 % 3`` is -1). Numbers outside a float's
  range are Undefined.
- ``LIKE`` matches a whole string: ``%`` any run of characters, ``_`` exactly one, and
  ``\\`` before either makes it literal; case counts. A number is matched as its text; an
  array, an object, null or Undefined make it Undefined.

Functions
---------

Of the message and its device: ``deviceName()``, ``productKey()`` (Undefined for a message of
no known device); ``clientid()`` (``"n/a"`` without one, as AWS); ``topic()``, the whole topic,
and ``topic(n)``, its n-th level counted from 1 — a topic that starts with ``/``, as
Alibaba's, skips the empty level before it: ``topic(1)`` of ``/a1B2/lamp/user/update`` is
``a1B2``; ``timestamp()`` and ``timestamp_utc()``, when the message arrived (ms since the
epoch), or with a pattern, that time formatted in UTC (Alibaba's ``timestamp(format)`` writes
its region's time; the platform keeps to UTC); ``attribute(key)``, the device's tag;
``latest('identifier')``, the device's latest value of one of its properties (the identifier
written in quotes: it is checked against the thing model); ``newuuid()``. On an output
another rule handed to this one's input (an action of type ``rule``), ``topic()`` is
``$rules/<this rule's name>``, ``clientid()`` ``"n/a"``, and the device is the one the first
message spoke for.

Numbers: ``abs(x)``; ``round(x)`` to the nearest int, halves away from zero (``round(-1.5)``
is -2, as AWS); ``floor(x)``, ``ceil(x)``; ``mod(a, b)``; ``power(a, b)``; ``nanvl(x,
default)``, ``x`` unless it is null or Undefined.

Strings and collections, with AWS's conversions (a number or boolean is its text, an array
or object its JSON): ``concat(a, b, …)`` (with an array among them, one array of all);
``lower(s)``, ``upper(s)``; ``substring(s, start[, end])`` from 0, the end excluded, cut to
the string; ``startswith(s, prefix)``, ``endswith(s, suffix)``; ``replace(s, old, new)``;
``regexp_matches(s, pattern)``, whether a match is found anywhere in ``s`` (Python's regular
expressions; an invalid one is Undefined); ``length(x)``; ``get(x, key)``, an array's item or
a string's character by its index from 0, an object's value by its key; ``isNull(x)``,
``isUndefined(x)``.

Dates: ``format_date(ms, pattern[, zone])`` writes a time with Java's pattern letters —
``yyyy yy MM MMM MMMM dd HH hh mm ss SSS a E EEEE Z X XXX``, text in single quotes
(``'T'``), ``''`` for a quote — in ``zone``: ``UTC`` (when not given), ``GMT+8``,
``+08:00`` or a name as ``Asia/Shanghai``.
"""
