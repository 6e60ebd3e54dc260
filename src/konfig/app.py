"""The application factory."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import timedelta
from functools import partial
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi_offline import FastAPIOffline

from konfig import __version__, openapi
from konfig.audit.refusals import denial_trace
from konfig.auth.service import TokenPolicy
from konfig.backups.scheduler import BackupScheduler
from konfig.backups.service import Backups
from konfig.backups.store import BackupStore
from konfig.configs.write_path import WritePath
from konfig.configs.writes import EntryWriter
from konfig.db.engine import keep_statistics, make_engine, make_sessionmaker, refresh_statistics
from konfig.db.outage import OutageLog
from konfig.db.roles import check_role, tenant_owned
from konfig.db.session import WRITE_OPTION
from konfig.delivery.ofrep_router import router as ofrep_router
from konfig.delivery.wiring import Delivery
from konfig.dispatch import Dispatcher, Wrapper
from konfig.errors import install_error_handlers
from konfig.methods import AllowedMethods, RouteTable
from konfig.metrics import Metrics
from konfig.middleware import BodyLimitMiddleware, DatabaseOutageMiddleware
from konfig.models import metadata
from konfig.ops.middleware import CorsMiddleware, Exchange
from konfig.ops.router import router as ops_router
from konfig.paths import API_PREFIX
from konfig.ratelimit import RateLimits
from konfig.revisions.writer import write_policy
from konfig.routing import DeferredRoutes, RoutesOnFirstUse, include_once
from konfig.security import passwords
from konfig.security.jwt import TokenSigner
from konfig.settings import Settings, check_production, get_settings, secret_key
from konfig.state import AppState, app_state, attach
from konfig.web.routes import mount_ui
from konfig.webhooks.worker import WebhookWorker

log = logging.getLogger("konfig")


def create_app(settings: Settings | None = None) -> Dispatcher:
    """Build the app; the engine and everything stateful is made in the lifespan.

    Where a request goes is named in ``konfig.dispatch``: the read path, the single-entry write
    path, or FastAPI's routes, each behind the same ``wrappers``.
    """
    settings = settings or get_settings()
    check_production(settings)
    passwords.configure(time_cost=settings.argon2_time_cost, memory_kib=settings.argon2_memory_kib)
    api = _fastapi(settings)
    state = _share_state(api, settings)
    deferred = _include_routes(api, state)
    delivery = Delivery(api, settings, state.write_policy.keyring)
    delivery.install()
    state.metrics.active_watchers.set_function(lambda: delivery.read_path.waiting)
    # What only FastAPI's routes need: OPTIONS, HEAD, 405 and 415 answered alike for every path.
    table = RouteTable(api)
    api.add_middleware(AllowedMethods, table=table)
    # Outside it: the table sees the features' routes. Built as soon as they are in, as the
    # first request after them would.
    api.add_middleware(RoutesOnFirstUse, routes=deferred, without=_LIVE_FROM_START)
    deferred.listeners.append(table.warm)
    state.after_start.append(deferred.load_in_background)
    mount_ui(api, delivery)  # after: its pages are included, outside AllowedMethods, on first use
    return Dispatcher(
        api,
        read_path=delivery.read_path,
        ofrep=delivery.ofrep,
        write_path=WritePath(state, fallback=api),
        wrappers=wrappers(settings, state),
        guards=guards(settings, state),
    )


def _fastapi(settings: Settings) -> FastAPI:
    """The FastAPI app, its lifespan, error handlers and OpenAPI document."""
    docs = settings.show_docs
    # FastAPIOffline insists on an OpenAPI URL: without docs, the plain FastAPI serves none.
    api = (FastAPIOffline if docs else FastAPI)(
        title="Konfig",
        version=__version__,
        summary="Typed, versioned, encrypted configuration for microservices.",
        lifespan=_lifespan(settings),
        docs_url="/docs" if docs else None,
        redoc_url="/redoc" if docs else None,
        openapi_url="/openapi.json" if docs else None,
        swagger_ui_parameters={"persistAuthorization": True},
    )
    install_error_handlers(api)
    openapi.install(api)
    return api


def _share_state(api: FastAPI, settings: Settings) -> AppState:
    """What routes and services share (``konfig.state``), as it is before the lifespan starts."""
    signer = TokenSigner(secret_key(settings), settings.jwt_issuer, settings.jwt_audience)
    policy = write_policy(settings)
    state = AppState(
        settings=settings,
        metrics=Metrics(),
        outages=OutageLog(),
        signer=signer,
        token_policy=TokenPolicy(
            signer=signer,
            access_lifetime=timedelta(minutes=settings.access_token_minutes),
            refresh_lifetime=timedelta(days=settings.refresh_token_days),
        ),
        write_policy=policy,
        backups=Backups(
            store=BackupStore(settings.data_dir / "backups"),
            policy=policy,
            keep=settings.backup_keep,
        ),
        # What a refused request leaves behind once its work is rolled back: a denial's row.
        refusal_traces=[denial_trace],
    )
    state.backups.status.listeners.append(state.metrics.backup_event)
    attach(api, state)
    return state


def _include_routes(api: FastAPI, state: AppState) -> DeferredRoutes:
    """Every feature's routes under ``/api/v1``, after start-up (``konfig.routing.
    DeferredRoutes``, started by ``konfig.ops.server``, or by the first request that could
    need them), and the operations routes beside them, at once (each router with its full
    prefix, once per process: see ``konfig.routing``)."""
    deferred = DeferredRoutes(api, partial(_api_routers, state), prefix=API_PREFIX)
    # OFREP and the read path are documented here and answered by konfig.dispatch.
    include_once(api, ofrep_router, ops_router)
    deferred.mark()
    # The document lists every route: a caller in the process (not only /openapi.json) gets
    # it whole.
    build = api.openapi

    def document() -> dict[str, Any]:
        deferred.load()
        return build()

    api.openapi = document  # type: ignore[method-assign]
    return deferred


# Paths whose answers need none of the features' routes: they answer as soon as the server
# listens. /ready is not one: it answers once every route is in.
_LIVE_FROM_START = frozenset({"/health", "/metrics"})


def _api_routers(state: AppState) -> Iterator[tuple[APIRouter, ...]]:
    """Every feature's routers under ``/api/v1``, in the order they are included, a feature's
    imports per step; with what only their routes (and the UI's pages, which come later) use."""
    from konfig.auth.router import router as auth_router

    yield (auth_router,)
    from konfig.users.router import router as users_router

    yield (users_router,)
    from konfig.namespaces.router import router as namespaces_router

    yield (namespaces_router,)
    from konfig.configs.router import router as configs_router

    yield (configs_router,)
    from konfig.flags.router import router as flags_router
    from konfig.flags.router import stale_router as stale_flags_router

    yield (flags_router, stale_flags_router)
    from konfig.audit.router import router as audit_router

    yield (audit_router,)
    from konfig.backups.router import router as backups_router

    yield (backups_router,)
    from konfig.revisions.router import entry_router as history_router
    from konfig.revisions.router import router as revisions_router

    yield (history_router, revisions_router)
    from konfig.tokens.router import service_accounts_router, tokens_router

    yield (service_accounts_router, tokens_router)
    from konfig.sso.oidc import Providers
    from konfig.sso.router import router as sso_router

    state.oidc = Providers()
    yield (sso_router,)
    from konfig.groups.router import router as groups_router

    yield (groups_router,)
    from konfig.webhooks.router import router as webhooks_router

    yield (webhooks_router,)
    from konfig.environments.router import router as environments_router
    from konfig.environments.search import SearchIndex

    state.search_index = SearchIndex()
    yield (environments_router,)
    from konfig.analytics.router import keys_router as unread_keys_router
    from konfig.analytics.router import router as analytics_router
    from konfig.analytics.router import tokens_router as token_usage_router

    yield (analytics_router, token_usage_router, unread_keys_router)
    from konfig.changes.router import router as changes_router

    yield (changes_router,)
    from konfig.delivery.router import router as read_path_router

    yield (read_path_router,)


def wrappers(settings: Settings, state: AppState) -> list[Wrapper]:
    """What every answer passes through, outermost first: its frame (``Exchange``: request id,
    security headers on every answer, the 500s included, the last word on errors, the access
    line and the request metrics), and CORS."""
    docs_paths = ["/docs", "/docs/oauth2-redirect", "/redoc"] if settings.show_docs else []
    around: list[Wrapper] = [
        partial(
            Exchange,
            metrics=state.metrics,
            docs_paths=docs_paths,
            strict_transport=settings.is_production,
        )
    ]
    if settings.cors_origins:
        around.append(
            partial(
                CorsMiddleware,
                allow_origins=settings.cors_origins,
                allow_methods=["*"],
                allow_headers=["*"],
                expose_headers=["ETag", "X-Request-ID"],
            )
        )
    return around


def guards(settings: Settings, state: AppState) -> list[Wrapper]:
    """Around the write path and FastAPI (not the read path: it reads no body, and answers its
    own outages), outermost first: the body cap, and a 503 when the database is out of reach."""
    return [
        partial(BodyLimitMiddleware, max_bytes=settings.max_body_bytes),
        partial(DatabaseOutageMiddleware, outages=state.outages),
    ]


def _lifespan(settings: Settings) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """Start-up makes the engine and what needs it; shutdown drains and closes them in order."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = app_state(app)
        engine = make_engine(settings.resolved_database_url)
        try:
            tables = sorted(tenant_owned(metadata))
            await check_role(engine, tables, production=settings.is_production)
            await refresh_statistics(engine)
        except BaseException:
            await engine.dispose()
            raise
        state.engine = engine
        state.write_engine = engine.execution_options(**{WRITE_OPTION: True})
        state.sessionmaker = make_sessionmaker(engine)
        state.entry_writer = EntryWriter(
            engine,
            state.write_policy,
            state.commit_hooks,
            lambda: state.notices,
            transactions=state,
        )
        state.rate_limits = RateLimits(settings, state.metrics)
        state.shutting_down = False
        state.shutdown_event = asyncio.Event()
        scheduler = BackupScheduler(
            backups=state.backups,
            sessionmaker=state.sessionmaker,
            debounce=settings.backup_debounce_seconds,
            interval=settings.backup_interval,
        )
        state.backup_scheduler = scheduler
        state.commit_hooks.append(scheduler.on_commit)
        scheduler.start()
        if settings.mirror_dir is not None:
            from konfig.revisions.mirror import Mirror  # YAML files: only when asked for

            mirror = Mirror(settings.mirror_dir, state.sessionmaker, state.write_policy)
            state.commit_hooks.append(mirror)
        webhooks = _start_webhooks(state)
        delivery = state.delivery
        await delivery.start()
        statistics = asyncio.create_task(keep_statistics(engine), name="konfig-statistics")
        try:
            yield
        finally:
            statistics.cancel()
            state.shutting_down = True
            state.shutdown_event.set()
            await state.entry_writer.close()  # the writes already queued go in first
            await _stop_webhooks(state, webhooks)
            await state.rate_limits.close()
            state.commit_hooks.remove(scheduler.on_commit)
            await scheduler.close()  # takes the pending automatic backups first
            await delivery.stop()
            await engine.dispose()

    return lifespan


def _start_webhooks(state: AppState) -> WebhookWorker:
    """The webhooks worker, woken by this process's commits (``konfig.webhooks.worker``)."""
    settings = state.settings
    worker = WebhookWorker(
        settings=settings,
        sessionmaker=state.sessionmaker,
        keyring=state.write_policy.keyring,
        metrics=state.metrics,
        outages=state.outages,
    )
    writer = state.entry_writer
    worker.write_load = writer.busy_seconds
    worker.writes_waiting = lambda: writer.queued > 0 or writer.committing
    state.webhooks = worker
    state.commit_hooks.append(worker.on_committed)
    state.change_hooks.append(worker.on_changed)
    state.backups.status.listeners.append(worker.on_backup)
    if settings.webhooks_enabled:
        worker.start()
    return worker


async def _stop_webhooks(state: AppState, worker: WebhookWorker) -> None:
    state.commit_hooks.remove(worker.on_committed)
    state.change_hooks.remove(worker.on_changed)
    state.backups.status.listeners.remove(worker.on_backup)
    await worker.stop()
