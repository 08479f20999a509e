"""Bucket tables and OpenFlow term merging: distribution, weights, determinism, disruption."""

import itertools

import netaddr
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xenoflow_ovs.intent import buckets
from xenoflow_ovs.intent.config import Backend, Policy, Service


def backend(i, weight=1):
    return Backend(name="be%d" % i, ip=netaddr.IPAddress("198.18.0.%d" % (10 + i)),
                   mac="02:00:c6:12:01:%02x" % i, weight=weight)


def service(n, bits, kind="src-ip-bits", weights=None):
    weights = weights or [1] * n
    return Service(name="s", vip=netaddr.IPAddress("198.18.0.53"), vip_mac="02:00:c6:12:00:35",
                   protocols=("udp",), port=53, ingress="p0", egress="p1",
                   policy=Policy(kind=kind, bits=bits),
                   backends=tuple(backend(i, w) for i, w in enumerate(weights)))


def test_paper_split_is_even_odd():
    assert buckets.table(service(2, 1)) == ("be0", "be1")


def test_modulo_with_equal_weights():
    assert buckets.table(service(3, 3)) == tuple("be%d" % (i % 3) for i in range(8))


@pytest.mark.parametrize("weights,bits", [([1, 1], 4), ([3, 1], 4), ([1, 2, 5], 6), ([2, 2, 4], 5)])
def test_weights_are_respected(weights, bits):
    for kind in ("src-ip-bits", "maglev"):
        tbl = buckets.table(service(len(weights), bits, kind, weights))
        share = buckets.shares(tbl)
        size = 1 << bits
        for i, w in enumerate(weights):
            expect = size * w / sum(weights)
            assert abs(share["be%d" % i] - expect) <= max(1.0, 0.1 * expect), (kind, share)


def test_weight_zero_gets_nothing_and_exclusion_falls_back_to_all():
    svc = service(3, 3, weights=[1, 0, 1])
    assert "be1" not in buckets.table(svc)
    assert set(buckets.table(svc, exclude=["be0"])) == {"be2"}
    # Everything excluded: keep serving with all rather than black-holing on purpose.
    assert set(buckets.table(svc, exclude=["be0", "be2"])) == {"be0", "be2"}


def test_maglev_is_deterministic_and_order_independent():
    svc = service(5, 8, "maglev")
    rev = Service(**{**svc.__dict__, "backends": tuple(reversed(svc.backends))})
    assert buckets.table(svc) == buckets.table(rev)


@pytest.mark.parametrize("n", [2, 3, 5, 8, 16])
def test_maglev_removal_moves_few_and_restore_is_exact(n):
    svc = service(n, 8, "maglev")
    full = buckets.table(svc)
    without = buckets.table(svc, exclude=["be1"])
    assert "be1" not in without
    own = full.count("be1")
    # Every bucket of the removed backend must move; Maglev moves few others.
    assert buckets.moved(full, without) >= own
    assert buckets.moved(full, without) <= own + 0.25 * len(full)
    assert buckets.table(svc) == full  # back: the table is what it was


def test_modulo_disruption_is_worse_than_maglev():
    n = 8
    mod = service(n, 8)
    mag = service(n, 8, "maglev")
    moved_mod = buckets.moved(buckets.table(mod), buckets.table(mod, exclude=["be1"]))
    moved_mag = buckets.moved(buckets.table(mag), buckets.table(mag, exclude=["be1"]))
    assert moved_mag < moved_mod


def covered(terms, k):
    out = {}
    for v, m, name in terms:
        for x in range(1 << k):
            if x & m == v:
                assert x not in out, "terms overlap at bucket %d" % x
                out[x] = name
    return out


def test_merge_paper_and_blocks():
    assert buckets.merge(("a", "b")) == [(0, 1, "a"), (1, 1, "b")]
    assert buckets.merge(("a", "a", "b", "b")) == [(0, 2, "a"), (2, 2, "b")]
    assert buckets.merge(("a", "b", "a", "b")) == [(0, 1, "a"), (1, 1, "b")]
    assert buckets.merge(("a",) * 8) == [(0, 0, "a")]


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=6).flatmap(
    lambda k: st.lists(st.sampled_from("abc"), min_size=1 << k, max_size=1 << k)))
def test_merge_is_an_exact_partition(tbl):
    tbl = tuple(tbl)
    k = (len(tbl) - 1).bit_length()
    terms = buckets.merge(tbl)
    assert covered(terms, k) == dict(enumerate(tbl))
    assert len(terms) <= len(tbl)


def test_src_port_policy_uses_same_table_shape():
    assert buckets.table(service(2, 2, "src-port-bits")) == ("be0", "be1", "be0", "be1")


def test_every_backend_gets_a_bucket_when_it_fits():
    for n, bits in itertools.product(range(1, 9), range(3, 6)):
        if n <= 1 << bits:
            for kind in ("src-ip-bits", "maglev"):
                assert len(set(buckets.table(service(n, bits, kind)))) == n
