"""Who may look: anyone on this machine when bound to loopback, else whoever has the token.

The dashboard shows topic names, record keys and the topology's addresses, so bound to
anything but loopback it asks for a token. A browser brings it once as `?token=...` (the
link `regionlink dashboard` prints); the answer sets an HttpOnly cookie and redirects to the
same URL without it, so the token stays out of history and of the links people copy into
alerts and runbooks. Scripts send `Authorization: Bearer TOKEN`. The live feed
(EventSource, which cannot set headers) rides on the cookie.
"""

from __future__ import annotations

import hmac
import ipaddress
from http.cookies import SimpleCookie
from urllib.parse import parse_qsl, quote, urlencode

from starlette.types import ASGIApp, Receive, Scope, Send

COOKIE = "regionlink_dashboard_token"
QUERY = "token"
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


def is_loopback(host: str) -> bool:
    """Whether `host` (a --listen host) only accepts connections from this machine."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name we cannot vouch for


class TokenRequired:
    """ASGI middleware: 401 for an HTTP request without the token."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        offered = dict(query).get(QUERY)
        if offered is not None and self._valid(offered):
            await self._set_cookie_and_redirect(scope, query, send)
            return
        if self._valid(_bearer(headers.get("authorization", ""))) or self._valid(
            _cookie(headers.get("cookie", ""))
        ):
            await self.app(scope, receive, send)
            return
        body = (
            b"401: this dashboard needs its token: open the link `regionlink dashboard` "
            b"printed (?token=...), or send Authorization: Bearer TOKEN\n"
        )
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"text/plain; charset=utf-8"),
                    (b"www-authenticate", b'Bearer realm="regionlink dashboard"'),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    def _valid(self, offered: str) -> bool:
        return bool(offered) and hmac.compare_digest(offered.encode(), self.token.encode())

    async def _set_cookie_and_redirect(
        self, scope: Scope, query: list[tuple[str, str]], send: Send
    ) -> None:
        rest = urlencode([(k, v) for k, v in query if k != QUERY])
        location = quote(scope["path"]) + (f"?{rest}" if rest else "")
        cookie = f"{COOKIE}={self.token}; Path=/; HttpOnly; SameSite=Strict"
        await send(
            {
                "type": "http.response.start",
                "status": 303,
                "headers": [
                    (b"location", location.encode("latin-1")),
                    (b"set-cookie", cookie.encode("latin-1")),
                ],
            }
        )
        await send({"type": "http.response.body", "body": b""})


def _bearer(header: str) -> str:
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""


def _cookie(header: str) -> str:
    jar: SimpleCookie = SimpleCookie()
    jar.load(header)
    morsel = jar.get(COOKIE)
    return morsel.value if morsel is not None else ""
