from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.config import JsonDict

NAME_SEGMENT = r"[a-z0-9][a-z0-9_.-]{0,62}"
NAME_PATTERN = rf"^{NAME_SEGMENT}(/{NAME_SEGMENT})*$"
NAME_RULES = (
    "segments of lowercase letters, digits, '_', '.' and '-' (starting with a letter or digit, "
    "at most 63 characters) joined by '/', e.g. payments/production"
)


# The rule in the OpenAPI document; ``check_name`` enforces it with a message that explains it.
_NAME_SCHEMA: JsonDict = {"pattern": NAME_PATTERN}
IncludedName = Annotated[str, Field(max_length=255, json_schema_extra=_NAME_SCHEMA)]
_INCLUDES_SCHEMA: JsonDict = {"uniqueItems": True}


def check_name(name: str) -> str:
    if len(name) > 255 or not re.fullmatch(NAME_PATTERN, name):
        raise ValueError(f"{name!r} is not a namespace name: use {NAME_RULES}")
    return name


class NamespaceCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        max_length=255, description=f"A path: {NAME_RULES}", json_schema_extra=_NAME_SCHEMA
    )
    description: str = Field("", max_length=1000)
    includes: list[IncludedName] = Field(
        default_factory=list,
        max_length=32,
        description="Names of namespaces merged under this one, lowest precedence first",
        json_schema_extra=_INCLUDES_SCHEMA,
    )

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        return check_name(value)


class NamespaceUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    description: str | None = Field(None, max_length=1000)
    includes: list[IncludedName] | None = Field(
        None, max_length=32, json_schema_extra=_INCLUDES_SCHEMA
    )


class NamespaceRead(BaseModel):
    id: uuid.UUID
    name: str
    description: str
    includes: list[str]
    revision: int
    entry_count: int
    created_at: datetime
    updated_at: datetime
    updated_by: str
