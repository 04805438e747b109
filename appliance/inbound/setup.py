"""Wire inbound from the config: restore what central sent at boot, then subscribe for more."""

from __future__ import annotations

import logging
import time
from typing import Any

from appliance.config import AppConfig
from appliance.inbound.handler import InboundHandler
from appliance.inbound.repo import InboundRepo
from appliance.inbound.subscriber import InboundSubscriber
from appliance.inbound.trust import load_trusted_keys
from appliance.store.db import Store
from appliance.verdicts.manifest import ManifestIndex
from appliance.verdicts.watchlist import WatchlistIndex

log = logging.getLogger(__name__)


def load_inbound_state(store: Store, manifest: ManifestIndex, now: float | None = None) -> WatchlistIndex:
    """Apply the stored inbound manifests (on top of the manifest file: central's word is newer)
    to ``manifest`` and return the watchlist index with the stored, still active entries."""
    repo = InboundRepo(store)
    rows = repo.manifest_rows()
    for declaration, entry in rows:
        if entry is None:
            manifest.remove(declaration)
        else:
            manifest.upsert(entry)
    watchlist = WatchlistIndex(repo.person_salt())
    for watch in repo.watch_entries(time.time() if now is None else now):
        watchlist.put(watch)
    if rows or len(watchlist):
        log.info("restored %d inbound manifest declarations and %d watchlist entries", len(rows), len(watchlist))
    return watchlist


def subscriber_from_config(
    cfg: AppConfig,
    store: Store,
    manifest: ManifestIndex,
    watchlist: WatchlistIndex,
    status: dict[str, Any] | None = None,
) -> InboundSubscriber:
    """The subscriber of ``cfg.inbound`` (call ``start()``/``stop()``); raises ConfigError on a bad key file."""
    ic = cfg.inbound
    if ic is None:
        raise ValueError("the config has no inbound section")
    gate, box = cfg.site.gate, cfg.site.box_id
    topics = [ic.manifest_topic.format(gate=gate, box=box), ic.watchlist_topic.format(gate=gate, box=box)]
    handler = InboundHandler(
        InboundRepo(store), manifest, watchlist, gate=gate, manifest_topic=topics[0], watchlist_topic=topics[1],
        trusted_keys=load_trusted_keys(ic.trusted_keys), max_payload_bytes=ic.max_payload_bytes, status=status,
    )
    password = ic.password_file.read_text(encoding="utf-8").strip() if ic.password_file else None
    return InboundSubscriber(
        handler.handle, ic.host, ic.port, client_id=ic.client_id or f"smartgate-{gate}-{box}-inbound", topics=topics,
        keepalive_s=ic.keepalive_s, username=ic.username, password=password, tls=ic.tls is not None,
        ca_file=ic.tls.ca_file if ic.tls else None, cert_file=ic.tls.cert_file if ic.tls else None,
        key_file=ic.tls.key_file if ic.tls else None,
    )
