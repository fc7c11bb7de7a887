"""Citizens' satisfaction with a finished dossier (the city reports' "tỷ lệ hài lòng").

A citizen rates a dossier once, after every agency of its procedure returned status 06, with a
login of at least the level that filed it.  The score goes into the audit entry; the comment, which
may hold anything a citizen writes, stays in the ratings table and the entry carries its keyed hash.
The entry names the dossier, not its document: it is no part of the document's receipts, so the
agencies rated do not see who gave which score.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gateway.json_input import Unreadable
from gateway.policy import Refusal

MAX_COMMENT_CHARS = 1000
SATISFIED = frozenset({4, 5})  # the share of 4-5 among ratings is the satisfaction rate


@dataclass(frozen=True)
class Rating:
    score: int
    comment: str

    def comment_hash(self, pepper: bytes) -> str | None:
        """HMAC-SHA256 keyed with the deployment's pepper: proves the stored comment, and a short one
        ("Tốt", "Chậm") cannot be confirmed by hashing guesses, as a plain SHA-256 could (review finding)."""
        if not self.comment:
            return None
        # Its own domain: a comment that is an ID number must not carry that citizen's pseudonym.
        return hmac.new(pepper, b"rating-comment\x00" + self.comment.encode("utf-8"), hashlib.sha256).hexdigest()


def parse_rating(body: Any, check_text: Callable[[str, str], str]) -> Rating:
    """``{"score": 1-5, "comment": "…"}``; ``check_text`` refuses characters a document cannot hold."""
    expected = 'send a JSON object {"score": 1-5, "comment": "optional text"}'
    if isinstance(body, Unreadable):
        raise Refusal("rating-invalid", body.explained(expected))
    if not isinstance(body, dict) or set(body) - {"score", "comment"}:
        raise Refusal("rating-invalid", expected)
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
