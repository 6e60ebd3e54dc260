"""The CLI as a newcomer meets it, against a live `konfig serve`: `run --watch` stops the whole
process group it started, `render --export`, no login, `--version`, `-h`, help in words."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import PASSWORD
from tests.support.cli import Cli, new_tenant
from tests.support.servers import ServerProcess, start_server

NS = "payments/production"
KONFIG = [sys.executable, "-m", "konfig"]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    started = start_server(tmp_path_factory.mktemp("server"))
    yield started
    assert started.stop() == 0


@pytest.fixture
def cli(server: ServerProcess, tmp_path: Path) -> Cli:
    # Set up in process; what a newcomer meets (the process, its help, run) runs as a child.
    user = Cli(tmp_path / "home", server.url, new_tenant(server.url), in_process=True)
    user.ok("login", "--url", user.url, "--email", user.email, "--password", PASSWORD)
    user.ok("ns", "create", NS)
    user.ok("set", NS, "port=8000", "--type", "number")
    return user


def gone(pid: int) -> bool:
    """Whether a process has ended (a zombie no one reaped yet has ended too)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def test_run_watch_restarts_the_whole_process_group(cli: Cli) -> None:
    # The child starts a grandchild that ignores SIGTERM, as a server behind a shell script
    # or npm would hold its port; each start prints the port it got and the grandchild's pid.
    script = "(trap '' TERM; exec sleep 300) & echo \"$PORT $!\"; wait"
    run = subprocess.Popen(
        [sys.executable, "-m", "konfig", "run", NS, "--watch", "--", "sh", "-c", script],
        env=cli.env,
        stdout=subprocess.PIPE,
        text=True,
    )
    grandchildren: list[int] = []
    try:
        assert run.stdout is not None
        for change in range(1, 11):
            port, pid = run.stdout.readline().split()
            assert int(port) == 8000 + change - 1
            grandchildren.append(int(pid))
            cli.ok("set", NS, f"port={8000 + change}", "--type", "number")
        port, pid = run.stdout.readline().split()
        assert int(port) == 8010
        grandchildren.append(int(pid))
        assert [gone(pid) for pid in grandchildren[:-1]] == [True] * 10
        assert not gone(grandchildren[-1])
    finally:
        run.terminate()
        assert run.wait(30) == 143
    assert gone(grandchildren[-1])


def test_run_watch_stops_what_is_left_of_a_child_that_exits(cli: Cli) -> None:
    script = "(trap '' TERM; exec sleep 300) & echo $!; exit 3"
    result = cli("run", NS, "--watch", "--", "sh", "-c", script)
    assert result.returncode == 3, result.stderr
    assert gone(int(result.stdout))
    alone = cli("run", NS, "--watch", "--", "sh", "-c", "exit 4")  # nothing left to stop
    assert alone.returncode == 4, alone.stderr


def test_run_watch_kills_a_child_that_ignores_sigterm_after_its_grace(cli: Cli) -> None:
    script = "trap '' TERM; echo \"$PORT $$\"; while :; do sleep 0.1; done"
    run = subprocess.Popen(
        [*KONFIG, "run", NS, "--watch", "--grace", "0.5", "--", "sh", "-c", script],
        env=cli.env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert run.stdout is not None
        port, first = run.stdout.readline().split()
        assert port == "8000"
        cli.ok("set", NS, "port=8001", "--type", "number")
        port, second = run.stdout.readline().split()
        assert port == "8001" and gone(int(first))
    finally:
        run.terminate()
        assert run.wait(30) == 143
    assert gone(int(second))


def test_render_export_exports_to_a_child_process(cli: Cli) -> None:
    cli.ok("set", NS, 'greeting=it\'s a "quoted" $HOME', "db.url=postgres://db/app")
    exported = cli.ok("render", NS, "--export")
    assert "export PORT=8000\n" in exported
    script = f'eval "$({sys.executable} -m konfig render {NS} --export)"; env'
    child_env = subprocess.run(
        ["sh", "-c", script], env=cli.env, capture_output=True, text=True, check=True, timeout=60
    ).stdout.splitlines()
    assert 'GREETING=it\'s a "quoted" $HOME' in child_env
    assert "DB_URL=postgres://db/app" in child_env
    assert "PORT=8000" in child_env
    refused = cli("render", NS, "--export", "--format", "json")
    assert refused.returncode == 2 and "--export prints shell lines" in refused.stderr


def test_without_a_login_a_command_says_so(tmp_path: Path) -> None:
    nobody = Cli(tmp_path / "home", "", "")
    for command in (["get", NS, "port"], ["ns", "list"], ["render", NS], ["run", NS, "--", "true"]):
        result = nobody(*command)
        assert result.returncode == 1, command
        assert "not logged in: run `konfig login`" in result.stderr, result.stderr
        assert "onnect" not in result.stderr  # no server was tried
    token_only = nobody("get", NS, "port", env={"KONFIG_TOKEN": "kfg_" + "a" * 48})
    assert token_only.returncode == 1
    assert "KONFIG_TOKEN is set but not KONFIG_URL" in token_only.stderr
    asked = nobody("login", "--email", "a@example.com", "--password", "x", input="")
    assert asked.returncode != 0 and "Server URL" in asked.stdout


def test_version_short_help_and_help_in_words(tmp_path: Path) -> None:
    nobody = Cli(tmp_path / "home", "", "")
    from konfig import __version__

    assert nobody.ok("--version") == f"konfig {__version__}\n"
    assert nobody.ok("-V") == f"konfig {__version__}\n"
    assert nobody.ok("-h") == nobody.ok("--help")
    for command in (["ns", "create"], ["run"], ["set"], ["tokens", "create"], ["serve"]):
        shown = nobody.ok(*command, "-h", env={"COLUMNS": "200"})
        assert "Usage:" in shown
        assert not re.search(r"<\w|list\[|\bint range", shown), shown  # <str>, <list[str]>, <bool>
    assert "TEXT" in nobody.ok("ns", "create", "-h", env={"COLUMNS": "200"})


def test_import_ends_with_a_summary_and_shows_its_progress(cli: Cli, tmp_path: Path) -> None:
    cli.ok("set", NS, "old=1", "kept=k")
    source = tmp_path / "next.env"
    source.write_text("PORT=9000\nKEPT=k\nNEW_ONE=a\nNEW_TWO=b\n")
    summary = cli("import", NS, str(source), "--mode", "replace", "--dry-run")
    assert summary.returncode == 0, summary.stderr
    assert "+2 ~1 -1, now at revision" in summary.stderr  # new_one, new_two; port; old
    # The CLI with its one-second delay at 0, on a terminal (so rich draws): the progress shows.
    script = (
        "import sys; import konfig.cli.revisions as r; r.PROGRESS_AFTER = 0; "
        "from konfig.cli.app import main; sys.argv[0] = 'konfig'; main()"
    )
    shown = subprocess.run(
        [sys.executable, "-c", script, "import", NS, str(source)],
        env=cli.env | {"TTY_COMPATIBLE": "1"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shown.returncode == 0, shown.stderr
    assert "next.env" in shown.stderr.split("imported")[0]  # drawn before the summary
    assert "+2 ~1 -0, now at revision" in shown.stderr


def test_history_shows_emails_and_no_null(cli: Cli) -> None:
    cli.ok("set", NS, "port=8001", "--type", "number")
    cli.ok("unset", NS, "port")
    revisions = cli.ok("history", NS, env={"COLUMNS": "200"})
    assert cli.email in revisions and "user:" not in revisions
    assert "null" not in revisions and "None" not in revisions
    versions = cli.ok("history", NS, "port", env={"COLUMNS": "200"})
    assert versions.count(cli.email) == 3 and "delete" in versions
    assert "null" not in versions and "user:" not in versions
    as_json = cli.ok("history", NS, "port", "-o", "json")
    assert '"value": null' in as_json and f'"actor_email": "{cli.email}"' in as_json


def test_create_superuser_reads_the_password_on_standard_input(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KONFIG_")}
    env["KONFIG_DATA_DIR"] = str(tmp_path / "data")
    command = [sys.executable, "-m", "konfig", "users", "create-superuser"]
    made = subprocess.run(
        [*command, "--email", "root@example.com"],
        env=env,
        input=f"{PASSWORD}\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert made.returncode == 0, made.stderr
    assert PASSWORD not in made.stdout + made.stderr
    empty = subprocess.run(
        [*command, "--email", "other@example.com"],
        env=env,
        input="\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert empty.returncode == 2 and "pipe it on standard input" in empty.stderr
    server = start_server(tmp_path)
    try:
        nobody = Cli(tmp_path / "home", server.url, "root@example.com")
        logged = nobody("login", "--url", server.url, "--email", "root@example.com", input=PASSWORD)
        assert logged.returncode == 0, logged.stderr
        assert "root@example.com" in nobody.ok("whoami")
    finally:
        assert server.stop() == 0
