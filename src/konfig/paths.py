"""The URL prefixes that more than one layer needs, defined once, and the names the access log
and the metrics give a request a fast path answers (``RouteTemplates.of`` reads them)."""

from __future__ import annotations

from dataclasses import dataclass

API_PREFIX = "/api/v1"
# The read path: GET|HEAD /api/v1/config/{name} and …/{name}/events (konfig.delivery).
READ_PATH_PREFIX = f"{API_PREFIX}/config/"


@dataclass(frozen=True, slots=True)
class RouteName:
    """A route as ``scope["route"]`` names it for the access log: its full template."""

    path_format: str


READ_ROUTE = RouteName(READ_PATH_PREFIX + "{name}")
EVENTS_ROUTE = RouteName(READ_PATH_PREFIX + "{name}/events")
ENTRIES_ROUTE = RouteName(f"{API_PREFIX}/namespaces/{{namespace_id}}/configs")
ENTRY_ROUTE = RouteName(f"{API_PREFIX}/namespaces/{{namespace_id}}/configs/{{key}}")

# OpenFeature's remote evaluation protocol (konfig.delivery.ofrep).
OFREP_PREFIX = "/ofrep/v1/"
OFREP_BULK_ROUTE = RouteName(OFREP_PREFIX + "evaluate/flags")
OFREP_FLAG_ROUTE = RouteName(OFREP_PREFIX + "evaluate/flags/{key}")
OFREP_EVENTS_ROUTE = RouteName(OFREP_PREFIX + "events")

# GET requests that write (single sign-on records and spends its sign-ins, and opens the login):
# their sessions start as writers, as SQLite cannot upgrade a reader that lost a race.
WRITING_GETS = frozenset({"/ui/sso/login", "/ui/sso/callback"})
