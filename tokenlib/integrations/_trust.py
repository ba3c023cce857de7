"""Which transport peers may speak for the client: the trust boundary of forwarded headers.

A forwarded header (RFC 9440 ``Client-Cert``, a vendor certificate header,
``X-Forwarded-*``, RFC 7239 ``Forwarded``) is only as honest as whoever added it, so it
is believed only when the *transport* peer — the address at the other end of the TCP
connection — is a proxy the operator configured. :class:`TrustedProxies` holds that
configuration. It never looks at a header itself: callers must hand it the transport
peer (ASGI: see :mod:`tokenlib.integrations.asgi`, which refuses servers whose own
proxy-header handling rewrote ``scope["client"]``; WSGI: ``REMOTE_ADDR`` with the
server's proxy fix off).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator
from typing import Final

__all__ = ["MAX_REMEMBERED_PEERS", "TrustedProxies"]

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_MAX_ENTRIES: Final = 4096
#: Peers whose answer :class:`TrustedProxies` remembers (cleared when full: a flood of
#: distinct source addresses costs re-parsing, never memory or a wrong answer).
MAX_REMEMBERED_PEERS: Final = 1024


def _parse(value: object, index: int) -> _Network:
    if not isinstance(value, str):
        raise ValueError(
            f"trusted_proxies[{index}]: expected an IP address or CIDR string, "
            f"got {type(value).__name__}"
        )
    text = value.strip()
    if not text or text != value or any(ch in text for ch in " \t\r\n,"):
        raise ValueError(
            f"trusted_proxies[{index}]: {value!r} is not one IP address or CIDR network"
        )
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise ValueError(
            f"trusted_proxies[{index}]: {value!r} is not an IP address or CIDR network "
            "(host names and '*' are not accepted: name the proxies' addresses)"
        ) from None


def _peer_address(peer: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = peer.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    text = text.split("%", 1)[0]  # an IPv6 zone id does not change which host it is
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped  # ::ffff:10.0.0.5 on a dual-stack socket is 10.0.0.5
    return address


class TrustedProxies:
    """An immutable set of proxy addresses/networks (``"10.0.0.5"``, ``"10.0.0.0/8"``,
    ``"::1"``). ``peer in proxies`` is ``True`` only for a parseable IP address inside one
    of them; ``None``, ``""``, host names and Unix-socket paths are never trusted.

    Raises ``ValueError`` naming the bad entry for anything that is not an IP address or
    CIDR network (a wildcard such as ``"*"`` is refused on purpose: trusting every peer
    is the same as trusting every client's headers).
    """

    __slots__ = ("_answers", "_networks")

    def __init__(self, proxies: Iterable[str] = ()) -> None:
        if isinstance(proxies, str):
            proxies = [proxies]
        networks: list[_Network] = []
        for index, value in enumerate(proxies):
            if index >= _MAX_ENTRIES:
                raise ValueError(f"trusted_proxies: more than {_MAX_ENTRIES} entries")
            network = _parse(value, index)
            if network not in networks:
                networks.append(network)
        self._networks: tuple[_Network, ...] = tuple(networks)
        self._answers: dict[str, bool] = {}

    @property
    def networks(self) -> tuple[_Network, ...]:
        return self._networks

    def __contains__(self, peer: object) -> bool:
        """Asked once or twice per request: answers are remembered per peer string
        (2.3–7.4 µs of ``ipaddress`` parsing → a dict lookup), at most
        :data:`MAX_REMEMBERED_PEERS` of them."""
        if not self._networks or not isinstance(peer, str):
            return False
        answer = self._answers.get(peer)
        if answer is not None:
            return answer
        address = _peer_address(peer)
        answer = address is not None and any(
            address.version == net.version and address in net for net in self._networks
        )
        if len(self._answers) >= MAX_REMEMBERED_PEERS:
            self._answers.clear()
        self._answers[peer] = answer
        return answer

    def __bool__(self) -> bool:
        return bool(self._networks)

    def __len__(self) -> int:
        return len(self._networks)

    def __iter__(self) -> Iterator[str]:
        return (str(net) for net in self._networks)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TrustedProxies):
            return NotImplemented
        return set(self._networks) == set(other._networks)

    def __hash__(self) -> int:
        return hash(frozenset(self._networks))

    def __repr__(self) -> str:
        return f"TrustedProxies({[str(net) for net in self._networks]!r})"
