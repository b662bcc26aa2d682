"""Minimised evidence of who acted: enough to tell one visitor from another, not to identify them."""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass

from django.http import HttpRequest


@dataclass(frozen=True)
class Evidence:
    ip_prefix: str = ""
    user_agent_hash: str = ""


def truncate_ip(address: str) -> str:
    """IPv4 to its /24, IPv6 to its /48: the network, never the host."""
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return ""
    prefix = 24 if ip.version == 4 else 48
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False).network_address)


def user_agent_hash(user_agent: str) -> str:
    return hashlib.sha256(user_agent.encode("utf-8", "replace")).hexdigest()[:16] if user_agent else ""


def evidence_from_request(request: HttpRequest) -> Evidence:
    # REMOTE_ADDR only: a proxy in front sets it through the server's own configuration,
    # whereas X-Forwarded-For is whatever the client chose to send.
    return Evidence(
        ip_prefix=truncate_ip(request.META.get("REMOTE_ADDR", "")),
        user_agent_hash=user_agent_hash(request.META.get("HTTP_USER_AGENT", "")[:500]),
    )
