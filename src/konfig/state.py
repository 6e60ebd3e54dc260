"""What the app shares, typed: one ``AppState`` per app.

``create_app`` makes it with what exists from the start (settings, keys, policies, hooks), its
wiring adds the delivery layer and the UI, and the lifespan adds what it starts (the engine, the
sessions, the group commit, the rate limits, the backup scheduler), anew each time it starts.
Reading one of those before it is made raises an ``AttributeError`` that says so.

The app ``create_app`` returns holds it as ``state`` (``konfig.dispatch.Dispatcher``), the read
and write paths from the start, and FastAPI's routes find it with ``state_of(request)``
(``app_state`` for the FastAPI app, of which it is an attribute). Nothing goes through
Starlette's ``State`` (``app.state``, left empty), which answers every read through
``__getattr__`` after a failed lookup, at tens of times the cost of reading a slot.

The feature types are named for mypy only: this module imports no feature, so any module may
import it without a cycle.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.requests import HTTPConnection

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

    from konfig.auth.logins import LoginCache
    from konfig.auth.service import TokenPolicy
    from konfig.backups.scheduler import BackupScheduler
    from konfig.backups.service import Backups
    from konfig.configs.writes import CommitHook, EntryWriter
    from konfig.db.outage import OutageLog
    from konfig.db.session import Notices, RefusalTrace
    from konfig.delivery.wiring import Delivery
    from konfig.environments.search import SearchIndex
    from konfig.metrics import Metrics
    from konfig.ratelimit import RateLimits
    from konfig.revisions.writer import WritePolicy
    from konfig.security.jwt import TokenSigner
    from konfig.settings import Settings
    from konfig.sso.oidc import Providers
    from konfig.tokens.cache import TokenCache
    from konfig.web.routes import UIState
    from konfig.webhooks.worker import WebhookWorker

# Called with the other changes a transaction committed (``konfig.db.session.record_change``).
ChangeHook = Callable[[Sequence[object]], Awaitable[None]]

_WIRED = "create_app wires it after the state is made"
_STARTED = "the app's lifespan makes it when it starts, and it has not started"
_ROUTED = "made with the features' routes, included after start-up (konfig.routing)"


@dataclass(slots=True, eq=False)
class AppState:
    """Everything the app's parts share; one per app."""

    # Made by create_app.
    settings: Settings
    metrics: Metrics
    outages: OutageLog  # the database out of reach: one log line per kind a minute
    signer: TokenSigner
    token_policy: TokenPolicy
    write_policy: WritePolicy  # its keyring is the app's
    backups: Backups  # ``backups.status``: per tenant, last success and failures (/metrics)
    # Called with the list of ``Committed`` revisions after each transaction that wrote some.
    commit_hooks: list[CommitHook] = field(default_factory=list)
    change_hooks: list[ChangeHook] = field(default_factory=list)
    # What a refused request leaves behind after its rollback (``konfig.db.session.write_trace``).
    refusal_traces: list[RefusalTrace] = field(default_factory=list)
    # Set by the delivery layer while replicas hear each other through PostgreSQL: what a
    # committing transaction sends them, inside it (``konfig.db.session.notify_within``).
    notices: Notices | None = None
    # Set when shutdown starts (SIGTERM, see konfig.ops.server): /ready answers 503 and
    # long-lived streams, awaiting the event, end cleanly while the server drains. The lifespan
    # makes both anew when it starts.
    shutting_down: bool = False
    shutdown_event: asyncio.Event = field(default_factory=asyncio.Event, repr=False)
    # What the server runs once it listens (``konfig.ops.server``): the features' routes are
    # included then (``konfig.routing.DeferredRoutes``).
    after_start: list[Callable[[], Coroutine[Any, Any, None]]] = field(default_factory=list)

    # Wired by create_app once the state exists.
    delivery: Delivery = field(init=False, repr=False)
    token_cache: TokenCache = field(init=False, repr=False)  # the delivery layer's
    login_cache: LoginCache = field(init=False, repr=False)  # the delivery layer's
    ui: UIState = field(init=False, repr=False)
    # Made with the features' routes, which only they and the UI's pages use.
    search_index: SearchIndex = field(init=False, repr=False)  # per tenant, for /search
    oidc: Providers = field(init=False, repr=False)  # OpenID providers' metadata and keys

    # Made by the lifespan.
    engine: AsyncEngine = field(init=False, repr=False)
    # Sessions bound to it begin their transactions as writers (SQLite: BEGIN IMMEDIATE).
    write_engine: AsyncEngine = field(init=False, repr=False)
    sessionmaker: async_sessionmaker[AsyncSession] = field(init=False, repr=False)
    entry_writer: EntryWriter = field(init=False, repr=False)
    rate_limits: RateLimits = field(init=False, repr=False)
    backup_scheduler: BackupScheduler = field(init=False, repr=False)
    webhooks: WebhookWorker = field(init=False, repr=False)

    if not TYPE_CHECKING:  # hidden from mypy, which would otherwise allow any attribute

        def __getattr__(self, name: str) -> Any:
            """Called only when a field has no value yet: say which, and when it gets one."""
            if name not in _LATER:
                raise AttributeError(f"'AppState' object has no attribute {name!r}")
            if name in _MADE_BY_LIFESPAN:
                when = _STARTED
            else:
                when = _ROUTED if name in _MADE_WITH_ROUTES else _WIRED
            raise AttributeError(f"AppState.{name} is not set yet: {when}")


_MADE_BY_LIFESPAN = frozenset(
    {
        "engine",
        "write_engine",
        "sessionmaker",
        "entry_writer",
        "rate_limits",
        "backup_scheduler",
        "webhooks",
    }
)
_MADE_WITH_ROUTES = frozenset({"oidc", "search_index"})
_LATER = _MADE_BY_LIFESPAN | _MADE_WITH_ROUTES | {"delivery", "token_cache", "login_cache", "ui"}


# The app's attribute that holds it (``konfig.db.session.get_session`` reads it by this name).
ATTRIBUTE = "konfig_state"


def attach(app: Starlette, state: AppState) -> None:
    """Make ``state`` the app's."""
    setattr(app, ATTRIBUTE, state)


def app_state(app: Starlette) -> AppState:
    """The app's ``AppState``."""
    state: AppState = getattr(app, ATTRIBUTE)
    return state


def state_of(connection: HTTPConnection) -> AppState:
    """The ``AppState`` of the app answering this request (or WebSocket)."""
    state: AppState = getattr(connection.app, ATTRIBUTE)
    return state
