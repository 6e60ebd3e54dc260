"""Server-sent events read off a streaming response."""

from __future__ import annotations

import asyncio

import httpx


class Events:
    """Reads server-sent events (and comments) off a streaming response."""

    def __init__(self, response: httpx.Response) -> None:
        self.lines = response.aiter_lines()

    async def next(self) -> dict[str, str]:
        """The next event or comment: ``{"id", "event", "data"}`` or ``{"comment"}``."""
        fields: dict[str, str] = {}
        while True:
            line = await asyncio.wait_for(anext(self.lines), timeout=15)
            if line == "":
                if fields:
                    return fields
                continue
            if line.startswith(":"):
                return {"comment": line[1:].strip()}
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")

    async def next_event(self) -> dict[str, str]:
        while True:
            found = await self.next()
            if "comment" not in found and "retry" not in found:
                return found
