"""A broker's authorizer: on or off, its settings, and the decision built from the current ACLs.

Off (Kafka without `authorizer.class.name`, the default) every request is allowed and
`access` answers None, so a handler pays one test per request and nothing per record. On, it
answers an `Access` for the request's principal and address over an `Authorizer` built from
the store's ACLs — rebuilt only when they change: the metadata image replaces its ACL set on
every change and keeps it otherwise, so an identity test tells.
"""

from __future__ import annotations

from dataclasses import dataclass

from broker.security.acl import AclBinding, Authorizer
from broker.security.authz import Access
from broker.security.store import SecurityStore


@dataclass(frozen=True)
class AuthorizerSettings:
    """Kafka's `super.users` and `allow.everyone.if.no.acl.found`."""

    super_users: tuple[str, ...] = ()
    allow_everyone_if_no_acl_found: bool = False

    @classmethod
    def parse(cls, super_users: str, allow_everyone_if_no_acl_found: bool) -> AuthorizerSettings:
        """From Kafka's spelling: `super.users` as "User:admin;User:broker"; ValueError
        naming what is not a principal."""
        principals = tuple(p.strip() for p in super_users.split(";") if p.strip())
        for principal in principals:
            kind, _, name = principal.partition(":")
            if not kind or not name:
                raise ValueError(f"expected TYPE:NAME (e.g. User:admin), got {principal!r}")
        return cls(principals, allow_everyone_if_no_acl_found)


class Guard:
    def __init__(self, settings: AuthorizerSettings | None, store: SecurityStore) -> None:
        self.settings = settings
        self._store = store
        self._acls: frozenset[AclBinding] | None = None
        self._authorizer: Authorizer | None = None

    @property
    def enabled(self) -> bool:
        return self.settings is not None

    def access(self, principal: str, host: str) -> Access | None:
        """The request's view of the authorizer; None when there is no authorizer."""
        settings = self.settings
        if settings is None:
            return None
        acls = self._store.acls()
        if self._authorizer is None or acls is not self._acls:
            self._authorizer = Authorizer(
                acls, settings.super_users, settings.allow_everyone_if_no_acl_found
            )
            self._acls = acls
        return Access(self._authorizer, principal, host)
