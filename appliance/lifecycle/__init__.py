"""Running unattended: systemd notification and watchdog, signals (reload, drain), store backup and restore.

- ``sd_notify``: READY=1 / WATCHDOG=1 / STOPPING=1 datagrams to ``$NOTIFY_SOCKET`` (no dependency).
- ``watchdog``: per-lane heartbeats and the thread that pings systemd only while every lane makes progress.
- ``faults``: the test-only hang hook the watchdog test uses (inactive unless its variable is set).
- ``stage_latency``: per-stage latency histograms and analysed frame rate, for ``/metrics``.
- ``reload``: SIGHUP config reload (validated first; the running config stays when the new one is bad).
- ``signals``: SIGTERM/SIGINT drain, SIGHUP reload, wired by ``appliance run``.
- ``runlock``: the lock a running appliance holds on its store (restore refuses while it is held).
- ``backup``: online backup (sqlite3 backup API) and restore of the store.
"""
