"""One error hierarchy for the appliance.

Every message says what was wrong, where, and (when there is one) what to do.
"""

from __future__ import annotations


class ApplianceError(Exception):
    """Base class of every error the appliance raises on purpose."""


class ConfigError(ApplianceError):
    """The configuration file is missing, unreadable or invalid."""


class ModelError(ApplianceError):
    """A model file or its manifest is missing, corrupt or not what the manifest says."""


class SourceError(ApplianceError):
    """A camera, video file, image folder or scanner could not be opened or read."""


class FrameError(ApplianceError):
    """A single frame or image could not be decoded; the source itself may still be fine."""


class PayloadError(ApplianceError):
    """A decoded code payload (QR/barcode) is malformed, oversized or hostile."""


class StoreError(ApplianceError):
    """The local SQLite store could not be opened, migrated or written."""


class SimulationError(ApplianceError):
    """The simulator was asked for something it cannot render."""
