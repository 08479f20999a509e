"""The eSwitch daemon (eswitchd), its wire protocol and the controller's client.
"""
