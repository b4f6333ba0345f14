"""SCRAM against RFC 7677's published exchange, and the ways an exchange must fail."""

from __future__ import annotations

import base64

import pytest

from broker.security.scram import (
    FAILED,
    ScramClient,
    ScramCredential,
    ScramError,
    ScramMechanism,
    ScramServer,
    make_credential,
)

# RFC 7677 section 3: user "user", password "pencil".
CLIENT_FIRST = b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
SERVER_NONCE = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
SALT = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
SERVER_FIRST = (
    b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
)
CLIENT_FINAL = (
    b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
    b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
)
SERVER_FINAL = b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="


def _server(
    credentials: dict[str, ScramCredential], mechanism=ScramMechanism.SHA_256
) -> ScramServer:
    return ScramServer(mechanism, credentials.get, SERVER_NONCE)


def _rfc_user() -> dict[str, ScramCredential]:
    return {"user": make_credential(ScramMechanism.SHA_256, "pencil", SALT, 4096)}


def test_the_rfc_7677_exchange() -> None:
    server = _server(_rfc_user())
    assert server.first(CLIENT_FIRST) == SERVER_FIRST
    assert server.final(CLIENT_FINAL) == SERVER_FINAL
    assert server.user == "user"


def test_our_client_reproduces_the_rfc_exchange() -> None:
    client = ScramClient(ScramMechanism.SHA_256, "user", "pencil", "rOprNGfwEbeRWgbNEkqO")
    assert client.first() == CLIENT_FIRST
    assert client.final(SERVER_FIRST) == CLIENT_FINAL
    client.verify(SERVER_FINAL)


def test_librdkafka_2_0_s_doubled_client_nonce_is_accepted_as_kafka_accepts_it() -> None:
    """librdkafka 2.0.2 (kcat from Debian) sends r=<client nonce><client nonce><server
    nonce> in its final message; Kafka only checks that it ends with the exchange's nonce."""
    mechanism = ScramMechanism.SHA_512
    server = _server({"u": make_credential(mechanism, "pw", b"salt", 4096)}, mechanism)
    server_first = server.first(b"n,,n=u,r=cnonce").decode()
    nonce = server_first.split(",")[0][2:]
    without_proof = f"c=biws,r=cnonce{nonce}"
    auth = f"n=u,r=cnonce,{server_first},{without_proof}".encode()
    client_key = mechanism.hmac(mechanism.salted_password("pw", b"salt", 4096), b"Client Key")
    signature = mechanism.hmac(mechanism.digest(client_key), auth)
    proof = base64.b64encode(bytes(a ^ b for a, b in zip(client_key, signature, strict=True)))
    server.final(f"{without_proof},p={proof.decode()}".encode())
    assert server.user == "u"


@pytest.mark.parametrize("mechanism", list(ScramMechanism))
def test_a_round_trip_and_a_wrong_password(mechanism: ScramMechanism) -> None:
    users = {"a,b=c": make_credential(mechanism, "s3cret", b"salt-bytes", 4096)}
    for password, ok in (("s3cret", True), ("guess", False)):
        server = _server(users, mechanism)
        client = ScramClient(mechanism, "a,b=c", password, "clientnonce")
        server_first = server.first(client.first())
        if ok:
            client.verify(server.final(client.final(server_first)))
            assert server.user == "a,b=c"
        else:
            with pytest.raises(ScramError, match=FAILED):
                server.final(client.final(server_first))
            assert server.user is None


@pytest.mark.parametrize(
    "client_first",
    [
        b"y,,n=user,r=abc",  # channel binding
        b"p=tls-unique,,n=user,r=abc",
        b"n,a=admin,n=user,r=abc",  # authorization identity
        b"n,,n=user,r=abc,tokenauth=true",
        b"n,,m=ext,n=user,r=abc",
        b"n,,n=user",  # no nonce
        b"n,,n=us=er,r=abc",  # bad escape
        b"\xff\xfe",
        b"",
    ],
)
def test_malformed_or_unsupported_first_messages_are_refused(client_first: bytes) -> None:
    with pytest.raises(ScramError):
        _server(_rfc_user()).first(client_first)


def test_an_unknown_user_gets_the_same_answer_as_a_wrong_password() -> None:
    with pytest.raises(ScramError, match=FAILED):
        _server(_rfc_user()).first(b"n,,n=nobody,r=abc")


@pytest.mark.parametrize(
    "client_final",
    [
        CLIENT_FINAL.replace(b"c=biws", b"c=eSws"),  # other binding data
        CLIENT_FINAL.replace(b"r=rOpr", b"r=XOpr"),  # other nonce
        CLIENT_FINAL.split(b",p=")[0],  # no proof
        CLIENT_FINAL[:-4] + b"!!!=",  # not base64
        CLIENT_FINAL[:-8] + b"AAAAAAA=",  # wrong proof
    ],
)
def test_a_final_message_that_does_not_match_is_refused(client_final: bytes) -> None:
    server = _server(_rfc_user())
    server.first(CLIENT_FIRST)
    with pytest.raises(ScramError):
        server.final(client_final)
    assert server.user is None


def test_final_before_first_and_iteration_bounds() -> None:
    with pytest.raises(ScramError):
        _server(_rfc_user()).final(CLIENT_FINAL)
    for iterations in (4095, 16385):
        with pytest.raises(ScramError):
            make_credential(ScramMechanism.SHA_512, "p", b"s", iterations)
    assert ScramMechanism.named("SCRAM-SHA-512") is ScramMechanism.SHA_512
    assert ScramMechanism.of_type(1) is ScramMechanism.SHA_256 and ScramMechanism.named("x") is None
