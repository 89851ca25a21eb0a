"""Helpers of the alarms' tests: API answers, a registry that refuses notifications owed."""

from __future__ import annotations

from typing import Any

import httpx
import sqlalchemy as sa

from hongshan.store.registry.engine import create_engine
from registry_databases import RegistryDatabase


def created(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def problem(response: httpx.Response, status: int, *words: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    for word in words:
        assert word in body["detail"], (word, body)
    return body


def refuse_deliveries(registry_db: RegistryDatabase, refuse: bool) -> None:
    """A trigger of the database's own that fails every insert of a notification owed
    (``alarm_deliveries``), as a full disk would, or (``refuse`` False) none."""
    engine = create_engine(registry_db.url, schema=registry_db.schema)
    sqlite = registry_db.schema is None
    try:
        with engine.begin() as db:
            if not refuse:
                db.execute(
                    sa.text(
                        "DROP TRIGGER no_deliveries" + ("" if sqlite else " ON alarm_deliveries")
                    )
                )
            elif sqlite:
                db.execute(
                    sa.text(
                        "CREATE TRIGGER no_deliveries BEFORE INSERT ON alarm_deliveries "
                        "BEGIN SELECT RAISE(ABORT, 'deliveries refused'); END"
                    )
                )
            else:
                db.execute(
                    sa.text(
                        "CREATE OR REPLACE FUNCTION refuse() RETURNS trigger AS $$ BEGIN "
                        "RAISE EXCEPTION 'deliveries refused'; END $$ LANGUAGE plpgsql"
                    )
                )
                db.execute(
                    sa.text(
                        "CREATE TRIGGER no_deliveries BEFORE INSERT ON alarm_deliveries "
                        "FOR EACH ROW EXECUTE FUNCTION refuse()"
                    )
                )
    finally:
        engine.dispose()
