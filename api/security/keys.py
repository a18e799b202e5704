"""API keys: created and revoked with ``journeygraph keys``, stored hashed in SQLite.

A key reads ``jg_<id>_<secret>``. Only the id and an HMAC-SHA256 of the whole key
(keyed with the service's secret) are stored, so a copy of ``keys.db`` neither
reveals a key nor lets anyone check guesses without the secret. The id is what
``keys list`` and ``keys revoke`` name, and what embed tokens record as their issuer.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final, Literal, get_args

from graph.errors import InvalidInput, NotFound, Unauthorized

Scope = Literal["read", "ingest", "admin"]
"""``read``: every query; ``ingest``: pushes events and feedback; ``admin``: everything."""

SCOPES: Final[tuple[str, ...]] = get_args(Scope)

_KEY_FORMAT: Final = re.compile(r"^jg_(?P<id>[0-9a-f]{12})_[A-Za-z0-9_-]{43}$")
_NAME_FORMAT: Final = re.compile(r"^[\w .@-]{1,64}$")

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    digest TEXT NOT NULL,
    scopes TEXT NOT NULL,
    created_at TEXT NOT NULL,
    revoked_at TEXT
);
"""


class UnknownKey(NotFound):
    """An API key id that was never created (HTTP 404)."""

    code = "unknown_key"


@dataclass(frozen=True)
class ApiKey:
    """One API key as stored: never the key itself."""

    id: str
    name: str
    scopes: frozenset[str]
    created_at: datetime
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        """Not revoked."""
        return self.revoked_at is None

    def allows(self, scope: str) -> bool:
        """Whether the key may call endpoints that need ``scope`` (admin may call all)."""
        return "admin" in self.scopes or scope in self.scopes


def check_scopes(scopes: Iterable[str]) -> frozenset[str]:
    """The scopes as a set; ``InvalidInput`` naming any unknown one or an empty list."""
    chosen = frozenset(scopes)
    unknown = sorted(chosen - set(SCOPES))
    if unknown:
        raise InvalidInput(
            f"unknown scope {', '.join(map(repr, unknown))}; scopes are {', '.join(SCOPES)}"
        )
    if not chosen:
        raise InvalidInput(f"a key needs at least one scope ({', '.join(SCOPES)})")
    return chosen


class KeyStore:
    """The API keys of one service, in a SQLite file shared by its worker processes."""

    def __init__(self, path: Path, secret: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._secret = secret.encode()
        self._lock = threading.Lock()
        self._db = sqlite3.connect(
            str(path), isolation_level=None, check_same_thread=False, timeout=10
        )
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> KeyStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def create(self, name: str, scopes: Iterable[str]) -> tuple[ApiKey, str]:
        """A new key: its record and the key itself, which is shown once and never stored."""
        if not _NAME_FORMAT.match(name):
            raise InvalidInput(f"key name {name!r}: use 1-64 letters, digits, spaces or . _ @ -")
        chosen = check_scopes(scopes)
        key_id = secrets.token_hex(6)
        key = f"jg_{key_id}_{secrets.token_urlsafe(32)}"
        record = ApiKey(key_id, name, chosen, datetime.now(UTC), None)
        with self._lock:
            self._db.execute(
                "INSERT INTO api_keys (id, name, digest, scopes, created_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (
                    key_id,
                    name,
                    self._digest(key),
                    ",".join(sorted(chosen)),
                    _iso(record.created_at),
                ),
            )
        return record, key

    def keys(self) -> list[ApiKey]:
        """Every key ever created, oldest first, revoked ones included."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, name, scopes, created_at, revoked_at FROM api_keys "
                "ORDER BY created_at, id"
            ).fetchall()
        return [_record(*row) for row in rows]

    def get(self, key_id: str) -> ApiKey:
        """One key by id; ``UnknownKey`` if there is none."""
        with self._lock:
            row = self._db.execute(
                "SELECT id, name, scopes, created_at, revoked_at FROM api_keys WHERE id = ?",
                (key_id,),
            ).fetchone()
        if row is None:
            raise UnknownKey(f"no API key has id {key_id!r}", details={"id": key_id})
        return _record(*row)

    def revoke(self, key_id: str) -> ApiKey:
        """Revoke a key (and the embed tokens it issued) from the next request on."""
        self.get(key_id)
        with self._lock:
            self._db.execute(
                "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                (_iso(datetime.now(UTC)), key_id),
            )
        return self.get(key_id)

    def verify(self, presented: str) -> ApiKey:
        """The active key ``presented`` is; ``Unauthorized`` saying why not otherwise."""
        match = _KEY_FORMAT.match(presented)
        if match is None:
            raise Unauthorized("the API key is malformed (expected jg_<id>_<secret>)")
        with self._lock:
            row = self._db.execute(
                "SELECT id, name, scopes, created_at, revoked_at, digest FROM api_keys "
                "WHERE id = ?",
                (match["id"],),
            ).fetchone()
        if row is None or not hmac.compare_digest(row[5], self._digest(presented)):
            raise Unauthorized("the API key is not valid")
        record = _record(*row[:5])
        if not record.active:
            raise Unauthorized(f"the API key {record.id} was revoked")
        return record

    def _digest(self, key: str) -> str:
        return hmac.new(self._secret, key.encode(), hashlib.sha256).hexdigest()


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="microseconds")


def _record(key_id: str, name: str, scopes: str, created_at: str, revoked_at: str | None) -> ApiKey:
    return ApiKey(
        key_id,
        name,
        frozenset(scopes.split(",")),
        datetime.fromisoformat(created_at),
        datetime.fromisoformat(revoked_at) if revoked_at else None,
    )
