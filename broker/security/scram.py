"""SCRAM-SHA-256 / SCRAM-SHA-512 (RFC 5802, RFC 7677) as Kafka speaks them: pure code.

The server never holds a password: a credential is the salt, the iteration count and two
keys derived from the salted password (`StoredKey`, `ServerKey`), as Kafka keeps them in
its metadata. A password is only seen by `make_credential`, when an admin sets one.

`ScramServer` is a state machine over the SASL messages (bytes in, bytes out), with no
socket, clock or randomness of its own: the caller gives the nonce, as h11 leaves I/O to
its caller. That is what makes it testable against the RFC's published exchange.

Kafka's particulars (`ScramSaslServer.java`, `ScramMessages.java`): no channel binding
(`n,,` only — the gs2 header `y`/`p` is refused), an optional `tokenauth=true` extension
(delegation tokens, which we do not issue: refused), iterations 4096..16384, and a failed
exchange answers one generic error so user names cannot be probed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

MIN_ITERATIONS = 4096
MAX_ITERATIONS = 16384
FAILED = (
    "Authentication failed during authentication due to invalid credentials with SASL mechanism"
)


class ScramMechanism(Enum):
    SHA_256 = ("SCRAM-SHA-256", "sha256", 1)
    SHA_512 = ("SCRAM-SHA-512", "sha512", 2)

    def __init__(self, mechanism_name: str, hash_name: str, kafka_type: int) -> None:
        self.mechanism_name = mechanism_name
        self.hash_name = hash_name
        self.kafka_type = kafka_type  # ScramMechanism in AlterUserScramCredentials

    @classmethod
    def named(cls, name: str) -> ScramMechanism | None:
        return next((m for m in cls if m.mechanism_name == name), None)

    @classmethod
    def of_type(cls, kafka_type: int) -> ScramMechanism | None:
        return next((m for m in cls if m.kafka_type == kafka_type), None)

    def digest(self, data: bytes) -> bytes:
        return hashlib.new(self.hash_name, data).digest()

    def hmac(self, key: bytes, data: bytes) -> bytes:
        return hmac.new(key, data, self.hash_name).digest()

    def salted_password(self, password: str, salt: bytes, iterations: int) -> bytes:
        return hashlib.pbkdf2_hmac(self.hash_name, password.encode(), salt, iterations)


@dataclass(frozen=True)
class ScramCredential:
    """What the server keeps for one user and mechanism."""

    salt: bytes
    iterations: int
    stored_key: bytes
    server_key: bytes


class ScramError(Exception):
    """The exchange failed; `str()` is what the client may be told."""


def make_credential(
    mechanism: ScramMechanism, password: str, salt: bytes, iterations: int
) -> ScramCredential:
    """The credential for `password` (the salt comes from the caller's random source)."""
    if not MIN_ITERATIONS <= iterations <= MAX_ITERATIONS:
        raise ScramError(f"iterations must be {MIN_ITERATIONS}..{MAX_ITERATIONS}, not {iterations}")
    salted = mechanism.salted_password(password, salt, iterations)
    return credential_from_salted(mechanism, salted, salt, iterations)


def credential_from_salted(
    mechanism: ScramMechanism, salted_password: bytes, salt: bytes, iterations: int
) -> ScramCredential:
    """The credential from a salted password, which is what AlterUserScramCredentials sends."""
    client_key = mechanism.hmac(salted_password, b"Client Key")
    return ScramCredential(
        salt=salt,
        iterations=iterations,
        stored_key=mechanism.digest(client_key),
        server_key=mechanism.hmac(salted_password, b"Server Key"),
    )


_SASLNAME = re.compile(r"^(?:[^=,]|=2C|=3D)+$")


def _attributes(message: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in message.split(","):
        name, equals, value = part.partition("=")
        if not equals or not name:
            raise ScramError(f"malformed SCRAM attribute {part[:20]!r}")
        if len(name) > 1 or name == "m":  # Kafka's tokenauth, or a mandatory extension
            raise ScramError(f"SCRAM extension {name[:20]!r} is not supported")
        out.setdefault(name, value)
    return out


def _unescape(name: str) -> str:
    if not _SASLNAME.match(name):
        raise ScramError("invalid user name")
    return name.replace("=2C", ",").replace("=3D", "=")


class ScramServer:
    """One authentication: `first(client_first) -> server_first`, then
    `final(client_final) -> server_final`; `user` is set once it succeeded."""

    def __init__(
        self,
        mechanism: ScramMechanism,
        credentials: Callable[[str], ScramCredential | None],
        server_nonce: str,
    ) -> None:
        assert server_nonce and "," not in server_nonce
        self.mechanism = mechanism
        self._credentials = credentials
        self._server_nonce = server_nonce
        self._client_first_bare = ""
        self._server_first = ""
        self._nonce = ""
        self._user = ""
        self._credential: ScramCredential | None = None
        self.user: str | None = None

    def first(self, message: bytes) -> bytes:
        text = _decode(message)
        if not text.startswith("n,"):
            raise ScramError("channel binding is not supported")
        if not text.startswith("n,,"):
            raise ScramError("an authorization identity is not supported")
        bare = text[3:]
        attributes = _attributes(bare)
        user, client_nonce = _unescape(attributes.get("n", "")), attributes.get("r", "")
        if not client_nonce:
            raise ScramError("the client nonce is missing")
        credential = self._credentials(user)
        if credential is None:
            raise ScramError(FAILED)
        self._user, self._credential = user, credential
        self._client_first_bare = bare
        self._nonce = client_nonce + self._server_nonce
        salt = base64.b64encode(credential.salt).decode()
        self._server_first = f"r={self._nonce},s={salt},i={credential.iterations}"
        return self._server_first.encode()

    def final(self, message: bytes) -> bytes:
        if self._credential is None:
            raise ScramError("the client-final message came first")
        text = _decode(message)
        attributes = _attributes(text)
        if attributes.get("c") != "biws":  # base64("n,,"): no binding, no authzid
            raise ScramError("channel binding data does not match")
        # Kafka checks that the nonce *ends with* its own, and librdkafka before 2.x fixed it
        # (kcat from Debian: 2.0.2) sends the client nonce twice; the server's fresh part
        # still binds the proof to this exchange.
        if not attributes.get("r", "").endswith(self._nonce):
            raise ScramError("the nonce does not match")
        without_proof, _, proof_text = text.rpartition(",p=")
        if not without_proof:
            raise ScramError("the client proof is missing")
        auth_message = f"{self._client_first_bare},{self._server_first},{without_proof}".encode()
        signature = self.mechanism.hmac(self._credential.stored_key, auth_message)
        try:
            proof = base64.b64decode(proof_text, validate=True)
        except ValueError:
            raise ScramError("the client proof is not base64") from None
        if len(proof) != len(signature):
            raise ScramError(FAILED)
        client_key = bytes(a ^ b for a, b in zip(proof, signature, strict=True))
        if not hmac.compare_digest(self.mechanism.digest(client_key), self._credential.stored_key):
            raise ScramError(FAILED)
        self.user = self._user
        verifier = self.mechanism.hmac(self._credential.server_key, auth_message)
        return b"v=" + base64.b64encode(verifier)


def _decode(message: bytes) -> str:
    try:
        return message.decode("utf-8")
    except UnicodeDecodeError:
        raise ScramError("a SCRAM message must be UTF-8") from None


class ScramClient:
    """The client side, for our own tools (the mirror's admin calls use librdkafka): the
    exchange `ScramServer` expects, with the nonce from the caller."""

    def __init__(self, mechanism: ScramMechanism, user: str, password: str, nonce: str) -> None:
        self.mechanism = mechanism
        escaped = user.replace("=", "=3D").replace(",", "=2C")
        self._bare = f"n={escaped},r={nonce}"
        self._password = password
        self._nonce = nonce
        self._server_signature = b""

    def first(self) -> bytes:
        return f"n,,{self._bare}".encode()

    def final(self, server_first: bytes) -> bytes:
        text = _decode(server_first)
        attributes = _attributes(text)
        nonce, salt, iterations = attributes["r"], attributes["s"], int(attributes["i"])
        if not nonce.startswith(self._nonce):
            raise ScramError("the server nonce does not extend ours")
        salted = self.mechanism.salted_password(self._password, base64.b64decode(salt), iterations)
        without_proof = f"c=biws,r={nonce}"
        auth_message = f"{self._bare},{text},{without_proof}".encode()
        client_key = self.mechanism.hmac(salted, b"Client Key")
        signature = self.mechanism.hmac(self.mechanism.digest(client_key), auth_message)
        proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
        server_key = self.mechanism.hmac(salted, b"Server Key")
        self._server_signature = self.mechanism.hmac(server_key, auth_message)
        return f"{without_proof},p={base64.b64encode(proof).decode()}".encode()

    def verify(self, server_final: bytes) -> None:
        attributes = _attributes(_decode(server_final))
        if "e" in attributes or base64.b64decode(attributes.get("v", "")) != self._server_signature:
            raise ScramError("the server's signature does not match")
