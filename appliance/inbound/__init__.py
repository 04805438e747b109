"""Inbound from central: pre-arrival manifests and watchlists over MQTT, validated, persisted and
applied to the live indexes; anything malformed goes to the ``dead_letters`` table instead.

Modules: ``messages`` (formats), ``schemas`` (their JSON Schemas), ``trust`` (signatures),
``repo`` (SQLite), ``handler`` (validation and application), ``subscriber`` (paho-mqtt),
``setup`` (wiring from the config).
"""
