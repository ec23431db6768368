"""Schema building blocks shared by resources."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate

MAX_ID = 2**53  # beyond any real id; keeps huge numbers out of the database driver


class StrictSchema(Schema):
    """Unknown fields are an error, not silently dropped."""

    class Meta:
        unknown = "raise"
        ordered = True


def Id(**kwargs: Any) -> fields.Integer:  # noqa: N802 - reads like a field type
    return fields.Integer(strict=True, validate=validate.Range(1, MAX_ID), **kwargs)


class Base64Bytes(fields.Field[bytes]):
    """Binary data as standard base64 in JSON."""

    def __init__(self, *, max_bytes: int = 8192, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_bytes = max_bytes

    def _serialize(self, value: bytes | None, attr: str | None, obj: Any, **kwargs: Any) -> str | None:
        return None if value is None else base64.b64encode(value).decode()

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bytes:
        if not isinstance(value, str) or len(value) > self.max_bytes * 4 // 3 + 4:
            raise ValidationError("base64 text expected")
        try:
            raw = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValidationError("not valid base64") from exc
        if not raw:
            raise ValidationError("must not be empty")
        return raw


class PeriodField(fields.String):
    """A settlement month as YYYY-MM."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(validate=validate.Regexp(r"^20[0-9]{2}-(0[1-9]|1[0-2])$"), **kwargs)
