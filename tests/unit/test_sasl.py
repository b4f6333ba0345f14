"""A connection's SASL session: what is served before authentication, each mechanism, failures."""

from __future__ import annotations

import itertools

import pytest

from broker.protocol.errors import ErrorCode
from broker.security.sasl import (
    MECHANISMS,
    FailureLimiter,
    SaslSession,
    State,
)
from broker.security.scram import ScramClient, ScramCredential, ScramMechanism, make_credential

USERS = {
    (m, "alice"): make_credential(m, "wonderland", f"salt-{m.name}".encode(), 4096)
    for m in ScramMechanism
}


def session(enabled: tuple[str, ...] = MECHANISMS) -> SaslSession:
    counter = itertools.count()

    def lookup(mechanism: ScramMechanism, user: str) -> ScramCredential | None:
        return USERS.get((mechanism, user))

    return SaslSession(enabled, lookup, lambda: f"server{next(counter)}")


def test_nothing_but_the_handshake_is_served_before_authentication() -> None:
    s = session()
    assert s.allows(18) and s.allows(17) and s.allows(36)
    assert not s.allows(0) and not s.allows(3)  # Produce, Metadata: the driver closes


@pytest.mark.parametrize("mechanism", list(ScramMechanism))
def test_scram_authenticates_in_two_rounds(mechanism: ScramMechanism) -> None:
    s = session()
    assert s.handshake(mechanism.mechanism_name).error_code == 0
    client = ScramClient(mechanism, "alice", "wonderland", "c0ffee")
    first = s.authenticate(client.first())
    assert first.error_code == 0 and s.state is State.AUTHENTICATE
    final = s.authenticate(client.final(first.auth_bytes))
    client.verify(final.auth_bytes)
    assert s.principal == "User:alice" and s.allows(0)


def test_plain_checks_the_password_against_the_scram_credential() -> None:
    s = session()
    s.handshake("PLAIN")
    assert s.authenticate(b"\0alice\0wonderland").error_code == 0
    assert s.principal == "User:alice"
    other = session()
    other.handshake("PLAIN")
    assert other.authenticate(b"alice\0alice\0wonderland").error_code == 0


@pytest.mark.parametrize(
    "message",
    [b"\0alice\0guess", b"\0nobody\0wonderland", b"alice", b"bob\0alice\0wonderland", b"\0\xff\0x"],
)
def test_a_failed_plain_answers_the_error_and_closes(message: bytes) -> None:
    s = session()
    s.handshake("PLAIN")
    answer = s.authenticate(message)
    assert answer.error_code == ErrorCode.sasl_authentication_failed and answer.close
    assert s.state is State.FAILED and s.principal is None and not s.allows(0)


def test_a_wrong_scram_password_fails() -> None:
    s = session()
    s.handshake("SCRAM-SHA-512")
    client = ScramClient(ScramMechanism.SHA_512, "alice", "guess", "n")
    first = s.authenticate(client.first())
    answer = s.authenticate(client.final(first.auth_bytes))
    assert answer.error_code == ErrorCode.sasl_authentication_failed and answer.close


def test_mechanisms_not_enabled_and_requests_out_of_order() -> None:
    s = session(enabled=("SCRAM-SHA-256",))
    answer = s.handshake("PLAIN")
    assert answer.error_code == ErrorCode.unsupported_sasl_mechanism and answer.close
    assert s.state is State.FAILED and not s.allows(3)  # the driver closes, as Kafka does
    assert s.authenticate(b"x").error_code == ErrorCode.illegal_sasl_state
    again = session()
    again.handshake("PLAIN")
    assert again.handshake("PLAIN").error_code == ErrorCode.illegal_sasl_state


def test_the_failure_limiter_blocks_a_source_for_its_window() -> None:
    limiter = FailureLimiter(max_failures=3, window_s=10.0)
    for t in (0.0, 1.0, 2.0):
        assert not limiter.blocked("10.0.0.9", t)
        limiter.record_failure("10.0.0.9", t)
    assert limiter.blocked("10.0.0.9", 5.0) and not limiter.blocked("10.0.0.1", 5.0)
    assert not limiter.blocked("10.0.0.9", 10.5)  # the first failure left the window
    assert not limiter.blocked("10.0.0.9", 20.0) and limiter._failures == {}
