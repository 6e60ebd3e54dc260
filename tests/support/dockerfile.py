"""The Dockerfile read into stages and instructions."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from dockerfile_parse import DockerfileParser

ROOT = Path(__file__).resolve().parents[2]


DOCKERFILE = ROOT / "Dockerfile"


@dataclass
class Instruction:
    name: str
    value: str


@dataclass
class Stage:
    image: str  # with build arguments resolved
    alias: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, name: str) -> list[Instruction]:
        return [i for i in self.instructions if i.name == name]


def parse_stages(path: Path = DOCKERFILE) -> list[Stage]:
    """The Dockerfile's stages, each with its instructions (comments dropped)."""
    parser = DockerfileParser(path=str(path))
    images = iter(parser.parent_images)  # FROM images with global ARG defaults substituted
    stages: list[Stage] = []
    for item in parser.structure:
        name, value = item["instruction"], item["value"]
        if name == "FROM":
            words = value.split()
            alias = words[-1] if len(words) >= 3 and words[-2].upper() == "AS" else None
            stages.append(Stage(image=next(images), alias=alias))
        elif name != "COMMENT" and stages:
            stages[-1].instructions.append(Instruction(name, value))
    return stages


def env_pairs(value: str) -> dict[str, str]:
    """`ENV A=1 B="two words"` (or the legacy `ENV A 1`) as a dict."""
    words = shlex.split(value)
    if words and "=" not in words[0]:
        return {words[0]: " ".join(words[1:])}
    return dict(word.split("=", 1) for word in words)


def exec_form(value: str) -> list[str]:
    """The JSON (exec) form of CMD/ENTRYPOINT/HEALTHCHECK CMD, which must be used."""
    parsed = json.loads(value)
    assert isinstance(parsed, list) and all(isinstance(word, str) for word in parsed), value
    return parsed


def healthcheck_command(stage: Stage) -> list[str]:
    (check,) = stage.all("HEALTHCHECK")
    _options, _, command = check.value.partition("CMD")
    assert command, f"HEALTHCHECK without CMD: {check.value}"
    return exec_form(command.strip())
