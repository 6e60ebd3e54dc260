"""Key rotation: a new key, every value re-encrypted, while a live server keeps serving."""

from __future__ import annotations

import base64
import sqlite3
import subprocess
import sys
import threading
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import text

from konfig.app import create_app
from konfig.security.crypto import Keyring, parse_keys
from tests.conftest import PASSWORD, Backend, assert_error, backstage, make_settings, register
from tests.support.servers import ServerProcess, start_server


def _login(url: str) -> dict[str, str]:
    httpx.post(
        f"{url}/api/v1/auth/register",
        json={"name": "rot", "email": "o@rot.example.com", "password": PASSWORD},
    )
    token = httpx.post(
        f"{url}/api/v1/auth/login", json={"email": "o@rot.example.com", "password": PASSWORD}
    ).json()
    return {"Authorization": f"Bearer {token['access_token']}"}


def _key_ids(db: Path) -> set[str]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT value_ciphertext FROM config_entries UNION ALL "
            "SELECT value_ciphertext FROM entry_versions WHERE value_ciphertext IS NOT NULL"
        ).fetchall()
    return {Keyring.key_id(bytes(row[0])) for row in rows}


@pytest.mark.slow
def test_rotate_while_serving(tmp_path: Path) -> None:
    # The writer below writes as fast as the server takes it: above the default rate limit.
    server: ServerProcess = start_server(tmp_path, KONFIG_RATE_LIMIT_PER_MINUTE="1000000")
    try:
        headers = _login(server.url)
        ns = httpx.post(
            f"{server.url}/api/v1/namespaces", headers=headers, json={"name": "payments"}
        ).json()["id"]
        expected: dict[str, str] = {}
        for i in range(40):
            key, value = f"key{i}", f"value-{i}"
            answer = httpx.post(
                f"{server.url}/api/v1/namespaces/{ns}/configs",
                headers=headers,
                json={"key": key, "value": value, "is_secret": i % 2 == 0},
            )
            assert answer.status_code == 201
            expected[key] = value
        old_ids = _key_ids(server.data_dir / "konfig.db")
        assert len(old_ids) == 1

        stop = threading.Event()
        errors: list[str] = []

        def keep_writing() -> None:
            n = 0
            with httpx.Client(base_url=server.url, headers=headers, timeout=30) as http:
                while not stop.is_set():
                    key, value = f"live{n % 5}", f"live-{n}"
                    answer = http.put(
                        f"/api/v1/namespaces/{ns}/configs/{key}", json={"value": value}
                    )
                    if answer.status_code not in (200, 201):
                        errors.append(answer.text)
                    expected[key] = value
                    n += 1

        writer = threading.Thread(target=keep_writing)
        writer.start()
        try:
            rotated = subprocess.run(
                [sys.executable, "-m", "konfig", "keys", "rotate", "--batch-size", "7"],
                env=server.env,
                capture_output=True,
                text=True,
                timeout=120,
            )
        finally:
            stop.set()
            writer.join()
        assert rotated.returncode == 0, rotated.stderr
        assert "re-encrypted" in rotated.stderr
        assert errors == []

        keys = parse_keys((server.data_dir / "encryption_keys").read_text())
        assert len(keys) == 2
        new_primary = keys[0][0]
        assert new_primary not in old_ids
        with httpx.Client(base_url=server.url, headers=headers) as http:
            # Values written after the rotation are under the new key too.
            http.put(f"/api/v1/namespaces/{ns}/configs/after", json={"value": "after-rotation"})
            expected["after"] = "after-rotation"
            for key, value in expected.items():
                read = http.get(f"/api/v1/namespaces/{ns}/configs/{key}", params={"reveal": "true"})
                assert read.status_code == 200, read.text
                assert read.json()["value"] == value
        assert _key_ids(server.data_dir / "konfig.db") == {new_primary}
    finally:
        server.stop()


def _key(seed: int) -> str:
    return base64.b64encode(bytes([seed]) * 32).decode()


async def test_rotation_to_a_configured_key(backend: Backend, tmp_path: Path) -> None:
    """With KONFIG_ENCRYPTION_KEYS: the old key decrypts old values until they are rewritten."""
    from konfig.configs.rotation import RotationReport, reencrypt
    from konfig.db.engine import make_engine
    from tests.conftest import wipe

    old_only = f"old:{_key(1)}"
    both = f"new:{_key(2)},old:{_key(1)}"
    try:
        app: Any = create_app(make_settings(backend.url, tmp_path, encryption_keys=old_only))
        async with LifespanManager(app):
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://t"
            ) as client:
                owner = await register(client, "keyed")
                ns = (
                    await client.post(
                        "/api/v1/namespaces", headers=owner.headers, json={"name": "n"}
                    )
                ).json()["id"]
                await client.post(
                    f"/api/v1/namespaces/{ns}/configs",
                    headers=owner.headers,
                    json={"key": "k", "value": "v1"},
                )
                sso = {
                    "issuer": "https://login.keyed.example.com",
                    "client_id": "konfig",
                    "client_secret": "sso-client-s3cret",
                    "allowed_domains": ["keyed.example.com"],
                }
                assert (await client.put("/api/v1/sso", headers=owner.headers, json=sso)).is_success

        keyring = Keyring(parse_keys(both))
        report = RotationReport(primary="new", added=False)
        engine = make_engine(backend.url)
        await reencrypt(engine, keyring, report, lambda *_: None)
        await engine.dispose()
        assert report.rewritten == 3  # the entry, its version and the SSO client secret
        new_only = Keyring(parse_keys(f"new:{_key(2)}"))
        async with backstage(app) as session:
            tenant_id, sealed = (
                await session.execute(
                    text("SELECT tenant_id, client_secret_ciphertext FROM sso_configs")
                )
            ).one()
        aad = b"konfig-sso-client-secret:" + uuid.UUID(str(tenant_id)).bytes
        assert new_only.decrypt(bytes(sealed), aad) == b"sso-client-s3cret"

        app = create_app(make_settings(backend.url, tmp_path, encryption_keys=both))
        async with LifespanManager(app):
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://t"
            ) as client:
                token = (
                    await client.post(
                        "/api/v1/auth/login", json={"email": owner.email, "password": PASSWORD}
                    )
                ).json()
                auth = {"Authorization": f"Bearer {token['access_token']}"}
                assert (
                    await client.get(f"/api/v1/namespaces/{ns}/configs/k", headers=auth)
                ).json()["value"] == "v1"
        app = create_app(make_settings(backend.url, tmp_path, encryption_keys=old_only))
        async with LifespanManager(app):
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://t"
            ) as client:
                unknown = await client.get(f"/api/v1/namespaces/{ns}/configs/k", headers=auth)
                assert_error(unknown, 500, "INTERNAL")
    finally:
        await wipe(backend.url)
