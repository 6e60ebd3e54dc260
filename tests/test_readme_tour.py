"""README.md's API tour runs as written.

Every ``bash`` block of the tour (from "## API tour" to the next top-level section) runs, top to
bottom, in one bash session against a fresh ``konfig serve`` (a real process, SQLite in a
temporary directory), so the variables a block sets (with ``jq``) serve the blocks after it.
Only the server's address is changed (the README's ``http://localhost:8000``); the server
allows webhooks to loopback, as the README says to start it. ``curl``
fails on a refused request (``--fail-with-body``): a README change that breaks a block fails
this test, naming the block and the command.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import unavailable
from tests.support.servers import ServerProcess, start_server

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
README_URL = "http://localhost:8000"

# Set before the first block. A stream cut by its own --max-time is how its example ends.
PRELUDE = r"""
set -euo pipefail
curl() {
  local status=0
  command curl --fail-with-body --silent --show-error "$@" || status=$?
  if [ "$status" = 28 ] && [[ " $* " == *" --max-time "* ]]; then status=0; fi
  if [ "$status" != 0 ]; then echo "README tour: curl $*" >&2; fi
  return "$status"
}
trap 'echo "README tour, block $BLOCK (line $LINE of README.md) failed" >&2' ERR
"""


def tour_blocks(readme: str) -> list[tuple[int, str]]:
    """The tour's bash blocks, each with the README line its code starts on."""
    start = readme.index("\n## API tour\n")
    end = readme.index("\n## ", start + 1)
    blocks = []
    for found in re.finditer(r"^```bash\n(.*?)^```$", readme[start:end], re.S | re.M):
        line = readme[: start + found.start(1)].count("\n") + 1
        blocks.append((line, found.group(1)))
    return blocks


def script(blocks: list[tuple[int, str]], url: str) -> str:
    parts = [PRELUDE]
    for number, (line, code) in enumerate(blocks, 1):
        parts.append(f"BLOCK={number} LINE={line}\n" + code.replace(README_URL, url))
    parts.append('echo "README tour: every block ran"\n')
    return "\n".join(parts)


def run_bash(source: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    for tool in ("bash", "curl", "jq"):
        if shutil.which(tool) is None:
            unavailable(f"{tool} on PATH (for the README tour; .ci/run installs it)")
    return subprocess.run(
        ["bash", "-c", source], cwd=cwd, capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    started = start_server(
        tmp_path_factory.mktemp("readme-tour"), KONFIG_WEBHOOK_ALLOWED_NETWORKS="127.0.0.1/32"
    )
    yield started
    started.stop()


def test_every_shell_block_of_the_tour_runs_in_order(server: ServerProcess, tmp_path: Path) -> None:
    blocks = tour_blocks((ROOT / "README.md").read_text())
    assert len(blocks) >= 8, "the tour lost its examples"
    done = run_bash(script(blocks, server.url), tmp_path)
    assert done.returncode == 0, done.stderr[-4000:] + done.stdout[-2000:]
    assert done.stdout.rstrip().endswith("README tour: every block ran")
    # What the read path's comments promise: the values, a 304 for the ETag, a change event.
    assert "CURRENCY=USD" in done.stdout
    assert re.search(r"^HTTP/1.1 304", done.stdout, re.M), "If-None-Match did not match"
    assert "event: change" in done.stdout


def test_a_block_that_breaks_fails_the_tour(server: ServerProcess, tmp_path: Path) -> None:
    """The harness itself: a request the server refuses stops the run and names its block."""
    broken = [(1, f"curl {README_URL}/api/v1/auth/me\n"), (2, "echo never\n")]
    done = run_bash(script(broken, server.url), tmp_path)
    assert done.returncode != 0
    assert "README tour, block 1 (line 1 of README.md) failed" in done.stderr
    assert f"README tour: curl {server.url}/api/v1/auth/me" in done.stderr
    assert "UNAUTHENTICATED" in done.stdout
    assert "never" not in done.stdout
