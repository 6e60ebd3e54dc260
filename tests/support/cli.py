"""A user at a shell running `python -m konfig …`, for the client command tests."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.conftest import PASSWORD


@dataclass
class Cli:
    """A user at a shell: their own HOME and XDG_CONFIG_HOME, logged in to nothing yet."""

    home: Path
    url: str
    email: str

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KONFIG_")}
        return env | {"HOME": str(self.home), "XDG_CONFIG_HOME": str(self.home / ".config")}

    def __call__(
        self, *args: str, env: dict[str, str] | None = None, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "konfig", *args],
            env=self.env | (env or {}),
            capture_output=True,
            text=True,
            input=input,
            timeout=60,
        )

    def ok(self, *args: str, env: dict[str, str] | None = None, input: str | None = None) -> str:
        result = self(*args, env=env, input=input)
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
