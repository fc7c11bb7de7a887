"""Citizens' satisfaction with a finished dossier (the city reports' "tỷ lệ hài lòng").

A citizen rates a dossier once, after every agency of its procedure returned status 06, with a
login of at least the level that filed it.  The score goes into the audit entry; the comment, which
may hold anything a citizen writes, stays in the ratings table and the entry carries its SHA-256.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gateway.policy import Refusal

MAX_COMMENT_CHARS = 1000
SATISFIED = frozenset({4, 5})  # the share of 4-5 among ratings is the satisfaction rate


@dataclass(frozen=True)
class Rating:
    score: int
    comment: str

    @property
    def comment_sha256(self) -> str | None:
        return hashlib.sha256(self.comment.encode("utf-8")).hexdigest() if self.comment else None


def parse_rating(body: Any, check_text: Callable[[str, str], str]) -> Rating:
    """``{"score": 1-5, "comment": "…"}``; ``check_text`` refuses characters a document cannot hold."""
    if not isinstance(body, dict) or set(body) - {"score", "comment"}:
        raise Refusal("rating-invalid", 'send a JSON object {"score": 1-5, "comment": "optional text"}')
    score = body.get("score")
    if isinstance(score, bool) or not isinstance(score, int) or not 1 <= score <= 5:
        raise Refusal("rating-invalid", "score must be a whole number from 1 (very dissatisfied) to 5 (very satisfied)")
    comment = body.get("comment", "")
    if comment is None:
        comment = ""
    if not isinstance(comment, str) or len(comment) > MAX_COMMENT_CHARS:
        raise Refusal("rating-invalid", f"comment must be text of at most {MAX_COMMENT_CHARS} characters")
    try:
        return Rating(score, check_text(comment.strip(), "comment"))
    except Refusal as refusal:
        raise Refusal("rating-invalid", refusal.reason) from None
