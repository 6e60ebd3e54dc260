"""Apps built from their own settings, for tests that change what the default fixtures fix."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from konfig.app import create_app
from konfig.settings import Settings


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[FastAPI]:
    """The app, started (lifespan) and stopped around the block."""
    app = create_app(settings)
    async with LifespanManager(app):
        yield app


def client_of(app: FastAPI, address: str = "127.0.0.1") -> httpx.AsyncClient:
    """A client that speaks to ``app`` in process, as if from ``address``."""
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://konfig.test")
