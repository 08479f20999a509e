"""The controller's HTTP API, its OpenAPI document and the Prometheus metrics.
"""
