"""``konfig login --sso``: a browser signs in at the organisation's provider and hands the
login back on a loopback port (the loopback redirect of RFC 8252, section 7.3).

The command listens on 127.0.0.1 on a port of the system's choosing and opens
``/ui/sso/login?tenant=…`` with a ``next`` page of ``/ui/sso/cli?port=…&state=…``. Signed in,
the person confirms there, and the browser posts the new login's tokens to the port with the
``state`` this command made: a post with any other state is refused.
"""

from __future__ import annotations

import secrets
import time
import webbrowser
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import parse_qs, urlencode

from konfig.cli.output import note

WAIT_SECONDS = 300.0
_DONE = b"<!doctype html><title>Konfig</title><p>Signed in: go back to your terminal.</p>"


def sign_in(
    url: str, tenant: str, *, open_browser: bool, wait: float = WAIT_SECONDS
) -> dict[str, str] | None:
    """The tokens the browser hands over, or None when none arrived in time."""
    state = secrets.token_urlsafe(24)
    received: dict[str, str] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = min(int(self.headers.get("Content-Length") or 0), 65536)
            form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
            if not secrets.compare_digest(form.get("state", ""), state):
                self.send_error(400, "not the sign-in this command is waiting for")
                return
            received.update(
                access_token=form.get("access_token", ""),
                refresh_token=form.get("refresh_token", ""),
            )
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.end_headers()
            self.wfile.write(_DONE)

        def log_message(self, format: str, *args: object) -> None:
            """Silent: the request carries tokens."""

    server = HTTPServer(("127.0.0.1", 0), Handler)
    server.timeout = 0.5
    port = server.server_address[1]
    next_page = "/ui/sso/cli?" + urlencode({"port": port, "state": state})
    start = f"{url}/ui/sso/login?" + urlencode({"tenant": tenant, "next": next_page})
    note(f"sign in with your browser: {start}")
    if open_browser:
        webbrowser.open(start)
    deadline = time.monotonic() + wait
    try:
        while not received.get("access_token") and time.monotonic() < deadline:
            server.handle_request()
    finally:
        server.server_close()
    return received if received.get("access_token") else None
