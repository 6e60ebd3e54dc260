"""Each SDK's own unit tests, run by its own tool: Node's test runner, ``go test``, JUnit."""

from __future__ import annotations

import json
import re
import subprocess

import pytest

from tests.sdks.drivers import JAVA_LIBS, SDKS, build_java, build_javascript, go_env, tool

pytestmark = pytest.mark.slow


def test_javascript_sdk_unit_tests() -> None:
    package = build_javascript()
    done = subprocess.run(
        [tool("node"), "--test", str(package / "dist" / "test")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "# fail 0" in done.stdout and "# pass 0" not in done.stdout
    assert (package / "dist" / "index.d.ts").exists()  # typed declarations ship


def test_javascript_sdk_has_no_runtime_dependencies() -> None:
    manifest = json.loads((SDKS / "javascript" / "package.json").read_text())
    assert "dependencies" not in manifest
    assert set(manifest["devDependencies"]) == {"typescript", "@types/node"}
    lock = json.loads((SDKS / "javascript" / "package-lock.json").read_text())
    assert lock["packages"][""]["devDependencies"] == manifest["devDependencies"]


def test_go_sdk_unit_tests() -> None:
    go = tool("go")
    done = subprocess.run(
        [go, "test", "-count=1", "./..."],
        cwd=SDKS / "go",
        env=go_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ok  \tgithub.com/konfig/konfig/sdks/go" in done.stdout
    vet = subprocess.run(
        [go, "vet", "./..."], cwd=SDKS / "go", env=go_env(), capture_output=True, text=True
    )
    assert vet.returncode == 0, vet.stderr
    unformatted = subprocess.run(
        [tool("gofmt"), "-l", "."], cwd=SDKS / "go", capture_output=True, text=True
    )
    assert unformatted.stdout == "", f"not gofmt-ed: {unformatted.stdout}"


def test_go_sdk_uses_the_standard_library_only() -> None:
    go_mod = (SDKS / "go" / "go.mod").read_text()
    assert "require" not in go_mod
    assert not (SDKS / "go" / "go.sum").exists()


def test_java_sdk_unit_tests() -> None:
    out = build_java()  # compiled with -Xlint:all -Werror, the tests' classes included
    done = subprocess.run(
        [
            tool("make"),
            "-s",
            "-C",
            str(SDKS / "java"),
            f"OUT={out}",
            f"JAVA_LIBS={JAVA_LIBS}",
            "test",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    passed = re.search(r"\[\s*(\d+) tests successful\s*\]", done.stdout)
    assert passed and int(passed.group(1)) >= 10, done.stdout
    assert re.search(r"\[\s*0 tests failed\s*\]", done.stdout), done.stdout


def test_java_sdk_depends_on_the_jdk_and_jackson_only() -> None:
    """No hand-written JSON parser, no other library: what the README says a service needs."""
    imported = set()
    for source in (SDKS / "java" / "src" / "main").rglob("*.java"):
        imported |= set(re.findall(r"^import (?:static )?([\w.]+)\.\w+;", source.read_text(), re.M))
    outside = {
        name
        for name in imported
        if not name.startswith(("java.", "com.fasterxml.jackson.", "dev.konfig."))
    }
    assert imported and not outside, outside
