"""A user at a shell running `python -m konfig …`, for the client command tests."""

from __future__ import annotations

import os
import subprocess
import sys
import traceback
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
from typer.testing import CliRunner

from konfig.cli import app
from tests.conftest import PASSWORD

# Commands that take over the process they run in: `run` replaces it with the user's command
# (exec) or, with --watch, sets its own signal handlers. They always run as a child.
OWN_PROCESS = frozenset({"run"})


@dataclass
class Cli:
    """A user at a shell: their own HOME and XDG_CONFIG_HOME, logged in to nothing yet.

    Each command runs as a ``python -m konfig`` child, or, with ``in_process``, through
    Typer's runner in this process (the same command tree, arguments, environment, stdin,
    stdout, stderr and exit code, without a second of imports per command under coverage);
    ``process`` always starts a child, for the tests that prove the entry point itself.
    """

    home: Path
    url: str
    email: str
    in_process: bool = False

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KONFIG_")}
        return env | self._home

    @property
    def _home(self) -> dict[str, str]:
        return {"HOME": str(self.home), "XDG_CONFIG_HOME": str(self.home / ".config")}

    def __call__(
        self, *args: str, env: dict[str, str] | None = None, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        if self.in_process and args[:1] and args[0] not in OWN_PROCESS:
            return self._invoke(args, env, input)
        return self.process(*args, env=env, input=input)

    def process(
        self, *args: str, env: dict[str, str] | None = None, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """The command as a real ``python -m konfig`` child process."""
        return subprocess.run(
            [sys.executable, "-m", "konfig", *args],
            env=self.env | (env or {}),
            capture_output=True,
            text=True,
            input=input,
            timeout=60,
        )

    def _invoke(
        self, args: tuple[str, ...], env: dict[str, str] | None, input: str | None
    ) -> subprocess.CompletedProcess[str]:
        # The child's environment: this one without KONFIG_* (None unsets), HOME, the extras.
        unset: dict[str, str | None] = {k: None for k in os.environ if k.startswith("KONFIG_")}
        result = CliRunner().invoke(
            app, list(args), input=input, env=unset | self._home | (env or {})
        )
        stderr = result.stderr
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            # What the child's interpreter would print on a crash (exit status 1).
            stderr += "".join(traceback.format_exception(result.exception))
        return subprocess.CompletedProcess(
            ["konfig", *args], result.exit_code, result.stdout, stderr
        )

    def ok(
        self,
        *args: str,
        env: dict[str, str] | None = None,
        input: str | None = None,
        child: bool = False,
    ) -> str:
        """The command's stdout; it must succeed. ``child``: as a real child process."""
        run = self.process if child else self
        result = run(*args, env=env, input=input)
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout


def new_tenant(url: str) -> str:
    email = f"owner-{uuid.uuid4().hex[:8]}@example.com"
    name = email.split("@")[0]
    created = httpx.post(
        f"{url}/api/v1/auth/register", json={"name": name, "email": email, "password": PASSWORD}
    )
    assert created.status_code == 201, created.text
    return email
