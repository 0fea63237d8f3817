"""Browser sessions of the web app: an API token is exchanged once (`POST /api/v1/session`) for a
random session id in an HttpOnly, SameSite=Strict cookie. The token never reaches a cookie or
the page's JavaScript; the server keeps, per session and workspace, only the token's credential
(governance/tokens.py: its id and stored hash), so rotating or revoking the token ends the
sessions opened with it."""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field

COOKIE = "accountlens_session"
LIFETIME_SECONDS = 12 * 3600  # a working day; then sign in again
MAX_SESSIONS = 10_000  # only a valid token opens one; beyond this the oldest is dropped


def bearer_token(authorization: str) -> str | None:
    """The token of an `Authorization: Bearer TOKEN` header, else None."""
    scheme, _, token = authorization.partition(" ")
    return (token.strip() or None) if scheme.lower() == "bearer" else None


@dataclass
class _Session:
    expires: float
    workspaces: dict[str, str] = field(default_factory=dict)  # name -> the token's credential


class Sessions:
    """The server's sessions, in memory: a restart signs everybody out."""

    def __init__(self, lifetime: float = LIFETIME_SECONDS, limit: int = MAX_SESSIONS):
        self.lifetime, self.limit = lifetime, limit
        self._sessions: dict[str, _Session] = {}
        self._lock = threading.Lock()

    def sign_in(self, session_id: str | None, workspace: str, credential: str) -> str:
        """A new session id holding `workspace` (the caller checked the token) and the other
        workspaces of the session `session_id`; a new id each time, so an id seen before the
        sign-in is worth nothing after it."""
        now = time.time()
        with self._lock:
            self._expire(now)
            old = self._sessions.pop(session_id, None) if session_id else None
            session = _Session(expires=now + self.lifetime,
                               workspaces=dict(old.workspaces) if old else {})
            session.workspaces[workspace] = credential
            new_id = secrets.token_urlsafe(32)
            self._sessions[new_id] = session
            while len(self._sessions) > self.limit:
                self._sessions.pop(next(iter(self._sessions)))
            return new_id

    def credential(self, session_id: str | None, workspace: str) -> str | None:
        """The credential the session holds for `workspace` (the caller checks it still holds)."""
        if not session_id:
            return None
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None or session.expires <= time.time():
                return None
            return session.workspaces.get(workspace)

    def sign_out(self, session_id: str | None, workspace: str | None = None) -> bool:
        """Forget `workspace` (all when None) in the session; True when the session is over."""
        if not session_id:
            return True
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None:
                return True
            if workspace is None:
                session.workspaces.clear()
            else:
                session.workspaces.pop(workspace, None)
            if not session.workspaces:
                del self._sessions[session_id]
                return True
            return False

    def _expire(self, now: float) -> None:
        for key in [k for k, s in self._sessions.items() if s.expires <= now]:
            del self._sessions[key]
