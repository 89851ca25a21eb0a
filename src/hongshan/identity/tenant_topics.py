"""What a users-file user of a tenant may publish and be delivered: its tenant's topics only.

A plain MQTT user (the users file, ``identity.passwords``) with a tenant — a town's integration
account — keeps the ACL's answer for what it may subscribe to, but is *delivered* only
messages on its tenant's topics, and may *publish* only there:

- a device topic that names a product of its tenant (``Directory.tenant_of``): Alink's
  ``/sys/{pk}/{dn}/…``, a custom topic ``/{pk}/{dn}/user/…``, ``/shadow/{update|get}/{pk}/{dn}``,
  ``/ota/device/{kind}/{pk}/{dn}``, ``/ext/ntp|session/{pk}/{dn}/…``, ``/as/mqtt/status/{pk}/{dn}``
  and ``/ext/rrpc/{id}/…`` around any of these (``product_named``);
- its free prefix ``tenants/{tenant}/…`` (``free_prefix``), for what it exchanges with its own
  applications.

Nothing else: not another tenant's devices, not a platform-wide topic, not ``$SYS`` (it counts
every tenant's clients and messages, which is no town's business), and not ThingsBoard's device
API — ``v1/devices/me/…`` and ``v1/gateway/…`` name no device in the topic (the access token
or the payload does), so no tenant can be told to own one of them.

A user without a tenant is the platform operator's: ``TenantUsers.access`` hands back the ACL's
own ``Access`` for it, unchanged, so its deliveries cost nothing more. A tenant user's cost one
parse per topic name (remembered, ``TopicMemo``) and one dict lookup of the product's tenant per
delivery; a product's tenant is read at each delivery, never remembered here, so a product made
or deleted takes effect on the next message.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from hongshan.broker.auth import Access, Authorizer, Client, ReceiveFilter
from hongshan.mqtt.memo import TopicMemo

TenantOf = Callable[[str], str | None]  # a product key -> its tenant (Directory.tenant_of)

FREE_PREFIX = "tenants/{tenant}/"


def free_prefix(tenant: str) -> str:
    """The topics under which a tenant's users may exchange anything: ``tenants/{tenant}/``."""
    return FREE_PREFIX.format(tenant=tenant)


# Where the product key stands in each Alink namespace: (the levels before it, its index)
_PRODUCT_AT: tuple[tuple[tuple[str, ...], int], ...] = (
    (("", "sys"), 2),
    (("", "shadow", "update"), 3),
    (("", "shadow", "get"), 3),
    (("", "ota", "device"), 4),  # /ota/device/{inform|progress|request|upgrade}/{pk}/{dn}
    (("", "ext", "ntp"), 3),
    (("", "ext", "session"), 3),
    (("", "as", "mqtt", "status"), 4),
)

# A tenant user's deliveries ask the same few topics again and again; their product keys are a
# function of the name alone (never stale), remembered within a byte budget.
_NAMED: TopicMemo[str | None] = TopicMemo(65_536, 8 * 1024 * 1024)
_UNSEEN = "\0"  # (no product key holds a NUL: it is no topic's answer)


def product_named(topic: str) -> str | None:
    """The product key a device topic names, or None when ``topic`` is no device's."""
    found = _NAMED.get(topic, _UNSEEN)
    if found is _UNSEEN:
        found = _product_named(topic)
        _NAMED.remember(topic, found)
    return found


def _product_named(topic: str) -> str | None:
    if not topic.startswith("/"):
        return None
    levels = topic.split("/", 6)
    if levels[1:3] == ["ext", "rrpc"]:
        # /ext/rrpc/{messageId}/{a device's own topic without its leading '/'}
        wrapped = topic.split("/", 4)
        return _product_named("/" + wrapped[4]) if len(wrapped) == 5 else None
    for before, at in _PRODUCT_AT:
        if len(levels) > at + 1 and tuple(levels[: len(before)]) == before:
            return levels[at] or None
    if len(levels) > 4 and levels[3] == "user" and levels[1] and levels[2]:
        return levels[1]  # /{pk}/{dn}/user/…: a product's custom topic classes
    return None


class TenantAccess:
    """What a users-file user of ``tenant`` may do: what its ACL grants (``granted``), and only
    on its tenant's topics; implements ``hongshan.broker.auth.Access``. It never widens the
    ACL: a publish or a delivery needs both."""

    __slots__ = ("_granted", "_prefix", "_tenant", "_tenant_of", "receive_filter")

    def __init__(self, granted: Access, tenant: str, tenant_of: TenantOf) -> None:
        self._granted = granted
        self._tenant = tenant
        self._tenant_of = tenant_of
        self._prefix = free_prefix(tenant)
        also = granted.receive_filter
        self.receive_filter: ReceiveFilter
        if also is None:
            self.receive_filter = self.owns
        else:
            self.receive_filter = lambda topic: self.owns(topic) and also(topic)

    def owns(self, topic: str) -> bool:
        """Whether ``topic`` is the tenant's: under its free prefix, or a topic of one of its
        products' devices."""
        if topic.startswith(self._prefix):
            return True
        product = product_named(topic)
        return product is not None and self._tenant_of(product) == self._tenant

    def may_publish(self, topic: str) -> bool:
        return self.owns(topic) and self._granted.may_publish(topic)

    def may_subscribe(self, topic_filter: str) -> bool:
        # as the ACL says: a wide filter (``/sys/#``) is the usual one, narrowed at delivery
        return self._granted.may_subscribe(topic_filter)


class TenantUsers:
    """An ``Authorizer``: the ACL's answer (``acl``) for every client, held to its tenant's
    topics (``TenantAccess``) for a user the users file gives a tenant (``tenants``: username
    -> tenant). Anonymous clients and users without a tenant get the ACL's answer itself."""

    def __init__(self, acl: Authorizer, tenants: Mapping[str, str], tenant_of: TenantOf) -> None:
        self._acl = acl
        self._tenants = dict(tenants)
        self._tenant_of = tenant_of

    @property
    def tenants(self) -> Mapping[str, str]:
        """The users held to a tenant: username -> tenant."""
        return self._tenants

    def access(self, client: Client) -> Access:
        granted = self._acl.access(client)
        tenant = None if client.username is None else self._tenants.get(client.username)
        if tenant is None:
            return granted
        return TenantAccess(granted, tenant, self._tenant_of)
