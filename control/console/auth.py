"""Who may act: one token (a file mounted from a Secret), a signed session cookie, and CSRF protection.

* Read pages and data endpoints are open unless ``read_requires_token``.
* Actions (rollout start / promote / roll back, feedback) need the token: either ``Authorization: Bearer <token>``
  (scripts; a browser never adds that header by itself, so no CSRF token is needed), or a session from ``POST
  /login`` (an ``HttpOnly``, ``SameSite=Strict`` cookie signed with a key derived from the token) *and* the
  session's CSRF token in the ``X-CSRF-Token`` header. Without a configured token every action is refused (403).
* A request a browser marks as cross-site (``Sec-Fetch-Site``), or whose ``Origin`` is not this host, is refused
  before anything else (403).
* The token is never rendered, logged or returned; changing it in the Secret (and restarting) ends every session.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from starlette.requests import Request

from model.errors import ConfigError

SESSION_COOKIE = "ks_console_session"
CSRF_HEADER = "x-csrf-token"
#: Failed sign-ins tolerated per minute before ``/login`` answers 429.
MAX_FAILURES_PER_MINUTE = 10


class Denied(Exception):
    """Refused: ``status`` 401 (who are you?) or 403 (not allowed / not this way), ``message`` says what to do."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def read_token(path: Path | None) -> str | None:
    """The token in ``path`` (surrounding whitespace dropped); ``ConfigError`` when it is missing or too short."""
    if path is None:
        return None
    try:
        token = path.read_text().strip()
    except OSError as e:
        raise ConfigError(f"cannot read the console token file {path}: {e.strerror or e}") from e
    if len(token) < 16:
        raise ConfigError(f"the console token in {path} has {len(token)} characters; use at least 16 (e.g. "
                          "`openssl rand -hex 32`)")
    return token


@dataclass
class Auth:
    """Token checks, sessions and CSRF for one app."""

    token: str | None
    read_requires_token: bool = False
    secure_cookies: bool = False
    session_hours: float = 8.0
    _failures: deque[float] = field(default_factory=deque)

    def __post_init__(self) -> None:
        material = (self.token or secrets.token_hex(32)).encode()
        self._key = hmac.new(b"kube-sentiment-console/session", material, hashlib.sha256).digest()
        self._token_digest = hashlib.sha256(material).digest()

    @property
    def actions_enabled(self) -> bool:
        """Whether a token is configured at all."""
        return self.token is not None

    # --- the token ----------------------------------------------------------------------------------------------
    def token_matches(self, given: str) -> bool:
        """Constant-time comparison (of digests, so the length leaks nothing either)."""
        return self.token is not None and hmac.compare_digest(hashlib.sha256(given.encode()).digest(),
                                                              self._token_digest)

    def login_allowed(self, now: float | None = None) -> bool:
        """False while too many sign-ins failed in the last minute."""
        now = time.monotonic() if now is None else now
        while self._failures and now - self._failures[0] > 60:
            self._failures.popleft()
        return len(self._failures) < MAX_FAILURES_PER_MINUTE

    def failed(self) -> None:
        """Count a failed sign-in."""
        self._failures.append(time.monotonic())

    # --- sessions -----------------------------------------------------------------------------------------------
    def _sign(self, payload: str) -> str:
        return hmac.new(self._key, payload.encode(), hashlib.sha256).hexdigest()

    def new_session(self) -> str:
        """A cookie value ``<expiry>.<nonce>.<signature>``."""
        payload = f"{int(time.time() + self.session_hours * 3600)}.{secrets.token_urlsafe(16)}"
        return f"{payload}.{self._sign(payload)}"

    def session_valid(self, value: str | None) -> bool:
        """Signed by this token's key and not expired."""
        if not value or self.token is None or value.count(".") != 2:
            return False
        expiry, nonce, signature = value.split(".")
        if not hmac.compare_digest(signature, self._sign(f"{expiry}.{nonce}")):
            return False
        return expiry.isdigit() and int(expiry) > time.time()

    def csrf_token(self, session: str) -> str:
        """The CSRF token bound to one session."""
        return self._sign(f"csrf:{session}")

    # --- requests -----------------------------------------------------------------------------------------------
    def _bearer(self, request: Request) -> str | None:
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        return value.strip() if scheme.lower() == "bearer" and value.strip() else None

    def signed_in(self, request: Request) -> bool:
        """A valid bearer token or session cookie."""
        bearer = self._bearer(request)
        if bearer is not None:
            return self.token_matches(bearer)
        return self.session_valid(request.cookies.get(SESSION_COOKIE))

    @staticmethod
    def check_same_origin(request: Request) -> None:
        """Refuse what a browser sends from another site (``Sec-Fetch-Site``, ``Origin``)."""
        if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
            raise Denied(403, "cross-site request refused")
        origin = request.headers.get("origin")
        if origin and origin != "null" and urlsplit(origin).netloc != request.headers.get("host"):
            raise Denied(403, f"origin {origin} is not this console")

    def check_read(self, request: Request) -> None:
        """Open, unless the read pages are locked too."""
        if self.read_requires_token and not self.signed_in(request):
            raise Denied(401, "sign in with the console token first (POST /login, or Authorization: Bearer)")

    def check_action(self, request: Request) -> None:
        """Token configured, signed in, same origin, and for a cookie session the CSRF header."""
        self.check_same_origin(request)
        if not self.actions_enabled:
            raise Denied(403, "actions are disabled: the console has no token (KS_CONSOLE_TOKEN_FILE)")
        bearer = self._bearer(request)
        if bearer is not None:
            if not self.token_matches(bearer):
                raise Denied(401, "the bearer token is not the console token")
            return
        session = request.cookies.get(SESSION_COOKIE)
        if not self.session_valid(session):
            raise Denied(401, "sign in with the console token to act (POST /login, or Authorization: Bearer)")
        assert session is not None
        given = request.headers.get(CSRF_HEADER, "")
        if not given or not hmac.compare_digest(given, self.csrf_token(session)):
            raise Denied(403, "missing or wrong CSRF token (X-CSRF-Token header of this session)")
