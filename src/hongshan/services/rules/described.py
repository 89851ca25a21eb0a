"""What an action would have done with a rule's output, said rather than done: a shadow
rule's trace, a backtest's would-be fires, a rule file's expected actions."""

from __future__ import annotations

from typing import Any

import msgspec

from hongshan.rules.definition import (
    RULE_INPUT,
    ForwardAction,
    InvokeAction,
    RepublishAction,
    SetAction,
    WebhookAction,
)
from hongshan.services.rules.actions import ActionFailed, TopicTemplate


def describe(action: Any, output: dict[str, Any]) -> dict[str, Any]:
    """What ``action`` (an action's settings, of any type) would do with ``output``: its
    settings as JSON, with what it would send — a republish's topic filled in and its
    ``payload``, a webhook's ``body``, a set's ``values`` and an invoke's ``params`` (their
    own when they name some, else the output), a rule action's ``topic`` and ``payload`` (the
    message the named rule would run on), and ``output`` for any other type."""
    described: dict[str, Any] = msgspec.to_builtins(action)
    match action:
        case RepublishAction():
            try:
                described["topic"] = TopicTemplate(action.topic).fill(output)
            except ActionFailed as exc:
                described["error"] = str(exc)
            described["payload"] = output
        case WebhookAction():
            described["body"] = output
        case SetAction():
            described["values"] = output if action.values is None else action.values
        case InvokeAction():
            described["params"] = output if action.params is None else action.params
        case ForwardAction():
            described["topic"] = RULE_INPUT + action.rule
            described["payload"] = output
        case _:
            described["output"] = output
    return described
