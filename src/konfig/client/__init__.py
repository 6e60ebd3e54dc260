"""The Konfig Python SDK: ``Konfig`` (blocking) and ``AsyncKonfig`` over httpx.

It imports nothing from the server package, so a service can depend on it alone::

    from konfig.client import Konfig

    konfig = Konfig("https://konfig.example.com", token="kfg_…", cache_path="konfig-lkg.json")
    settings = konfig.get_config("payments/production")
"""

from konfig.client._async_client import AsyncKonfig
from konfig.client._base import RetryPolicy
from konfig.client._cache import LastKnownGood, StaleConfigWarning
from konfig.client._client import Konfig
from konfig.client._exceptions import (
    Conflict,
    ConnectionError,
    Forbidden,
    KonfigError,
    NotFound,
    PayloadTooLarge,
    PreconditionFailed,
    RateLimited,
    ServerError,
    Unauthenticated,
    ValidationError,
)
from konfig.client._operations import UNSET

__all__ = [
    "UNSET",
    "AsyncKonfig",
    "Conflict",
    "ConnectionError",
    "Forbidden",
    "Konfig",
    "KonfigError",
    "LastKnownGood",
    "NotFound",
    "PayloadTooLarge",
    "PreconditionFailed",
    "RateLimited",
    "RetryPolicy",
    "ServerError",
    "StaleConfigWarning",
    "Unauthenticated",
    "ValidationError",
]
