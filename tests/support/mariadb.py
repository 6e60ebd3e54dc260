"""A MariaDB database of a test's own."""

from __future__ import annotations

import uuid

from tests.conftest import MARIADB_URL, service_missing


async def mariadb_database() -> tuple[str, str]:
    import aiomysql

    name = f"konfig_test_{uuid.uuid4().hex[:8]}"
    host_part = MARIADB_URL.split("://", 1)[1].rsplit("/", 1)[0]
    try:
        conn = await aiomysql.connect(
            host="127.0.0.1", port=3306, user="root", password="", connect_timeout=5
        )
    except Exception as exc:  # aiomysql raises OperationalError wrapped in several ways
        service_missing("MariaDB at 127.0.0.1:3306", exc)
    async with conn.cursor() as cur:
        await cur.execute(
            f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
        )
    conn.close()
    return name, f"mysql+aiomysql://{host_part}/{name}"


async def drop_mariadb(name: str) -> None:
    import aiomysql

    conn = await aiomysql.connect(host="127.0.0.1", port=3306, user="root", password="")
    async with conn.cursor() as cur:
        await cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
    conn.close()
