"""The application factory."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi_offline import FastAPIOffline

from konfig import __version__, openapi
from konfig.audit.router import router as audit_router
from konfig.auth.router import router as auth_router
from konfig.auth.service import TokenPolicy
from konfig.backups.router import router as backups_router
from konfig.backups.scheduler import BackupScheduler
from konfig.backups.service import Backups
from konfig.backups.store import BackupStore
from konfig.configs.router import router as configs_router
from konfig.configs.write_path import WritePathFirst
from konfig.configs.writes import EntryWriter
from konfig.db.engine import make_engine, make_sessionmaker
from konfig.db.models import Base
from konfig.db.outage import OutageLog
from konfig.db.roles import check_role, tenant_owned
from konfig.db.session import WRITE_OPTION
from konfig.delivery.router import router as read_path_router
from konfig.delivery.wiring import Delivery
from konfig.errors import install_error_handlers
from konfig.methods import AllowedMethods, RouteTable
from konfig.metrics import Metrics
from konfig.middleware import (
    BodyLimitMiddleware,
    DatabaseOutageMiddleware,
    RequestContextMiddleware,
)
from konfig.namespaces.router import router as namespaces_router
from konfig.ops.middleware import AccessMiddleware, CorsMiddleware, SecurityHeadersMiddleware
from konfig.ops.router import router as ops_router
from konfig.ratelimit import RateLimits
from konfig.revisions.mirror import Mirror
from konfig.revisions.router import entry_router as history_router
from konfig.revisions.router import router as revisions_router
from konfig.revisions.writer import write_policy
from konfig.security import passwords
from konfig.security.jwt import TokenSigner
from konfig.settings import Settings, check_production, get_settings, secret_key
from konfig.state import AppState, attach
from konfig.tokens.router import service_accounts_router, tokens_router
from konfig.users.router import router as users_router
from konfig.web.routes import mount_ui

log = logging.getLogger("konfig")


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; the engine and everything stateful is made in the lifespan."""
    settings = settings or get_settings()
    check_production(settings)
    passwords.configure(time_cost=settings.argon2_time_cost, memory_kib=settings.argon2_memory_kib)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(settings.resolved_database_url)
        try:
            tables = sorted(tenant_owned(Base.metadata))
            await check_role(engine, tables, production=settings.is_production)
        except BaseException:
            await engine.dispose()
            raise
        state.engine = engine
        state.write_engine = engine.execution_options(**{WRITE_OPTION: True})
        state.sessionmaker = make_sessionmaker(engine)
        state.entry_writer = EntryWriter(engine, state.write_policy, state.commit_hooks)
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
            state.commit_hooks.append(
                Mirror(settings.mirror_dir, state.sessionmaker, state.write_policy)
            )
        await delivery.start()
        try:
            yield
        finally:
            state.shutting_down = True
            state.shutdown_event.set()
            await state.entry_writer.close()  # the writes already queued go in first
            await state.rate_limits.close()
            state.commit_hooks.remove(scheduler.on_commit)
            await scheduler.close()  # takes the pending automatic backups first
            await delivery.stop()
            await engine.dispose()

    docs = settings.show_docs
    # FastAPIOffline insists on an OpenAPI URL: without docs, the plain FastAPI serves none.
    app = (FastAPIOffline if docs else FastAPI)(
        title="Konfig",
        version=__version__,
        summary="Typed, versioned, encrypted configuration for microservices.",
        lifespan=lifespan,
        docs_url="/docs" if docs else None,
        redoc_url="/redoc" if docs else None,
        openapi_url="/openapi.json" if docs else None,
        swagger_ui_parameters={"persistAuthorization": True},
    )
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
    )
    state.backups.status.listeners.append(state.metrics.backup_event)
    attach(app, state)

    install_error_handlers(app)
    openapi.install(app)
    api = APIRouter(prefix="/api/v1")
    api.include_router(auth_router)
    api.include_router(users_router)
    api.include_router(namespaces_router)
    api.include_router(configs_router)
    api.include_router(audit_router)
    api.include_router(backups_router)
    api.include_router(history_router)
    api.include_router(revisions_router)
    api.include_router(service_accounts_router)
    api.include_router(tokens_router)
    api.include_router(read_path_router)
    app.include_router(api)
    app.include_router(ops_router)
    delivery = Delivery(app, settings, policy.keyring)
    mount_ui(app, delivery)
    delivery.install()
    _meter_read_path(state, delivery)

    # Added innermost first. From the outside: security headers (on every answer, the 500s
    # included), request id, access log and metrics, CORS, body cap, the database out of reach
    # (a 503), single-entry writes, allowed methods and media types (konfig.methods: what the
    # write path takes, JSON writes to a path it serves, is never theirs to refuse).
    app.add_middleware(AllowedMethods, table=RouteTable(app))
    app.add_middleware(WritePathFirst)
    app.add_middleware(DatabaseOutageMiddleware, outages=state.outages)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    if settings.cors_origins:
        app.add_middleware(
            CorsMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["*"],
            allow_headers=["*"],
            expose_headers=["ETag", "X-Request-ID"],
        )
    app.add_middleware(AccessMiddleware, metrics=state.metrics)
    app.add_middleware(RequestContextMiddleware)
    app.add_middleware(
        SecurityHeadersMiddleware,
        docs_paths=["/docs", "/docs/oauth2-redirect", "/redoc"] if docs else [],
        strict_transport=settings.is_production,
    )
    return app


def _meter_read_path(state: AppState, delivery: Delivery) -> None:
    """The read path answers ahead of the middleware: give it the metrics and rate limit."""
    by_status: dict[int, Any] = {}

    def count(status: int) -> None:
        counter = by_status.get(status)
        if counter is None:
            counter = by_status[status] = state.metrics.read_path_requests.labels(str(status))
        counter.inc()

    async def limit(actor: str) -> None:
        await state.rate_limits.check_principal(actor=actor, read=True)

    delivery.read_path.count = count
    delivery.read_path.limit = limit
