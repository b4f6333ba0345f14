"""A connection's SASL authentication (KIP-43, KIP-152) as a pure state machine.

A SASL listener serves nothing before the client has authenticated: only ApiVersions,
SaslHandshake and SaslAuthenticate; anything else closes the connection, as Kafka does.
`SaslSession` decides what each of those requests gets; the broker's connection driver
moves the bytes, waits the failure delay and closes.

Mechanisms: PLAIN (RFC 4616) and SCRAM-SHA-256/512 (broker/security/scram.py). One user
store serves both: PLAIN checks the password against the user's SCRAM credential (salting
it with the stored salt and iterations), so no password is kept anywhere, unlike Kafka's
JAAS-configured PLAIN users.

Failed authentications are answered with SASL_AUTHENTICATION_FAILED (a mechanism that is
not enabled with UNSUPPORTED_SASL_MECHANISM and the enabled ones), then the connection
closes after a delay (Kafka's `connection.failed.authentication.delay.ms`), and a source
that fails too often within a window is refused at once until the window has passed
(`FailureLimiter`): guessing passwords costs time.

Not done: re-authentication (KIP-368). SaslAuthenticate's `session_lifetime_ms` is 0, which
tells clients none is needed; credentials changed later apply to new connections.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

from broker.protocol.errors import ErrorCode
from broker.security.scram import (
    FAILED,
    ScramCredential,
    ScramError,
    ScramMechanism,
    ScramServer,
    credential_from_salted,
)

PLAIN = "PLAIN"
MECHANISMS = (PLAIN, *(m.mechanism_name for m in ScramMechanism))
API_VERSIONS, SASL_HANDSHAKE, SASL_AUTHENTICATE = 18, 17, 36
BEFORE_AUTHENTICATION = frozenset({API_VERSIONS, SASL_HANDSHAKE, SASL_AUTHENTICATE})

Credentials = Callable[[ScramMechanism, str], ScramCredential | None]
"""The user store: a user's credential for a mechanism, or None."""


class State(Enum):
    HANDSHAKE = "handshake"  # waiting for SaslHandshake
    AUTHENTICATE = "authenticate"  # mechanism chosen, SaslAuthenticate rounds
    AUTHENTICATED = "authenticated"
    FAILED = "failed"  # answered the failure; the driver closes the connection


@dataclass(frozen=True)
class Answer:
    """What to answer a SaslHandshake or SaslAuthenticate with."""

    error_code: int = 0
    error_message: str | None = None
    auth_bytes: bytes = b""
    close: bool = False  # after this answer (and the failure delay)


class SaslSession:
    def __init__(
        self, enabled: tuple[str, ...], credentials: Credentials, nonce: Callable[[], str]
    ) -> None:
        assert set(enabled) <= set(MECHANISMS), enabled
        self.enabled = enabled
        self._credentials = credentials
        self._nonce = nonce
        self.state = State.HANDSHAKE
        self.mechanism: str | None = None
        self.principal: str | None = None  # "User:<name>" once authenticated
        self._scram: ScramServer | None = None
        self._scram_started = False
        # After a SaslHandshake v0 the client sends the mechanism's tokens as bare frames,
        # not inside SaslAuthenticate requests (KIP-152); the driver feeds them here.
        self.raw_tokens = False

    def allows(self, api_key: int) -> bool:
        """May a request of this kind be served now? (If not, close the connection.)"""
        return self.state is State.AUTHENTICATED or api_key in BEFORE_AUTHENTICATION

    def handshake(self, mechanism: str, *, raw_tokens: bool = False) -> Answer:
        """`raw_tokens`: the handshake was v0, so tokens follow as bare frames."""
        if self.state is not State.HANDSHAKE:
            return self._fail(ErrorCode.illegal_sasl_state, "SaslHandshake was already done")
        if mechanism not in self.enabled:
            # As Kafka: the answer lists the enabled mechanisms (the handler adds them), then
            # the connection closes like after any failed authentication — after the delay,
            # counted against the source — so probing for mechanisms costs what guessing does.
            return self._fail(ErrorCode.unsupported_sasl_mechanism, f"{mechanism} is not enabled")
        self.mechanism, self.state = mechanism, State.AUTHENTICATE
        self.raw_tokens = raw_tokens
        scram = ScramMechanism.named(mechanism)
        if scram is not None:
            self._scram = ScramServer(
                scram, lambda user: self._credentials(scram, user), self._nonce()
            )
        return Answer()

    def authenticate(self, auth_bytes: bytes) -> Answer:
        if self.state is not State.AUTHENTICATE:
            return self._fail(ErrorCode.illegal_sasl_state, "SaslAuthenticate before SaslHandshake")
        try:
            if self._scram is None:
                return self._done(self._plain(auth_bytes), b"")
            if not self._scram_started:
                self._scram_started = True
                return Answer(auth_bytes=self._scram.first(auth_bytes))
            final = self._scram.final(auth_bytes)
            assert self._scram.user is not None
            return self._done(self._scram.user, final)
        except ScramError as exc:
            return self._fail(ErrorCode.sasl_authentication_failed, str(exc))

    def _plain(self, message: bytes) -> str:
        parts = message.split(b"\0")
        if len(parts) != 3:
            raise ScramError("a PLAIN message is authzid NUL user NUL password")
        try:
            authzid, user, password = (part.decode("utf-8") for part in parts)
        except UnicodeDecodeError:
            raise ScramError("a PLAIN message must be UTF-8") from None
        if authzid not in ("", user):
            raise ScramError("an authorization identity is not supported")
        if not any(self._password_ok(m, user, password) for m in ScramMechanism):
            raise ScramError(FAILED)
        return user

    def _password_ok(self, mechanism: ScramMechanism, user: str, password: str) -> bool:
        stored = self._credentials(mechanism, user)
        if stored is None:
            return False
        salted = mechanism.salted_password(password, stored.salt, stored.iterations)
        return credential_from_salted(mechanism, salted, stored.salt, stored.iterations) == stored

    def _done(self, user: str, final: bytes) -> Answer:
        self.principal, self.state = f"User:{user}", State.AUTHENTICATED
        return Answer(auth_bytes=final)

    def _fail(self, error_code: int, message: str) -> Answer:
        self.state = State.FAILED
        return Answer(error_code, message, close=True)


@dataclass
class FailureLimiter:
    """At most `max_failures` failed authentications per source within `window_s`; the
    times come from the caller (the driver's clock)."""

    max_failures: int = 10
    window_s: float = 60.0
    _failures: dict[str, deque[float]] = field(default_factory=dict)

    def record_failure(self, source: str, now_s: float) -> None:
        self._count(source, now_s)
        self._failures.setdefault(source, deque()).append(now_s)

    def blocked(self, source: str, now_s: float) -> bool:
        """Refuse this source's authentication attempts until its window has passed?"""
        return self._count(source, now_s) >= self.max_failures

    def _count(self, source: str, now_s: float) -> int:
        """Failures of `source` within the window; forgets the older ones (and sources with
        none left, so the table holds only the sources failing now)."""
        times = self._failures.get(source)
        if times is None:
            return 0
        while times and times[0] <= now_s - self.window_s:
            times.popleft()
        if not times:
            del self._failures[source]
        return len(times)
