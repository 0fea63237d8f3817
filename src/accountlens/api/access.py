"""Who a REST request acts as, and what it may do (docs/governance.md): one dependency per
permission resolves the workspace, the principal (a bearer token, the browser session's
token, the server's local admin token, or anonymous on a workspace without tokens), checks
the role, audits a refusal, and hands the route the workspace as that principal sees it — a
`csm` token's book only (store/scoped.py)."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import HTTPException, Query, Request

from accountlens.api.session import COOKIE, Sessions, bearer_token
from accountlens.governance.audit import Actor
from accountlens.governance.tokens import ANONYMOUS, LOCAL_ADMIN, Principal
from accountlens.workspace import Workspace

_UNAUTHORIZED = ("a valid API token for this workspace is required (the `Authorization: "
                 "Bearer` header, or sign in at /signin)")


@dataclass
class RequestLive:
    """A served workspace as one request's principal sees it (the routes' `live`)."""

    live: Any  # api/app.py's LiveWorkspace
    workspace: Workspace
    principal: Principal

    @property
    def loader(self) -> Any:
        return self.live.loader

    def status(self) -> dict[str, Any]:
        info = self.live.status()
        if self.principal.restricted:  # the book's counts, not the workspace's
            info.update({k: v for k, v in self.workspace.status().items()
                         if k not in ("ingest_paused_reason", "disk_full")})
        return info


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


class Access:
    """Authentication and authorization of the REST API over the served workspaces."""

    def __init__(self, lives: list[Any], sessions: Sessions, local_admin_token: str | None):
        self.by_name = {live.workspace.config.workspace.name: live for live in lives}
        self.lives, self.sessions, self.local_admin_token = lives, sessions, local_admin_token

    def served(self, workspace: str | None) -> Any:
        if workspace is None:
            if len(self.lives) != 1:
                raise HTTPException(400, "several workspaces are served; pass ?workspace=NAME")
            return self.lives[0]
        if workspace in self.by_name:
            return self.by_name[workspace]
        raise HTTPException(404, f"no workspace named {workspace!r}")

    def principal(self, request: Request, live: Any) -> Principal | None:
        """The request's principal for `live`; None when it presents no valid credential (an
        invalid bearer token is never overridden by a session)."""
        workspace: Workspace = live.workspace
        token = bearer_token(request.headers.get("authorization", ""))
        if token is not None:
            if self.local_admin_token is not None and hmac.compare_digest(
                    token.encode(), self.local_admin_token.encode()):
                return LOCAL_ADMIN
            return workspace.tokens.resolve(token)
        credential = self.sessions.credential(request.cookies.get(COOKIE),
                                              workspace.config.workspace.name)
        if credential is not None:
            return workspace.tokens.resolve_credential(credential)
        return None if workspace.tokens.has_tokens() else ANONYMOUS

    def requires(self, permission: str) -> Callable[..., RequestLive]:
        """A FastAPI dependency: the workspace as the request's principal sees it, if the
        principal may `permission` (401 without a valid token, 403 with one lacking the role)."""

        def dependency(request: Request, workspace: str | None = Query(
                default=None, description="workspace name; optional when one is served")) -> RequestLive:
            live = self.served(workspace)
            principal = self.principal(request, live)
            source = client_address(request)
            if principal is None or not principal.may(permission):
                status = 401 if principal is None else 403
                # an anonymous caller of a workspace without tokens needs a token to write
                if principal is ANONYMOUS:
                    status = 401
                name = principal.label if principal else "unauthenticated"
                request.state.actor = name
                live.workspace.audit.record(
                    Actor(principal.name if principal else "unauthenticated",
                          principal.role if principal else "-", source),
                    "access.denied", f"{request.method} {request.url.path}",
                    {"status": status, "permission": permission}, outcome="denied")
                if status == 401:
                    raise HTTPException(401, _UNAUTHORIZED if principal is None else
                                        f"this needs an admin token ({permission}); the "
                                        "workspace has no tokens: create one with "
                                        "`accountlens tokens create --role admin`",
                                        headers={"WWW-Authenticate": "Bearer"})
                assert principal is not None
                raise HTTPException(403, f"a {principal.role} token may not do this "
                                         f"({permission} needs the "
                                         f"{_roles_with(permission)} role)")
            request.state.actor = principal.label
            return RequestLive(live, live.workspace.acting_as(principal, source), principal)

        return dependency


def _roles_with(permission: str) -> str:
    from accountlens.governance.tokens import PERMISSIONS

    return " or ".join(role for role, allowed in PERMISSIONS.items() if permission in allowed)
