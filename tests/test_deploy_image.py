"""The Dockerfile and .dockerignore, checked statically (there is no Docker engine here).

The Dockerfile is read with dockerfile-parse, the same instruction parser image tooling uses, and
each rule the deployment issue sets is asserted on the parsed instructions of its stages.
"""

from __future__ import annotations

import re
import shlex

import pytest

from tests.support.dockerfile import (
    ROOT,
    Stage,
    env_pairs,
    exec_form,
    healthcheck_command,
    parse_stages,
)

BUILD_TOOLS = ("build-essential", "gcc", "g++", "clang", "make", "cmake", "libc6-dev", "rustc")
SECRET_NAME = re.compile(r"SECRET|PASSWORD|PASSWD|TOKEN|ENCRYPTION_KEY|PRIVATE|CREDENTIAL", re.I)


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse_stages()


@pytest.fixture(scope="module")
def final(stages: list[Stage]) -> Stage:
    return stages[-1]


def test_the_build_is_multi_stage_with_a_named_builder(stages: list[Stage]) -> None:
    assert len(stages) >= 2
    assert stages[0].alias == "builder"
    assert {stage.alias for stage in stages[:-1]} >= {"builder"}


def test_every_base_image_is_pinned_and_the_final_one_is_a_slim_python(
    stages: list[Stage], final: Stage
) -> None:
    aliases = {stage.alias for stage in stages if stage.alias}
    for stage in stages:
        if stage.image in aliases:
            continue
        name, _, tag = stage.image.partition("@")[0].rpartition(":")
        assert name and tag, f"{stage.image}: no tag"
        assert tag != "latest", f"{stage.image}: the latest tag is not reproducible"
    match = re.fullmatch(r"python:(\d+)\.(\d+)(?:\.\d+)?-slim(?:-\w+)?", final.image)
    assert match, f"final stage is {final.image}, not a slim Python image"
    assert (int(match[1]), int(match[2])) >= (3, 11)


def test_the_final_stage_copies_the_build_from_the_builder(final: Stage) -> None:
    copies = [i.value for i in final.all("COPY")]
    assert any(value.startswith("--from=builder ") for value in copies), copies
    # Nothing but the builder's output: no source tree copied from the build context.
    assert all("--from=" in value for value in copies), copies


def test_no_build_tools_in_the_final_stage(final: Stage) -> None:
    for run in final.all("RUN"):
        words = set(re.split(r"[\s;&|()]+", run.value))
        assert not words & set(BUILD_TOOLS), f"build tools in the runtime stage: {run.value}"
        assert "pip install" not in run.value, "the runtime stage installs nothing itself"


def test_the_final_stage_runs_as_a_numeric_non_root_user_before_cmd(final: Stage) -> None:
    names = [i.name for i in final.instructions]
    users = [i for i in final.instructions if i.name == "USER"]
    assert users, "the runtime stage never drops root"
    last_user = users[-1].value
    uid, _, gid = last_user.partition(":")
    assert uid.isdigit() and int(uid) > 0, f"USER {last_user}: numeric and non-zero needed"
    assert not gid or (gid.isdigit() and int(gid) > 0)
    last_user_at = max(i for i, name in enumerate(names) if name == "USER")
    assert last_user_at < names.index("CMD")
    assert not any(name == "RUN" for name in names[last_user_at:]), "RUN after USER runs as it"


def test_the_uid_in_user_is_the_one_the_image_creates(final: Stage) -> None:
    uid = final.all("USER")[-1].value.partition(":")[0]
    assert any(f"--uid {uid}" in run.value for run in final.all("RUN"))


def test_no_secret_is_baked_into_env_or_arg(stages: list[Stage]) -> None:
    for stage in stages:
        for instruction in stage.all("ENV"):
            for name in env_pairs(instruction.value):
                assert not SECRET_NAME.search(name), f"ENV {name} would ship in the image"
        for instruction in stage.all("ARG"):
            name = instruction.value.partition("=")[0]
            assert not SECRET_NAME.search(name), f"ARG {name} is kept in the image history"


def test_the_runtime_serves_from_the_data_volume_on_port_8000(final: Stage) -> None:
    env: dict[str, str] = {}
    for instruction in final.all("ENV"):
        env |= env_pairs(instruction.value)
    assert env["KONFIG_DATA_DIR"] == "/data"
    volumes = [v for i in final.all("VOLUME") for v in exec_form(i.value)]
    assert volumes == ["/data"]
    assert [i.value for i in final.all("EXPOSE")] == ["8000"]
    (cmd,) = final.all("CMD")
    assert exec_form(cmd.value) == ["konfig", "serve", "--host", "0.0.0.0"]  # noqa: S104
    assert not final.all("ENTRYPOINT")


def test_the_healthcheck_asks_health_with_python(final: Stage) -> None:
    command = healthcheck_command(final)
    assert command[:2] == ["python", "-c"], "a slim image has no curl or wget"
    compile(command[2], "HEALTHCHECK", "exec")
    assert "/health" in command[2]
    (check,) = final.all("HEALTHCHECK")
    options = dict(re.findall(r"--([a-z-]+)=(\S+)", check.value))
    assert {"interval", "timeout", "start-period", "retries"} <= options.keys()


def dockerignore_patterns() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def pattern_regex(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern (Go's filepath.Match plus `**`) as a regular expression."""
    pattern = pattern.strip("/")
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        elif pattern[i] == "[":
            close = pattern.index("]", i)
            out, i = out + pattern[i : close + 1], close + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out)


def ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: a pattern matching a directory excludes all below it; the last match wins."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    result = False
    for pattern in patterns:
        regex = pattern_regex(pattern.removeprefix("!"))
        if any(regex.fullmatch(prefix) for prefix in prefixes):
            result = not pattern.startswith("!")
    return result


def test_the_matcher_follows_dockers_rules() -> None:
    patterns = [".env", ".env.*", "!.env.example", "**/__pycache__/", "tests/", "*.db"]
    assert ignored(".env", patterns)
    assert ignored(".env.local", patterns)
    assert not ignored(".env.example", patterns)
    assert ignored("src/konfig/__pycache__/app.cpython-311.pyc", patterns)
    assert ignored("__pycache__/x.pyc", patterns)
    assert ignored("tests/test_ops.py", patterns)
    assert not ignored("src/konfig/app.py", patterns)
    assert ignored("konfig.db", patterns)
    assert not ignored("data/konfig.db", patterns)  # `*` never crosses a `/`


def test_the_build_context_keeps_what_the_builder_copies_and_nothing_secret(
    stages: list[Stage],
) -> None:
    patterns = dockerignore_patterns()
    for stage in stages:
        for copy in stage.all("COPY"):
            if copy.value.startswith("--from="):
                continue
            *sources, _destination = shlex.split(copy.value)
            for source in sources:
                assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
                assert not ignored(source, patterns), f"COPY {source}: excluded by .dockerignore"
    for kept_out in (".env", ".env.production", ".git", ".venv", "data/konfig.db", "tests"):
        assert ignored(kept_out, patterns), f"{kept_out} would be sent to the Docker daemon"
