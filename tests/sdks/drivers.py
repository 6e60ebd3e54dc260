"""The conformance drivers: one small command-line program per SDK, built once per session.

Each speaks the same protocol (see ``python_driver.py``): ``read``, ``get`` and ``watch``
commands, configured by ``KONFIG_URL`` and ``KONFIG_TOKEN``, one JSON line per result.
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.conftest import unavailable

ROOT = Path(__file__).resolve().parents[2]
SDKS = ROOT / "sdks"
SDK_NAMES = ("python", "javascript", "go", "java")


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        unavailable(f"{name} on PATH (for the SDK conformance suite; .ci/run installs it)")
    return path


@functools.cache
def build_javascript() -> Path:
    """The TypeScript SDK compiled into ``dist`` beside its package.json: a package, built once
    per test process (tsc takes seconds) into a directory removed at exit."""
    node, package = tool("node"), SDKS / "javascript"
    tsc = package / "node_modules" / "typescript" / "bin" / "tsc"
    if not tsc.exists():
        unavailable("sdks/javascript/node_modules (run `npm ci` there; .ci/run does)")
    out = Path(tempfile.mkdtemp(prefix="konfig-sdk-javascript-"))
    atexit.register(shutil.rmtree, out, ignore_errors=True)
    shutil.copy(package / "package.json", out / "package.json")
    subprocess.run(
        [node, str(tsc), "-p", str(package / "tsconfig.json"), "--outDir", str(out / "dist")],
        check=True,
        timeout=300,
    )
    return out


def go_env() -> dict[str, str]:
    """Builds offline: the SDK uses the standard library only, so nothing is to be fetched.
    Go keeps its caches under $HOME, which a CI runner may not set."""
    env = os.environ | {"GOPROXY": "off", "GOFLAGS": "-mod=mod", "CGO_ENABLED": "0"}
    if "HOME" not in env:
        scratch = Path(tempfile.gettempdir()) / "konfig-sdk-go"
        env.setdefault("GOCACHE", str(scratch / "cache"))
        env.setdefault("GOPATH", str(scratch / "path"))
    return env


def build_go(out: Path) -> Path:
    binary = out / "konfig-conformance"
    subprocess.run(
        [tool("go"), "build", "-o", str(binary), "./cmd/konfig-conformance"],
        cwd=SDKS / "go",
        env=go_env(),
        check=True,
        timeout=300,
    )
    return binary


# Debian's packages (`apt-get install libjackson2-databind-java junit5`; .ci/run installs them).
JAVA_LIBS = Path("/usr/share/java")


@functools.cache
def build_java() -> Path:
    """The Java SDK's jars (``make`` in sdks/java: javac and jar, offline), built once per test
    process into a directory removed at exit; its unit tests' classes too, in the same run."""
    for jar, package in (
        ("jackson-databind.jar", "libjackson2-databind-java"),
        ("junit-platform-console-standalone.jar", "junit5"),
    ):
        if not (JAVA_LIBS / jar).exists():
            unavailable(f"{JAVA_LIBS / jar} (apt-get install {package}; .ci/run does)")
    tool("javac")
    out = Path(tempfile.mkdtemp(prefix="konfig-sdk-java-"))
    atexit.register(shutil.rmtree, out, ignore_errors=True)
    make = [tool("make"), "-s", "-C", str(SDKS / "java"), f"OUT={out}", f"JAVA_LIBS={JAVA_LIBS}"]
    subprocess.run([*make, "all", f"{out}/test-classes/.built"], check=True, timeout=300)
    return out


def java_classpath(*jars: Path) -> str:
    jackson = [JAVA_LIBS / f"jackson-{name}.jar" for name in ("databind", "core", "annotations")]
    return os.pathsep.join(str(jar) for jar in (*jars, *jackson))


# A driver runs for a second or less: the JIT's first tier and the shared class archive start
# the JVM fastest.
JAVA_FLAGS = ("-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-Xshare:auto")


@dataclass
class Driver:
    """One SDK's driver program."""

    sdk: str
    argv: list[str]

    def env(self, url: str, token: str | None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KONFIG_")}
        env["KONFIG_URL"] = url
        if token is not None:
            env["KONFIG_TOKEN"] = token
        return env

    def run(self, url: str, token: str | None, *args: str, instance: str | None = None) -> Result:
        """Run the driver; ``instance``: its KONFIG_INSTANCE (the SDK's X-Konfig-Instance)."""
        env = self.env(url, token)
        if instance is not None:
            env["KONFIG_INSTANCE"] = instance
        done = subprocess.run(
            [*self.argv, *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        lines = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
        return Result(done.returncode, lines, done.stderr)

    def watch(self, url: str, token: str | None, *args: str) -> Watching:
        process = subprocess.Popen(
            [*self.argv, "watch", *args],
            env=self.env(url, token),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        return Watching(process)


@dataclass
class Result:
    returncode: int
    lines: list[dict[str, Any]]
    stderr: str

    @property
    def only(self) -> dict[str, Any]:
        assert len(self.lines) == 1, (self.lines, self.stderr)
        return self.lines[0]

    @property
    def error(self) -> dict[str, Any]:
        assert self.returncode == 1, (self.returncode, self.lines, self.stderr)
        error: dict[str, Any] = self.only["error"]
        return error


@dataclass
class Watching:
    """A running ``watch``: its output lines as they come, read by a thread."""

    process: subprocess.Popen[str]
    lines: queue.Queue[dict[str, Any] | None] = field(default_factory=queue.Queue)
    retries: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.strip():
                self.lines.put(json.loads(line))
        self.lines.put(None)

    def next(self, timeout: float = 30) -> dict[str, Any]:
        """The next config or error line (retry notices are kept aside), within ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no output within {timeout} s") from None
            if line is None:
                raise AssertionError(f"the watch ended: {self.stderr()}")
            if "retrying" in line:
                self.retries.append(line["retrying"])
                continue
            return line

    def exit_code(self, timeout: float = 30) -> int:
        return self.process.wait(timeout)

    def stderr(self) -> str:
        if self.process.poll() is None or self.process.stderr is None:
            return "(still running)"
        return self.process.stderr.read()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
        self.process.wait(30)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()


def build(sdk: str, out: Path) -> Driver:
    if sdk == "python":
        return Driver(sdk, [sys.executable, str(Path(__file__).with_name("python_driver.py"))])
    if sdk == "javascript":
        package = build_javascript()
        return Driver(sdk, [tool("node"), str(package / "dist" / "conformance.js")])
    if sdk == "java":
        jars = build_java()
        classpath = java_classpath(jars / "konfig-conformance.jar", jars / "konfig-client.jar")
        return Driver(
            sdk, [tool("java"), *JAVA_FLAGS, "-cp", classpath, "dev.konfig.conformance.Main"]
        )
    return Driver(sdk, [str(build_go(out / "go"))])
