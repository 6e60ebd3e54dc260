"""Start N ``konfig serve`` replicas at the same moment on one database, and nginx in front.

The replicas are started together so that they race for the migrations, as pods of a fresh
Deployment do: the PostgreSQL advisory lock in ``konfig.db.migrate`` lets exactly one migrate,
and only that one logs ``database migrated from … to …``; ``migration_report`` reads that back
from each replica's log.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

TEMPLATE = Path(__file__).with_name("nginx.conf.template")
# What konfig.db.migrate logs when it applied migrations (console or JSON log lines alike).
MIGRATED = re.compile(r"database migrated from (\S+) to ([0-9A-Za-z_]+)")


def nginx_binary() -> str | None:
    """``$NGINX``, or nginx on PATH, or Debian's /usr/sbin/nginx (not on a user's PATH)."""
    for candidate in (os.environ.get("NGINX"), "nginx", "/usr/sbin/nginx"):
        if candidate and (found := shutil.which(candidate)):
            return found
    return None


class ClusterError(RuntimeError):
    """The cluster could not start."""


def render_nginx_conf(
    *, run_dir: Path, listen: str, upstreams: Sequence[str], access_log: str | None = None
) -> str:
    """nginx.conf for ``upstreams`` (``host:port`` each), listening on ``listen``."""
    servers = "\n        ".join(
        f"server {upstream} max_fails=1 fail_timeout=5s;" for upstream in upstreams
    )
    values = {
        "run_dir": str(run_dir),
        "listen": listen,
        "servers": servers,
        "access_log": access_log or f"{run_dir}/nginx-access.log konfig",
    }
    text = TEMPLATE.read_text()
    for name, value in values.items():
        text = text.replace("{{" + name + "}}", value)
    if "{{" in text:
        raise ClusterError(f"unfilled placeholder in {TEMPLATE}")
    return text


@dataclass
class Replica:
    index: int
    port: int
    log: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@dataclass
class Cluster:
    """Replicas on ``ports`` and nginx on ``listen`` (``host:port``), files under ``run_dir``.

    ``env`` is the replicas' whole environment (database, Redis, keys and any other
    ``KONFIG_*``); each replica gets its own ``KONFIG_PORT`` on top, and all share
    ``run_dir/data`` as ``KONFIG_DATA_DIR``, as pods share the ``konfig-data`` volume.
    """

    run_dir: Path
    listen: str
    ports: Sequence[int]
    env: Mapping[str, str]
    ready_timeout: float = 90.0
    replicas: list[Replica] = field(default_factory=list)
    nginx: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.listen}"

    def start(self) -> None:
        nginx = nginx_binary()
        if nginx is None:
            raise ClusterError("nginx not found: install Debian's nginx-light (or set NGINX)")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (self.run_dir / "nginx-tmp" / sub).mkdir(parents=True, exist_ok=True)
        (self.run_dir / "data").mkdir(exist_ok=True)
        self.replicas = [
            Replica(i, port, self.run_dir / f"replica-{i}.log")
            for i, port in enumerate(self.ports, start=1)
        ]
        try:
            # All of them first, then wait: they start at the same moment and race for the
            # migration lock, as the pods of a new Deployment do.
            for replica in self.replicas:
                self._spawn(replica)
            self._wait_replicas()
            self._start_nginx(nginx)
        except BaseException:
            self.stop()
            raise

    def _spawn(self, replica: Replica) -> None:
        env = dict(self.env) | {
            "KONFIG_PORT": str(replica.port),
            "KONFIG_HOST": "127.0.0.1",
            "KONFIG_DATA_DIR": str(self.run_dir / "data"),
        }
        with replica.log.open("wb") as log:
            replica.process = subprocess.Popen(
                [sys.executable, "-m", "konfig", "serve"],
                env=env,
                cwd=self.run_dir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Their own process group: Ctrl-C reaches only this runner, which then stops
                # nginx first and the replicas after, in order.
                start_new_session=True,
            )

    def _wait_replicas(self) -> None:
        deadline = time.monotonic() + self.ready_timeout
        waiting = list(self.replicas)
        with httpx.Client(timeout=1) as http:
            while waiting:
                for replica in list(waiting):
                    if not replica.alive():
                        raise ClusterError(
                            f"replica {replica.index} exited; its log ({replica.log}) ends:\n"
                            + "\n".join(replica.log_text().splitlines()[-20:])
                        )
                    try:
                        if http.get(f"{replica.url}/ready").status_code == 200:
                            waiting.remove(replica)
                    except httpx.TransportError:
                        pass
                if waiting and time.monotonic() > deadline:
                    names = ", ".join(str(r.index) for r in waiting)
                    raise ClusterError(f"replica(s) {names} not ready in {self.ready_timeout} s")
                if waiting:
                    time.sleep(0.1)

    def _start_nginx(self, nginx: str) -> None:
        conf = self.run_dir / "nginx.conf"
        conf.write_text(
            render_nginx_conf(
                run_dir=self.run_dir,
                listen=self.listen,
                upstreams=[r.address for r in self.replicas],
            )
        )
        prefix = str(self.run_dir)
        command = [nginx, "-p", prefix, "-c", str(conf), "-e", f"{prefix}/nginx-error.log"]
        global_directives = f"daemon off; pid {prefix}/nginx.pid;"
        check = subprocess.run(
            [*command, "-g", global_directives, "-t", "-q"], capture_output=True, text=True
        )
        if check.returncode != 0:
            raise ClusterError(f"nginx refused {conf}:\n{check.stderr}")
        with (self.run_dir / "nginx.out").open("wb") as out:
            self.nginx = subprocess.Popen(
                [*command, "-g", global_directives],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 10
        with httpx.Client(timeout=1) as http:
            while True:
                if self.nginx.poll() is not None:
                    log = (self.run_dir / "nginx-error.log").read_text(errors="replace")
                    raise ClusterError(f"nginx exited with {self.nginx.returncode}:\n{log}")
                try:
                    if http.get(f"{self.url}/ready").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise ClusterError(f"nginx on {self.listen} did not answer /ready")
                time.sleep(0.05)

    def kill(self, replica: Replica) -> None:
        """SIGKILL one replica, as a node failure or the OOM killer would, and reap it."""
        if replica.process is None:
            raise ClusterError(f"replica {replica.index} was never started")
        replica.process.kill()
        replica.process.wait()

    def stop(self, timeout: float = 30) -> dict[str, int | None]:
        """nginx first (no new requests), then the replicas (SIGTERM, graceful); SIGKILL for
        what is still running after ``timeout``. Returns each process's exit code."""
        codes: dict[str, int | None] = {}
        if self.nginx is not None:
            codes["nginx"] = _terminate(self.nginx, signal.SIGQUIT, timeout)
        for replica in self.replicas:
            if replica.process is not None:
                codes[f"replica-{replica.index}"] = _terminate(
                    replica.process, signal.SIGTERM, timeout
                )
        return codes

    def migration_report(self) -> list[str | None]:
        """For each replica, its ``database migrated from … to …`` line, or None."""
        report: list[str | None] = []
        for replica in self.replicas:
            found = MIGRATED.search(replica.log_text())
            report.append(f"database migrated from {found[1]} to {found[2]}" if found else None)
        return report

    def __enter__(self) -> Cluster:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


def _terminate(process: subprocess.Popen[bytes], sig: signal.Signals, timeout: float) -> int | None:
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


def parse_ports(text: str) -> list[int]:
    """``8101,8102,8103`` or ``8101-8103``."""
    if "-" in text:
        first, last = (int(part) for part in text.split("-", 1))
        return list(range(first, last + 1))
    return [int(part) for part in text.split(",") if part.strip()]
