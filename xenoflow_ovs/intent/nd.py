"""The VIP6's Neighbor Discovery, answered inside Open vSwitch with flows. Pure.

What ARP is to the IPv4 VIP (plan._arp_responder), a Neighbor Solicitation (NS) is to
the VIP6: the solicitation that arrives on the service's ingress port is turned into
the Neighbor Advertisement (NA) in place and sent back out of that port. No import
of plan (plan imports this module): the rules come back as fields and actions that
plan wraps into its Flows.

How OVS (2.11+) does it, and why it takes two tables:
- the NA's flags word (Solicited 0x40000000 | Override 0x20000000) is `nd_reserved`
  and the option's type (source 1 -> target link-layer address 2) is
  `nd_options_type`: Ericsson OXM fields (class 0x1000, fields 1 and 2);
- the target link-layer address can only be written through `nd_tll`, whose
  prerequisite (an NA, icmpv6_type 136) OVS checks against the flow's match when
  the flow is added, so the rule that matches the NS (type 135) cannot write it;
  and writing `nd_sll` there is lost: OVS commits the option's type change before
  the address, so the address lands in a target option with the old value;
- hence the NS rule rewrites what it may and goes to table ND_TABLE, where a rule
  that matches the NA it has become writes `nd_tll` and outputs to IN_PORT.
OVS recomputes the ICMPv6 checksum for each of these rewrites (the addresses through
the pseudo-header, the flags and option type over the whole message).

A solicitation from the unspecified address (duplicate address detection) must not
be answered (the answer's destination would be ::): a rule above the responder drops
it. An NS for the VIP6 from any other port is dropped by the bridge's guard.
"""

from __future__ import annotations

from typing import Any, Dict, NamedTuple, Tuple

ETH_IPV6, IPPROTO_ICMPV6 = 0x86DD, 58
ND_SOLICIT, ND_ADVERT = 135, 136
NA_SOLICITED, NA_OVERRIDE = 0x40000000, 0x20000000
OPT_TARGET_LL = 2       # the option's type in the NA (the NS carried a source link-layer one, 1)
ND_TABLE = 1            # the responder's second step (the NA's target link-layer address)
UNSPECIFIED = "::"      # the source of a duplicate address detection's NS

Action = Tuple[Any, ...]


class NdRule(NamedTuple):
    """One rule of the responder: `above` is added to the responder's priority."""
    table: int
    above: int
    fields: Dict[str, Any]
    actions: Tuple[Action, ...]


def solicitation_fields(vip6: str) -> Dict[str, Any]:
    """An NS for the VIP6 (the responder's match, with in_port; a guard's, without)."""
    return dict(eth_type=ETH_IPV6, ip_proto=IPPROTO_ICMPV6, icmpv6_type=ND_SOLICIT,
                ipv6_nd_target=vip6)


def advertisement_fields(vip6: str) -> Dict[str, Any]:
    """The NA the solicitation has become, in ND_TABLE."""
    return dict(eth_type=ETH_IPV6, ip_proto=IPPROTO_ICMPV6, icmpv6_type=ND_ADVERT,
                ipv6_nd_target=vip6)


def dad_fields(vip6: str) -> Dict[str, Any]:
    """A duplicate address detection's NS for the VIP6: not answered."""
    return dict(solicitation_fields(vip6), ipv6_src=UNSPECIFIED)


def advertisement_actions(vip6: str, mac: str) -> Tuple[Action, ...]:
    """The NS turned into the NA, all but the target link-layer address (ND_TABLE's)."""
    return (("move", "eth_src", "eth_dst"), ("set_field", "eth_src", mac),
            ("move", "ipv6_src", "ipv6_dst"), ("set_field", "ipv6_src", vip6),
            ("set_field", "icmpv6_type", ND_ADVERT),
            ("set_field", "nd_reserved", NA_SOLICITED | NA_OVERRIDE),
            ("set_field", "nd_options_type", OPT_TARGET_LL),
            ("goto_table", ND_TABLE))


def target_address_actions(mac: str) -> Tuple[Action, ...]:
    """ND_TABLE: the target link-layer address option carries the VIP MAC; back out."""
    return (("set_field", "ipv6_nd_tll", mac), ("output", "IN_PORT"))


def responder_rules(vip6: str, mac: str) -> Tuple[NdRule, ...]:
    """The responder on the ingress port (plan adds in_port to each): the DAD drop just
    above it, the NS rewrite, and its second step in ND_TABLE."""
    return (NdRule(0, 1, dad_fields(vip6), ()),
            NdRule(0, 0, solicitation_fields(vip6), advertisement_actions(vip6, mac)),
            NdRule(ND_TABLE, 0, advertisement_fields(vip6), target_address_actions(mac)))


def guard_fields(vip6: str) -> Dict[str, Any]:
    """An NS for the VIP6 that no responder claimed (another port): dropped."""
    return solicitation_fields(vip6)
