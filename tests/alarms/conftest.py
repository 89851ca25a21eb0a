"""What the alarms' tests share: a mail server and webhook receivers."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from mail_receiver import MailReceiver
from webhook_receiver import WebhookReceiver


@pytest.fixture
def mail() -> Iterator[MailReceiver]:
    receiver = MailReceiver()
    yield receiver
    receiver.close()


@pytest.fixture
def receivers() -> Iterator[Callable[..., WebhookReceiver]]:
    made: list[WebhookReceiver] = []

    def make(statuses: list[int] | None = None) -> WebhookReceiver:
        receiver = WebhookReceiver(statuses or [])
        made.append(receiver)
        return receiver

    yield make
    for receiver in made:
        receiver.close()
