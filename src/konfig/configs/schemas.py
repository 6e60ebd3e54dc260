from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

KEY_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.-]{0,254}$"
MASK = "********"
_VALUE_DOC = "The value: a JSON string, number, boolean, or (type json) any JSON value"
_TYPE_DOC = "string, number, boolean, select or json"
# An entry's settings besides its value: what a PUT (or a document) leaves as they are on an
# existing entry when the body omits them.
KEPT_FIELDS = frozenset({"value_type", "validation_schema", "description", "is_secret"})


class ConfigCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str = Field(
        pattern=KEY_PATTERN, description="Letters, digits, '_', '.', '-'; not starting with a digit"
    )
    value: Any = Field(description=_VALUE_DOC)
    value_type: str = Field("string", description=_TYPE_DOC)
    validation_schema: dict[str, Any] | None = None
    description: str = Field("", max_length=1000)
    is_secret: bool = False
    message: str | None = Field(None, max_length=1000, description="Recorded with the revision")


_KEPT = "; left out, an existing entry keeps its own (the default applies to a new key)"


class ConfigReplace(BaseModel):
    """The body of PUT: the value, and whichever settings to change (``model_fields_set``
    tells a field left out from one sent with its default)."""

    model_config = ConfigDict(extra="forbid")

    value: Any = Field(description=_VALUE_DOC)
    value_type: str = Field("string", description=_TYPE_DOC + _KEPT)
    validation_schema: dict[str, Any] | None = Field(
        None, description="null drops the schema" + _KEPT
    )
    description: str = Field("", max_length=1000, description="'' clears it" + _KEPT)
    is_secret: bool = Field(False, description="false makes a secret plain (admins only)" + _KEPT)
    message: str | None = Field(None, max_length=1000)


class ConfigPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    value: Any = None
    value_type: str | None = None
    validation_schema: dict[str, Any] | None = None
    description: str | None = Field(None, max_length=1000)
    is_secret: bool | None = None
    message: str | None = Field(None, max_length=1000)


class ConfigRead(BaseModel):
    key: str
    value: Any = Field(description=f"Secrets read as {MASK!r} unless revealed")
    value_type: str
    validation_schema: dict[str, Any] | None
    description: str
    is_secret: bool
    version: int
    revision: int = Field(description="The namespace revision that wrote this version")
    created_at: datetime
    updated_at: datetime
    updated_by: str
