"""Each SDK README's example runs as written against a live server and sees a change."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.sdks.conftest import NS, Site
from tests.sdks.drivers import (
    SDKS,
    Watching,
    build_java,
    build_javascript,
    go_env,
    tool,
)

pytestmark = pytest.mark.slow


def example(readme: Path, language: str) -> str:
    """The README's first code block in ``language``."""
    found = re.search(rf"^```{language}\n(.*?)^```", readme.read_text(), re.S | re.M)
    assert found, f"no {language} example in {readme}"
    return found.group(1)


def run_example(argv: list[str], cwd: Path, site: Site, token: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KONFIG_")}
    env |= {"KONFIG_URL": site.url, "KONFIG_TOKEN": token} | go_env()
    process = subprocess.Popen(
        argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    output = RawLines(process)
    try:
        assert output.next() == "timeout=10 currency=USD stale=false"
        assert output.next() == "timeout is now 10"
        site.set("timeout", 25, "number")
        assert output.next() == "timeout is now 25"
        assert output.exit_code() == 0, output.stderr()
        lkg = cwd / "konfig-last-known-good.json"
        assert oct(lkg.stat().st_mode & 0o777) == oct(0o600)
    finally:
        output.stop()
        site.set("timeout", 10, "number")


class RawLines(Watching):
    """A process's stdout lines as text (the examples print words, not JSON)."""

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put({"text": line.rstrip("\n")})
        self.lines.put(None)

    def next(self, timeout: float = 120) -> str:  # type: ignore[override]
        line: str = super().next(timeout)["text"]
        return line


def test_javascript_readme_example_runs(site: Site, tmp_path: Path) -> None:
    _, token = site.token("read", "secrets")
    package = build_javascript()
    service = tmp_path / "service"
    (service / "node_modules" / "@konfig").mkdir(parents=True)
    # What `npm install /path/to/sdks/javascript` makes: a link to the package.
    (service / "node_modules" / "@konfig" / "client").symlink_to(package)
    (service / "example.mjs").write_text(example(SDKS / "javascript" / "README.md", "js"))
    run_example([tool("node"), "example.mjs"], service, site, token)


def test_javascript_readme_example_typechecks_as_typescript(tmp_path: Path) -> None:
    """A TypeScript service compiles the same example, strict, against the package's types."""
    javascript = SDKS / "javascript"
    package = build_javascript()
    service = tmp_path / "service"
    (service / "node_modules" / "@konfig").mkdir(parents=True)
    (service / "node_modules" / "@konfig" / "client").symlink_to(package)
    (service / "node_modules" / "@types").symlink_to(javascript / "node_modules" / "@types")
    (service / "example.mts").write_text(example(javascript / "README.md", "js"))
    tsc = javascript / "node_modules" / "typescript" / "bin" / "tsc"
    options = "--noEmit --strict --target es2022 --module nodenext --moduleResolution nodenext"
    done = subprocess.run(
        [tool("node"), str(tsc), *options.split(), "--types", "node", "example.mts"],
        cwd=service,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_go_readme_example_runs(site: Site, tmp_path: Path) -> None:
    _, token = site.token("read", "secrets")
    service = tmp_path / "service"
    service.mkdir()
    (service / "go.mod").write_text(
        "module example.com/service\n\ngo 1.19\n\n"
        "require github.com/konfig/konfig/sdks/go v0.0.0\n\n"
        f"replace github.com/konfig/konfig/sdks/go => {SDKS / 'go'}\n"
    )
    (service / "main.go").write_text(example(SDKS / "go" / "README.md", "go"))
    run_example([tool("go"), "run", "."], service, site, token)


def test_python_readme_example_runs(site: Site, tmp_path: Path) -> None:
    _, token = site.token("read", "secrets")
    service = tmp_path / "service"
    service.mkdir()
    (service / "example.py").write_text(example(SDKS / "python" / "README.md", "python"))
    run_example([sys.executable, "example.py"], service, site, token)


def test_java_readme_example_runs(site: Site, tmp_path: Path) -> None:
    _, token = site.token("read", "secrets")
    service = tmp_path / "service"
    service.mkdir()
    (service / "Example.java").write_text(example(SDKS / "java" / "README.md", "java"))
    # The README's command: `java -cp "$(make -s -C sdks/java classpath)" Example.java`.
    make = [tool("make"), "-s", "-C", str(SDKS / "java"), f"OUT={build_java()}", "classpath"]
    classpath = subprocess.run(make, capture_output=True, text=True, check=True).stdout.strip()
    run_example([tool("java"), "-cp", classpath, "Example.java"], service, site, token)


def test_readmes_name_the_example_test() -> None:
    for language in ("javascript", "go", "java", "python"):
        assert "tests/sdks/test_readme_examples.py" in (SDKS / language / "README.md").read_text()
    for language in ("go", "java", "python"):
        assert NS in example(SDKS / language / "README.md", language)
