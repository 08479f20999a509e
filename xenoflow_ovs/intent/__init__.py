"""The intent: pure code from a config file to both planes' rules and the checks on them.

Nothing here does I/O beyond reading the config file, and nothing imports the
controller, the eSwitch client, the API or the lab.
"""
