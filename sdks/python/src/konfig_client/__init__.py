"""The Konfig Python SDK: ``Konfig`` (blocking) and ``AsyncKonfig`` over httpx.

The distribution ``konfig-client`` (``sdks/python/`` in Konfig's repository); it depends on
httpx alone and imports nothing from the server::

    from konfig_client import Konfig

    konfig = Konfig.from_env(cache_path="konfig-last-known-good.json")  # KONFIG_URL, KONFIG_TOKEN
    config = konfig.get("payments/production")
    timeout = config.get_number("timeout")

The server's package re-exports every name here as ``konfig.client``.
"""

from konfig_client._async_client import AsyncKonfig
from konfig_client._async_watch import AsyncWatch
from konfig_client._base import RetryPolicy
from konfig_client._cache import LastKnownGood, StaleConfigWarning
from konfig_client._client import Konfig
from konfig_client._config import Config
from konfig_client._exceptions import (
    Conflict,
    ConnectionError,
    Forbidden,
    KonfigError,
    MissingKey,
    NotFound,
    PayloadTooLarge,
    PreconditionFailed,
    RateLimited,
    ServerError,
    Unauthenticated,
    ValidationError,
    WrongType,
)
from konfig_client._operations import UNSET
from konfig_client._watch import Watch

__all__ = [
    "UNSET",
    "AsyncKonfig",
    "AsyncWatch",
    "Config",
    "Conflict",
    "ConnectionError",
    "Forbidden",
    "Konfig",
    "KonfigError",
    "LastKnownGood",
    "MissingKey",
    "NotFound",
    "PayloadTooLarge",
    "PreconditionFailed",
    "RateLimited",
    "RetryPolicy",
    "ServerError",
    "StaleConfigWarning",
    "Unauthenticated",
    "ValidationError",
    "Watch",
    "WrongType",
]
