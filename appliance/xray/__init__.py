"""X-ray: scanner ingest, calibration, anomaly and manifest-consistency scoring (docs/XRAY.md)."""
