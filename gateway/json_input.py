"""JSON that comes from outside (request bodies, token segments, files handed to a verifier), read one way.

Two things Python's ``json.loads`` lets through that a security boundary must not:

- an object with a member twice: parsers disagree on which one wins (Python keeps the last, many
  keep the first), so a proxy, a logger and the gateway could each act on a different value;
- nesting deeper than the interpreter's recursion limit: ``RecursionError`` is not a ``ValueError``,
  so a caller's ``except ValueError`` let ``[[[[…`` through as a 500 (issue 11 review: a 2,000-deep
  array in a bearer token's header).

Both are ``ValueError`` here, so every existing ``except ValueError`` refuses them cleanly.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any


class JsonInputError(ValueError):
    """Not one JSON text we accept; the message says why."""


def no_duplicate_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``object_pairs_hook`` refusing a JSON object with a member twice."""
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise JsonInputError(f"duplicate member {key!r}")
        seen[key] = value
    return seen


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def _no_constant(name: str) -> Any:
    raise JsonInputError(f"{name} is not JSON (RFC 8259 has no NaN or Infinity)")


def parse_json(raw: bytes | str) -> Any:
    """The value of ``raw`` (UTF-8 when bytes); :class:`JsonInputError` when it is not acceptable JSON.

    Also refused: ``NaN``/``Infinity`` (Python's extension, which other parsers reject) and a lone
    surrogate escape such as ``"\\ud800"``, which no UTF-8 text can hold: it reached the audit log's
    encoder and answered 500 with the refusal unrecorded (issue 11 review, round 2)."""
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        value = json.loads(text, object_pairs_hook=no_duplicate_members, parse_constant=_no_constant)
    except RecursionError:
        raise JsonInputError("nested too deeply") from None
    except JsonInputError:
        raise
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise JsonInputError(str(exc)) from None
    if (not isinstance(raw, bytes) or _SURROGATE_ESCAPE.search(text)) and not _encodable(value):
        raise JsonInputError("a string holds a lone surrogate (\\ud800-\\udfff), which is not text")
    return value


def _encodable(value: Any) -> bool:
    """Every string in ``value`` is UTF-8 text (checked only when a surrogate escape was seen)."""
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@dataclass(frozen=True)
class Unreadable:
    """A request body that is not acceptable JSON, handed on so that the service refuses it (and audits that)."""

    reason: str

    def explained(self, expected: str) -> str:
        return f"the body is not JSON we accept ({self.reason}): {expected}"


def read_body(raw: bytes, *, declared_json: bool) -> Any:
    """The JSON value of a request body, or :class:`Unreadable` saying what is wrong with it."""
    if not declared_json:
        return Unreadable("send it with Content-Type: application/json")
    try:
        return parse_json(raw)
    except JsonInputError as exc:
        return Unreadable(str(exc))


def saved_problem(data: bytes) -> str | None:
    """``"code: detail"`` when ``data`` is an error answer (RFC 9457 problem+json) saved where a file was
    expected (``curl -o`` without ``--fail``); None for anything else."""
    if data.lstrip()[:1] != b"{":
        return None
    try:
        found = parse_json(data)
    except ValueError:
        return None
    if not isinstance(found, dict) or not isinstance(found.get("code"), str) or not {"status", "detail"} & set(found):
        return None
    return f"{found['code']}: {found.get('detail', '')}"
