"""Process and lab helpers shared by the tests and ``xenoflow lab``.

Python 3.9 compatible (they run in the Ryu 4.34 tox env too). Modules:
``netns`` (namespaces, veths, in-namespace commands), ``ovs_instance``
(a private userspace OVS), ``bind9`` (a DNS backend in a namespace),
``dnsclient`` (who.example.lab TXT queries, dnspython 1.16 and 2.x),
``frames`` (DNS messages through dnspython; Ethernet/IPv4/UDP/ARP frames,
well-formed and malformed on purpose, and their parser).
Nothing is imported here, so importing the package costs nothing.
"""
