"""Schemathesis against the real app: every operation of ``/openapi.json``, with all its checks.

Run as a tenant's owner (with namespaces, entries, a user, a service account, a token and a
backup seeded, so the paths with ids reach real objects) and unauthenticated, on SQLite and on
PostgreSQL. Any finding fails the test: a 500, a status or header the document does not declare,
a body that does not match its schema, a bad request accepted, a good one refused for anything
but a rule of the server's that JSON Schema cannot say (``POSITIVE_ANSWERS``).

Every phase runs: the schema's examples, coverage (boundaries, wrong types, missing and unknown
parameters, undeclared methods), fuzzing, and short stateful sequences that follow the links
between operations (a created object read, changed and deleted). Bounded for CI: a few examples
per operation, derandomized so a run repeats; PostgreSQL draws the full count, SQLite fewer (the
document and its answers do not depend on the database, and every phase still runs there).

What it costs: most of it is schemathesis making cases (its coverage phase above all), not the
app answering them. Under `make test`'s coverage a run costs 2.2-2.6 times its CPU (the anonymous
SQLite run: 25 s alone, 42 s traced with `concurrency = thread`, 56-65 s with greenlet too): on
Python 3.11 a tracer slows every line, hypothesis's and schemathesis's included, and greenlet
support (which the app's SQLAlchemy work needs to be measured) looks up the current greenlet on
every traced call. With three workers on two cores, wall time stretches that again.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from schemathesis import engine
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import events
from schemathesis.python import asgi

from konfig.app import create_app
from konfig.dispatch import Dispatcher
from tests.conftest import PASSWORD, Backend, make_settings, wipe

MAX_EXAMPLES = {"postgres": 8, "sqlite": 3}
EMAIL = "owner@fuzz.example.com"


@dataclass(frozen=True)
class Seeded:
    """What the owner's run aims its ids at."""

    namespace_ids: list[str]
    namespace_names: list[str]
    keys: list[str]
    user_ids: list[str]
    service_account_ids: list[str]
    token_ids: list[str]
    backup_ids: list[str]


def _asgi(app: Dispatcher) -> Any:
    """``app`` for schemathesis, whose ASGI types want dict messages (Starlette's are any
    MutableMapping: the same protocol, typed wider)."""
    return app


def _seed(app: Dispatcher) -> Seeded:
    with asgi.get_client(_asgi(app)) as http:

        def ok(answer: Any) -> Any:
            assert answer.status_code < 300, answer.text
            return answer.json() if answer.content else None

        ok(
            http.post(
                "/api/v1/auth/register",
                json={"name": "fuzz", "email": EMAIL, "password": PASSWORD},
            )
        )
        token = ok(http.post("/api/v1/auth/login", json={"email": EMAIL, "password": PASSWORD}))
        http.headers["Authorization"] = f"Bearer {token['access_token']}"
        shared = ok(http.post("/api/v1/namespaces", json={"name": "shared"}))
        ok(http.post("/api/v1/namespaces", json={"name": "payments"}))
        production = ok(
            http.post(
                "/api/v1/namespaces",
                json={"name": "payments/production", "includes": ["shared"]},
            )
        )
        entries: list[dict[str, Any]] = [
            {"key": "pool_size", "value": 10, "value_type": "number"},
            {"key": "db_password", "value": "s3cret", "is_secret": True},
            {
                "key": "mode",
                "value": "fast",
                "value_type": "select",
                "validation_schema": {"options": ["fast", "safe"]},
            },
        ]
        for entry in entries:
            ok(http.post(f"/api/v1/namespaces/{production['id']}/configs", json=entry))
        ok(
            http.post(
                f"/api/v1/namespaces/{shared['id']}/configs", json={"key": "region", "value": "eu"}
            )
        )
        user = ok(
            http.post(
                "/api/v1/users",
                json={"email": "editor@fuzz.example.com", "password": PASSWORD, "role": "editor"},
            )
        )
        account = ok(http.post("/api/v1/service-accounts", json={"name": "deployer"}))
        minted = ok(
            http.post(
                "/api/v1/tokens",
                json={
                    "service_account_id": account["id"],
                    "name": "ci",
                    "scopes": [{"namespaces": "payments/*", "permissions": ["read"]}],
                },
            )
        )
        backup = ok(http.post("/api/v1/backups"))
    return Seeded(
        namespace_ids=[production["id"], shared["id"]],
        namespace_names=["payments/production", "shared", "payments"],
        keys=[entry["key"] for entry in entries],
        user_ids=[user["id"]],
        service_account_ids=[account["id"]],
        token_ids=[minted["id"]],
        backup_ids=[backup["id"]],
    )


@pytest.fixture
async def fuzzed_app(backend: Backend, tmp_path: Path) -> Any:
    settings = make_settings(
        backend.url,
        tmp_path,
        rate_limit_per_minute=1_000_000,
        read_rate_limit_per_minute=1_000_000,
        login_rate_limit="1000000/minute",
        login_address_rate_limit="1000000/minute",
    )
    app = create_app(settings)
    try:
        yield app
    finally:
        await asyncio.to_thread(asgi.shutdown_lifespans)
        await wipe(backend.url)


# What a schema-valid request may still be answered, besides success: the server's state
# decides 404, 409 and 412 (an If-Match other than the current version), and its rules beyond
# what JSON Schema can say decide 422: a cursor it never gave out, a value that does not fit the
# entry's type, includes naming namespaces that do not exist, explain with a format other than
# JSON, a wrong current password, an import's syntax. Every other check runs as shipped.
POSITIVE_ANSWERS = ["2xx", "3xx", "401", "403", "404", "409", "412", "422", "429", "5xx"]
# A request the schema says is wrong may be refused by its precondition before its body is read.
NEGATIVE_ANSWERS = ["400", "401", "403", "404", "405", "406", "409", "412", "415", "422"]
NEGATIVE_ANSWERS += ["428", "429", "5xx"]


def _config(seeded: Seeded | None, examples: int) -> SchemathesisConfig:
    config: dict[str, Any] = {
        "seed": 14,
        "generation": {"max-examples": examples, "deterministic": True},
        "checks": {
            "positive_data_acceptance": {"expected-statuses": POSITIVE_ANSWERS},
            "negative_data_rejection": {"expected-statuses": NEGATIVE_ANSWERS},
        },
        "phases": {"stateful": {"max-steps": 6}},
        # An event stream ends only when the client leaves: read its first event, then leave.
        "operations": [
            {
                "include-path": "/api/v1/config/{name}/events",
                "max-stream-events": 1,
                "request-timeout": 1,
            }
        ],
    }
    if seeded is not None:
        bindings: dict[str, list[str]] = {
            "path.namespace_id": seeded.namespace_ids,
            "path.key": seeded.keys,
            "path.user_id": seeded.user_ids,
            "path.service_account_id": seeded.service_account_ids,
            "path.token_id": seeded.token_ids,
            "path.backup_id": seeded.backup_ids,
            "path.name": seeded.namespace_names,
        }
        names = {"values": seeded.namespace_names}
        config["dictionaries"] = {
            key.replace(".", "_"): {"values": values} for key, values in bindings.items()
        } | {"names": names}
        config["parameters"] = {
            key: {"dictionary": key.replace(".", "_"), "probability": 0.8} for key in bindings
        } | {
            # Names in a body must name namespaces that exist (the schema says how they look).
            "body.includes[*]": {"dictionary": "names"},
            "body.namespaces[*]": {"dictionary": "names"},
        }
    return SchemathesisConfig.from_dict(config)


class _OwnerLogin:
    """A fresh access token whenever the last one stops working (a fuzzed logout ends it)."""

    app: Dispatcher

    def get(self, case: Any, context: Any) -> str:
        with asgi.get_client(_asgi(self.app)) as http:
            answer = http.post("/api/v1/auth/login", json={"email": EMAIL, "password": PASSWORD})
        assert answer.status_code == 200, answer.text
        return str(answer.json()["access_token"])

    def set(self, case: Any, token: str, context: Any) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {token}"}


def _answer(recorder: Any, case_id: str) -> str:
    interaction = recorder.interactions.get(case_id)
    response = None if interaction is None else interaction.response
    if response is None:
        return "no response"
    return f"{response.status_code} {response.content[:300]!r}"


def _findings(schema: Any) -> list[str]:
    """Every failed check and every error of a whole schemathesis run, one text each."""
    found: list[str] = []
    for event in engine.from_schema(schema).execute():
        if isinstance(event, events.FatalError):
            raise event.exception
        if isinstance(event, events.NonFatalError):
            found.append(f"{event.label}: error {event.info.format()}")
        elif isinstance(event, events.ScenarioFinished):
            for case_id, checks in event.recorder.checks.items():
                for check in checks:
                    if check.failure_info is not None:
                        failure = check.failure_info.failure
                        found.append(
                            f"{event.label} [{check.name}] {failure.title}: {failure.message}\n"
                            f"    {check.failure_info.code_sample}\n"
                            f"    -> {_answer(event.recorder, case_id)}"
                        )
        elif isinstance(event, events.EngineFinished):
            found.extend(f"{failure.title}: {failure.message}" for failure in event.failures)
    return sorted(set(found))


# The document and its answers do not depend on the database: SQLite and PostgreSQL (row-level
# security) are enough, and MariaDB would add four minutes of test time to the suite.
@pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)
@pytest.mark.parametrize("who", ["owner", "anonymous"])
def test_every_operation_answers_as_documented(
    fuzzed_app: Dispatcher, backend: Backend, who: str
) -> None:
    seeded = _seed(fuzzed_app) if who == "owner" else None
    config = _config(seeded, MAX_EXAMPLES[backend.name])
    schema = schemathesis.openapi.from_asgi("/openapi.json", fuzzed_app, config=config)
    if seeded is not None:
        provider = type("OwnerLogin", (_OwnerLogin,), {"app": fuzzed_app})
        schema.auth()(provider)
    findings = _findings(schema)
    assert not findings, f"{len(findings)} findings:\n" + "\n".join(findings)
