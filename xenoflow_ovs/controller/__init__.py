"""The Ryu / os-ken OpenFlow app and what it drives: bridges, OVSDB, transitions, health.
"""
