"""XenoFlow-OVS: an L3 DNS load balancer on a SmartNIC eSwitch, driven by an OpenFlow controller."""

__version__ = "0.1.0"
