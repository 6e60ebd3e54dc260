"""``make cluster``: three Konfig replicas on PostgreSQL and Redis behind nginx, until Ctrl-C.

Settings, from the environment (the Makefile passes its variables of the same names):

- ``CLUSTER_LISTEN``: where nginx listens, ``127.0.0.1:8000``
- ``CLUSTER_PORTS``: the replicas' ports, ``8101-8103`` (or ``8101,8102,8103``)
- ``CLUSTER_DATABASE_URL``: ``postgresql://postgres@127.0.0.1:5432/konfig_cluster``, created
  if missing
- ``CLUSTER_REDIS_URL``: ``redis://127.0.0.1:6379/0`` (``KONFIG_REDIS_URL`` when set)
- ``CLUSTER_DIR``: ``data/cluster``: logs, nginx.conf, the shared data directory and the
  generated keys (``secrets.env``, kept so the database stays readable across runs)

Any other ``KONFIG_*`` variable is passed to every replica as it is.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import sys
import time
from pathlib import Path
from types import FrameType

from deploy.cluster.run import Cluster, ClusterError, parse_ports

DEFAULT_DATABASE = "postgresql://postgres@127.0.0.1:5432/konfig_cluster"


async def ensure_database(url: str) -> bool:
    """Create the database ``url`` names if it does not exist; True if it was created."""
    import asyncpg

    base, name = url.rsplit("/", 1)
    name = name.split("?", 1)[0]
    conn = await asyncpg.connect(f"{base}/postgres", timeout=5)
    try:
        if await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            return False
        await conn.execute(f'CREATE DATABASE "{name}"')
        return True
    finally:
        await conn.close()


def cluster_secrets(path: Path) -> dict[str, str]:
    """The JWT key and the encryption keyring every replica must share: generated once into
    ``path`` (mode 0600), unless the environment gives them."""
    from konfig.security.crypto import new_key_line

    values: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            name, _, value = line.partition("=")
            if name and value:
                values[name] = value
    else:
        values = {
            "KONFIG_SECRET_KEY": secrets.token_urlsafe(48),
            "KONFIG_ENCRYPTION_KEYS": new_key_line(),
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.writelines(f"{name}={value}\n" for name, value in values.items())
    for name in values:
        if os.environ.get(name):
            values[name] = os.environ[name]
    return values


def main() -> int:
    run_dir = Path(os.environ.get("CLUSTER_DIR") or "data/cluster").resolve()
    listen = os.environ.get("CLUSTER_LISTEN") or "127.0.0.1:8000"
    ports = parse_ports(os.environ.get("CLUSTER_PORTS") or "8101-8103")
    database_url = os.environ.get("CLUSTER_DATABASE_URL") or DEFAULT_DATABASE
    redis_url = (
        os.environ.get("CLUSTER_REDIS_URL")
        or os.environ.get("KONFIG_REDIS_URL")
        or "redis://127.0.0.1:6379/0"
    )
    try:
        if asyncio.run(ensure_database(database_url)):
            print(f"created database {database_url}")
    except OSError as exc:
        print(f"cluster: PostgreSQL is not reachable at {database_url}: {exc}", file=sys.stderr)
        return 1

    env = {k: v for k, v in os.environ.items() if not k.startswith("CLUSTER_")}
    env |= cluster_secrets(run_dir / "secrets.env")
    env |= {"KONFIG_DATABASE_URL": database_url, "KONFIG_REDIS_URL": redis_url}
    env.setdefault("KONFIG_REDIS_KEY_PREFIX", "konfig-cluster")
    env.setdefault("KONFIG_NOTIFY_CHANNEL", "konfig_cluster")

    # SIGTERM (and SIGHUP) stop it as Ctrl-C does.
    def interrupt(signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGHUP, interrupt)

    cluster = Cluster(run_dir=run_dir, listen=listen, ports=ports, env=env)
    print(f"starting {len(ports)} replicas on ports {', '.join(map(str, ports))} …", flush=True)
    try:
        cluster.start()
    except ClusterError as exc:
        print(f"cluster: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    try:
        for replica, line in zip(cluster.replicas, cluster.migration_report(), strict=True):
            what = line or "found the schema current"
            pid = replica.process.pid if replica.process is not None else "-"
            print(f"  replica {replica.index}  {replica.url}  pid {pid}  {what}")
        print(f"  nginx      {cluster.url}  (config {run_dir / 'nginx.conf'})")
        print(f"  database   {database_url}")
        print(f"  redis      {redis_url}")
        print(f"  logs       {run_dir}/replica-N.log, nginx-access.log, nginx-error.log")
        print(f"Konfig is serving on {cluster.url}  (Ctrl-C stops everything)", flush=True)
        reported: set[int] = set()
        while True:
            time.sleep(1)
            for replica in cluster.replicas:
                code = replica.process.poll() if replica.process is not None else None
                if code is not None and replica.index not in reported:
                    reported.add(replica.index)
                    print(
                        f"replica {replica.index} exited with {code}; "
                        "nginx sends its traffic to the others",
                        flush=True,
                    )
    except KeyboardInterrupt:
        pass
    finally:
        print("\nstopping nginx and the replicas …", flush=True)
        codes = cluster.stop()
        print("stopped: " + ", ".join(f"{name} exit {code}" for name, code in codes.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
