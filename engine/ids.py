"""Unguessable ids: 128 random bits from the OS's cryptographic source, plus a short
signature so the service can tell one of its own ids (say, a hold lost when Redis was
wiped: "expired") from a guessed one ("not found") without storing anything."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

# H: hold, W: waitlist entry, G: hold granted to entry W (same random part and signature)
ID_PATTERN = re.compile(r"^([HWG])(\d{1,18})-([A-Za-z0-9_-]{22})-([A-Za-z0-9_-]{12})$")
BOOKING_PATTERN = re.compile(r"^bk_[A-Za-z0-9_-]{22}$")


@dataclass(frozen=True)
class ParsedId:
    kind: str
    show_id: int


class IdSigner:
    def __init__(self, secret: str) -> None:
        self._key = secret.encode()

    def _signature(self, kind: str, show_id: int, random_part: str) -> str:
        digest = hmac.new(self._key, f"{kind}{show_id}-{random_part}".encode(), hashlib.sha256)
        return base64.urlsafe_b64encode(digest.digest()[:9]).decode()

    def _make(self, kind: str, show_id: int) -> str:
        random_part = secrets.token_urlsafe(16)[:22]
        return f"{kind}{show_id}-{random_part}-{self._signature(kind, show_id, random_part)}"

    def new_hold_id(self, show_id: int) -> str:
        return self._make("H", show_id)

    def new_entry_id(self, show_id: int) -> str:
        return self._make("W", show_id)

    def parse(self, value: str, kinds: str) -> ParsedId | None:
        """The show of a genuine id of one of `kinds`, or None for anything else."""
        match = ID_PATTERN.match(value)
        if match is None or match.group(1) not in kinds:
            return None
        kind, show, random_part, signature = match.groups()
        show_id = int(show)
        # A grant's hold id is its entry's id with the letter changed.
        signed_kind = "W" if kind == "G" else kind
        expected = self._signature(signed_kind, show_id, random_part)
        if not hmac.compare_digest(expected, signature):
            return None
        return ParsedId(kind=kind, show_id=show_id)


def new_booking_id() -> str:
    return "bk_" + secrets.token_urlsafe(16)[:22]


def new_payment_id() -> str:
    return "pay_" + secrets.token_urlsafe(16)[:22]
