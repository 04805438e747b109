"""The appliance's configuration: one pydantic tree, loaded once at start-up.

Every model forbids unknown keys (a typo must not silently disable a check) and every field is
described. ``load_config`` reports each problem with the YAML line it comes from, so
``appliance check-config FILE`` tells an operator exactly what to fix, and a bad config never
starts a half-working appliance.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ByteSize, ConfigDict, Field, ValidationError, field_validator, model_validator

from appliance.actuators.config import LaneActuatorsConfig  # the lane's actuators: section
from appliance.errors import ConfigError


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SiteConfig(Strict):
    gate: str = Field(
        description="UN/LOCODE-style code of the gate, e.g. VNHNG (Hữu Nghị).",
        pattern=r"^[A-Z]{2}[A-Z0-9]{3}$",
    )
    name: str = Field(default="", description="Human name of the gate, shown in the UI.")
    box_id: str = Field(description="Identifier of this edge box, unique within the gate.")
    timezone: str = Field(
        default="Asia/Ho_Chi_Minh",
        description="IANA time zone of the gate (e.g. Asia/Ho_Chi_Minh, Asia/Shanghai): every date and time "
        "the web UI shows, and the times typed into its search form, are in this zone.",
    )

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown IANA time zone {value!r} (e.g. Asia/Ho_Chi_Minh, Asia/Shanghai)") from exc
        return value


SourceRole = Literal["front", "rear", "side", "kiosk", "seal", "face"]


class _SourceBase(Strict):
    id: str = Field(description="Source name, unique within the lane.", pattern=r"^[a-z0-9_-]+$")
    role: SourceRole = Field(
        description="What the source looks at: front (tractor plate / IGV id), rear (trailer "
        "plate, container doors, seal), side (container side), kiosk (declaration documents; in a "
        "passenger lane the document scanner), seal (seal close-up), face (a passenger lane's face camera)."
    )
    roi: tuple[int, int, int, int] | None = Field(
        default=None, description="Lane region of interest on this camera's frames: x, y, width, height in pixels "
        "(checked by `appliance calibrate lane`, docs/CALIBRATION_CAMERA.md); null: the whole frame.",
    )
    plate_height_px: tuple[float, float] | None = Field(
        default=None, description="Expected height of a licence plate on this camera's frames, [min, max] pixels "
        "(checked by `appliance calibrate lane`); null: not set.",
    )

    @model_validator(mode="after")
    def _calibration_fields(self) -> _SourceBase:
        if self.roi is not None and (self.roi[0] < 0 or self.roi[1] < 0 or self.roi[2] <= 0 or self.roi[3] <= 0):
            raise ValueError(f"roi must be x >= 0, y >= 0, width > 0, height > 0; got {list(self.roi)}")
        if self.plate_height_px is not None and not 0 < self.plate_height_px[0] <= self.plate_height_px[1]:
            raise ValueError("plate_height_px must be [min, max] with 0 < min <= max; "
                             f"got {list(self.plate_height_px)}")
        return self


class VideoFileSourceConfig(_SourceBase):
    type: Literal["video_file"]
    path: Path = Field(description="Video file (resolved relative to the config file).")
    start_time: float | None = Field(
        default=None, description="Epoch seconds of frame 0; default: the file's modification time."
    )
    realtime: bool = Field(default=False, description="Pace reading to the video clock.")


class StreamSourceConfig(_SourceBase):
    type: Literal["stream"]
    url: str = Field(description="rtsp://, http:// or https:// URL read through OpenCV's FFmpeg backend.")


class UsbSourceConfig(_SourceBase):
    type: Literal["usb"]
    device: int = Field(ge=0, description="V4L2 device index (/dev/videoN).")


class FolderSourceConfig(_SourceBase):
    type: Literal["folder"]
    path: Path = Field(description="Folder where a scanner or kiosk drops images.")
    follow: bool = Field(default=True, description="Keep watching for new files (False: drain and stop).")
    move_processed: bool = Field(
        default=True,
        description="Move read files into done/ (False: leave the folder untouched, e.g. when replaying "
        "a recorded or simulated lane).",
    )


SourceConfig = Annotated[
    VideoFileSourceConfig | StreamSourceConfig | UsbSourceConfig | FolderSourceConfig,
    Field(discriminator="type"),
]


class AssemblyConfig(Strict):
    close_after_idle_s: float = Field(
        default=1.0, gt=0, description="Close a crossing after this long with no motion on any source."
    )
    analyze_fps: float = Field(
        default=5.0, gt=0, description="Most frames per second per source sent to the readers."
    )
    max_crossing_s: float = Field(
        default=120.0, gt=0, description="Close a crossing that lasts longer than this (stuck vehicle)."
    )


class LaneConfig(Strict):
    id: str = Field(description="Lane name, unique on this box.", pattern=r"^[a-z0-9_-]+$")
    kind: Literal["cargo", "passenger"] = Field(default="cargo", description="Kind of lane.")
    sources: list[SourceConfig] = Field(min_length=1, description="Cameras and scanners of this lane.")
    assembly: AssemblyConfig = Field(default_factory=AssemblyConfig)
    actuators: LaneActuatorsConfig | None = Field(
        default=None, description="Barrier, signal lights, message board, IGV fleet link and loop detectors of the "
        "lane (docs/ACTUATORS.md); absent: the lane drives nothing.")

    @model_validator(mode="after")
    def _unique_sources(self) -> LaneConfig:
        ids = [s.id for s in self.sources]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"source ids must be unique within a lane, repeated: {dupes}")
        roles = {s.role for s in self.sources}
        if self.kind == "passenger" and not {"face", "kiosk"} <= roles:
            raise ValueError("a passenger lane needs a source with role face (the camera) and one with role kiosk "
                             f"(the document scanner); it has {sorted(roles)}")
        if self.kind == "cargo" and "face" in roles:
            raise ValueError("role face belongs to passenger lanes (kind: passenger)")
        return self


class PlatesConfig(Strict):
    enabled: bool = Field(default=True, description="Read licence plates.")
    detector_max_side: int = Field(default=960, ge=320, le=2048, description="Text detector input size.")


class ContainersConfig(Strict):
    enabled: bool = Field(default=True, description="Read ISO 6346 container numbers.")


class SealsConfig(Strict):
    enabled: bool = Field(default=True, description="Read seal serials and presence.")
    serial_pattern: str = Field(
        default=r"^[A-Z]{2,4}\d{6,8}$", description="Regular expression a seal serial must match."
    )


class CodesConfig(Strict):
    enabled: bool = Field(default=True, description="Decode QR codes and 1-D barcodes.")
    max_payload_bytes: int = Field(default=4096, ge=16, description="Larger payloads are dropped.")


class AnalyzersConfig(Strict):
    plates: PlatesConfig = Field(default_factory=PlatesConfig)
    containers: ContainersConfig = Field(default_factory=ContainersConfig)
    seals: SealsConfig = Field(default_factory=SealsConfig)
    codes: CodesConfig = Field(default_factory=CodesConfig)
    ocr_threads: int = Field(default=1, ge=1, le=64, description="ONNX Runtime threads per model.")
    ocr_detector: str = Field(
        default="ppocrv4-det", pattern=r"^[a-z0-9][a-z0-9_.-]*$",
        description="Text detector in the model store (models/text-detection/<name>). ppocrv4-det-int8 (made by "
        "`appliance models quantize`) runs about 1.6x faster but finds small text (seal serials) less often: "
        "measured 96 % verdicts against 97 % for the float ppocrv4-det (docs/EVALUATION.md).",
    )
    ocr_recognizer: str = Field(
        default="ppocrv4-rec", pattern=r"^[a-z0-9][a-z0-9_.-]*$",
        description="Text recogniser in the model store (models/text-recognition/<name>).",
    )


class VerdictConfig(Strict):
    plate_min_confidence: float = Field(
        default=0.6, ge=0, le=1, description="A plate read that contradicts the manifest needs this to HOLD."
    )
    container_min_confidence: float = Field(
        default=0.6, ge=0, le=1, description="A container read that contradicts the manifest needs this to HOLD."
    )
    seal_min_confidence: float = Field(
        default=0.5, ge=0, le=1, description="A seal read that contradicts the manifest needs this to HOLD."
    )
    match_min_confidence: float = Field(
        default=0.2, ge=0, le=1,
        description="A read that equals the manifest exactly needs only this confidence (an OCR error that "
        "lands exactly on the declared value is very unlikely); below it: REVIEW.",
    )
    require_declaration: bool = Field(default=True, description="No declaration scanned: REVIEW.")
    plate_mismatch: Literal["HOLD", "REVIEW"] = Field(
        default="HOLD", description="Verdict when the read plate differs from the manifest."
    )
    seal_match_distance: int = Field(
        default=1, ge=0, le=3,
        description="OCR-only seal reads within this many character edits of a declared serial (in most "
        "frames) support the declaration; barcode reads must match exactly. 0: exact only.",
    )
    min_votes_to_hold: int = Field(
        default=2, ge=1,
        description="A read that contradicts the manifest holds the vehicle only when this many frames agree "
        "on it; fewer: REVIEW (one blurred frame must not stop a truck).",
    )


class FaceQualityConfig(Strict):
    min_eye_distance_px: float = Field(default=32, gt=0, description="Smallest distance between the eye centres, px.")
    min_sharpness: float = Field(
        default=25, ge=0,
        description="Least normalised sharpness of the face chip (appliance/faces/quality.py: a sharp photo ~100-160, "
        "Gaussian blur sigma 1.5 px ~18).",
    )
    max_roll_deg: float = Field(default=20, gt=0, le=90, description="Largest head roll (eye line angle).")
    max_yaw: float = Field(default=0.3, gt=0, le=1,
                           description="Largest nose offset from the eyes' midpoint, in inter-ocular distances.")
    min_brightness: float = Field(default=50, ge=0, le=255, description="Darkest mean grey level of the chip.")
    max_brightness: float = Field(default=210, ge=0, le=255, description="Brightest mean grey level of the chip.")
    max_clipped: float = Field(default=0.2, gt=0, le=1, description="Largest share of the face clipped black or white.")


LivenessCheck = Literal["passive", "motion"]


class LivenessConfig(Strict):
    checks: list[LivenessCheck] = Field(
        default_factory=lambda: list[LivenessCheck](["passive", "motion"]),
        description="Presentation-attack checks that must pass: passive (print / screen cues on one frame), motion "
        "(3D parallax of the head across frames). Their limits: docs/FACES.md.",
    )
    min_frames: int = Field(default=4, ge=2, le=100, description="Frames with one face needed to judge motion.")
    min_parallax: float = Field(
        default=0.08, gt=0, le=1,
        description="Least spread of the nose's offset along the eye line across frames, in inter-ocular distances "
        "(a flat picture moved before the camera stays under ~0.035; a head turning a little ~0.09).",
    )
    passive_threshold: float = Field(default=0.5, gt=0, le=1, description="Attack score from which a frame fails.")


class FacesConfig(Strict):
    """The passenger lane's face pipeline: quality, liveness, 1:1 match, watchlist, privacy."""

    embedder: str = Field(
        default="dlib-resnet-v1", pattern=r"^[a-z0-9][a-z0-9_.-]*$",
        description="Face embedding model in the model store (models/face-embedding/<name>).",
    )
    match_threshold: float = Field(
        default=0.55, gt=0, le=2,
        description="Largest descriptor distance accepted as the same person (1:1). Chosen for a target false-match "
        "rate: docs/EVALUATION.md gives the rate measured at each threshold (`appliance eval faces`).",
    )
    watchlist_threshold: float = Field(
        default=0.5, gt=0, le=2, description="Largest distance to a watchlist template that counts as a hit (1:N)."
    )
    capture_s: float = Field(default=3.0, gt=0, le=30, description="How long the lane films a passenger at most.")
    max_faces: int = Field(default=1, ge=1, le=1, description="More faces than this in a frame: MANUAL (tailgating).")
    quality: FaceQualityConfig = Field(default_factory=FaceQualityConfig)
    liveness: LivenessConfig = Field(default_factory=LivenessConfig)
    key_file: Path | None = Field(
        default=None,
        description="AES-256 key for face data at rest; $CREDENTIALS_DIRECTORY/face-key (systemd LoadCredential) "
        "wins when set. Create one with `appliance faces keygen`.",
    )
    store_path: Path = Field(default=Path("var/faces.db"), description="Encrypted templates and face crops.")
    document_reader_dir: Path | None = Field(
        default=None,
        description="Folder where a document reader drops the chip photo of the presented document "
        "(<document number>.jpg); absent: reference photos come from the enrolment store only.",
    )
    crop_retention_days: float = Field(default=30, gt=0, description="Face crops are purged after this long.")
    template_retention_days: float = Field(
        default=365, gt=0, description="Enrolled reference templates are purged after this long without renewal."
    )


class XrayConfig(Strict):
    """The drive-through X-ray scanner of this lane: its drop folder, calibration and model (docs/XRAY.md)."""

    drop_dir: Path = Field(description="Folder the scanner drops its exports into (sidecar + images, or DICOM).")
    follow: bool = Field(default=True, description="Keep watching the folder (False: drain it and stop).")
    calibration_dir: Path = Field(
        default=Path("calibration/xray"),
        description="Where `appliance calibrate xray` wrote each scanner's calibration (<dir>/<scanner id>/).",
    )
    model: str = Field(
        default="sim-cnn", pattern=r"^[a-z0-9][a-z0-9_.-]*$",
        description="The xray-anomaly model in the model store (models/xray-anomaly/<name>); "
        "`appliance train xray-anomaly` makes one.",
    )
    consistency_model: str | None = Field(
        default=None, pattern=r"^[a-z0-9][a-z0-9_.-]*$",
        description="The xray-consistency model (declared goods and quantity vs the image); absent: not checked. "
        "`appliance train xray-consistency` makes one.",
    )
    pixel_m: tuple[float, float] = Field(
        default=(0.003, 0.004),
        description="Metres per pixel of this scanner (row, column) at the object, unless a scan's sidecar says.",
    )
    window_s: float = Field(default=3600, gt=0, description="A scan belongs to a crossing at most this far in time.")
    upload_token_file: Path | None = Field(
        default=None,
        description="Bearer token (owner-only file) with which the scanner may POST scans to /api/scanner/xray; "
        "absent: the scanner drops files into drop_dir only.",
    )
    default_utc_offset_h: float | None = Field(
        default=7, ge=-14, le=14,
        description="UTC offset of scanner timestamps that carry none (Vietnam: 7); null refuses such scans.",
    )


class ManifestConfig(Strict):
    file: Path | None = Field(
        default=None, description="Pre-arrival manifest JSON file (until central pushes them)."
    )


class StorageConfig(Strict):
    path: Path = Field(default=Path("var/appliance.db"), description="SQLite database file.")
    evidence_dir: Path = Field(default=Path("var/evidence"), description="Evidence crops, named by sha256.")


Budget = Annotated[ByteSize, Field(gt=0)]


class RetentionBudgets(Strict):
    evidence: Budget | None = Field(
        default=None, description="Crossing evidence images (plate/container/seal crops) under storage.evidence_dir, "
        "in bytes or with a unit ('20GB', '500MiB'); null: no budget, usage is reported only.",
    )
    xray: Budget | None = Field(
        default=None, description="X-ray evidence images (scan heat maps) under storage.evidence_dir; null: no budget.",
    )
    faces: Budget | None = Field(
        default=None, description="Sealed face crops in the face store (faces.store_path); enrolled templates are "
        "never evicted (they expire by their TTL); null: no budget.",
    )


class RetentionConfig(Strict):
    enabled: bool = Field(default=True, description="Run the retention thread (usage, alarms, eviction).")
    interval_s: float = Field(default=60, ge=1, le=86400, description="Seconds between two retention passes.")
    budgets: RetentionBudgets = Field(default_factory=RetentionBudgets, description="Disk budget per data class.")
    alarm_fraction: float = Field(
        default=0.9, gt=0, lt=1, description="Alarm (a WARNING in the log and /api/status) when a class uses this "
        "share of its budget, before the budget is reached.",
    )
    target_fraction: float = Field(
        default=0.8, gt=0, lt=1, description="A class over its budget is evicted (oldest first, never held "
        "evidence) down to this share of its budget.",
    )
    orphan_grace_s: float = Field(
        default=3600, ge=60, description="Evidence no stored crossing names yet (its crossing is still open) is "
        "kept at least this long.",
    )

    @model_validator(mode="after")
    def _target_below_alarm(self) -> RetentionConfig:
        if self.target_fraction > self.alarm_fraction:
            raise ValueError(f"target_fraction ({self.target_fraction}) must not be above alarm_fraction "
                             f"({self.alarm_fraction}): eviction would stop while the class is still in alarm")
        return self


class WebConfig(Strict):
    host: str = Field(default="127.0.0.1", description="Address the web UI listens on.")
    port: int = Field(default=8080, ge=1, le=65535, description="Port of the web UI.")
    session_idle_minutes: float = Field(
        default=30, gt=0, le=24 * 60, description="A login session ends after this long without a request."
    )
    session_max_hours: float = Field(
        default=12, gt=0, le=7 * 24, description="A login session ends this long after the login, in any case."
    )
    secure_cookie: Literal["auto", "always", "never"] = Field(
        default="auto",
        description="Mark the session cookie Secure: auto = when the request came over HTTPS (a TLS proxy on "
        "this box must set X-Forwarded-Proto); always = behind any TLS proxy.",
    )


ExecutionProvider = Literal["TensorrtExecutionProvider", "CUDAExecutionProvider", "OpenVINOExecutionProvider",
                           "CPUExecutionProvider"]

# The project's release key: it signs the model packages committed under models/ (the private half is
# kept by the release maintainers, never in the repository). A site that signs its own models lists its
# own keys in models.trusted_keys, and keeps this one there only if it also runs the project's models.
RELEASE_KEY = (
    Path(os.environ.get("GATE_MODELS_DIR", Path(__file__).resolve().parents[1] / "models"))
    / "keys" / "release-2026.pub.pem"
)


class ModelsConfig(Strict):
    root: Path | None = Field(default=None, description="Model store folder; default: the project's models/.")
    trusted_keys: list[Path] = Field(
        default_factory=lambda: [RELEASE_KEY],
        description="Public keys (Ed25519 PEM) whose model signatures this box accepts "
        "(`appliance models keygen` writes a pair; `appliance models sign` signs a package). Default: the "
        "project's release key, which signs the models committed under models/.",
    )
    allow_unsigned: bool = Field(
        default=False,
        description="Accept model packages without a signature.json. Development only: production boxes sign "
        "their models. A package that has a signature must verify even when this is true.",
    )
    providers: list[ExecutionProvider] = Field(
        default_factory=lambda: list[ExecutionProvider](["CPUExecutionProvider"]), min_length=1,
        description="ONNX Runtime execution providers, in order of preference (CUDA, TensorRT and OpenVINO need "
        "the matching onnxruntime build). The provider each model really runs on is logged and shown on the "
        "status page.",
    )
    require_accelerator: bool = Field(
        default=False,
        description="Refuse to load a model when the first provider in `providers` is not the one ONNX Runtime "
        "really runs it on (no silent fall-back to the CPU); false: fall back with a WARNING.",
    )
    regression_margin: float = Field(
        default=0.01, ge=0, le=1,
        description="Activation gate: when the candidate's and the active model's manifests carry metrics on the "
        "same eval_set, no shared quality metric may be worse by more than this (absolute); `appliance models "
        "activate --force --reason TEXT` overrides, and the override is recorded.",
    )
    watch_interval_s: float = Field(
        default=1.0, gt=0, le=60,
        description="How often the running appliance looks for a newly activated model (or shadow) in the registry.",
    )
    shadow_every: int = Field(
        default=10, ge=1, description="A shadow candidate sees one in this many of its task's live model calls."
    )
    shadow_queue: int = Field(
        default=4, ge=1, le=64,
        description="Live inputs waiting for the shadow candidate; when full, samples are dropped (and counted), "
        "never waited for.",
    )


class TlsConfig(Strict):
    ca_file: Path | None = Field(default=None, description="CA bundle that signed the server's certificate.")
    cert_file: Path | None = Field(default=None, description="Client certificate (mutual TLS).")
    key_file: Path | None = Field(default=None, description="Private key of the client certificate.")


class _SinkBase(Strict):
    name: str = Field(
        description="Sink name, unique on this box; its delivery cursor is kept under this name "
        "(renaming a sink starts a new cursor).",
        pattern=r"^[a-z0-9_.-]+$",
    )
    batch: int = Field(default=100, ge=1, le=10000, description="Most events sent per round before waiting for acks.")
    ack_timeout_s: float = Field(default=10.0, gt=0, description="How long to wait for the acknowledgement of a batch.")
    backoff_initial_s: float = Field(default=0.5, gt=0, description="First retry delay after a failure.")
    backoff_max_s: float = Field(default=60.0, gt=0, description="Longest retry delay (exponential, with jitter).")


class MqttSinkConfig(_SinkBase):
    type: Literal["mqtt"]
    host: str = Field(description="Broker host name or address.")
    port: int = Field(default=8883, ge=1, le=65535, description="Broker port (1883 plain, 8883 TLS).")
    tls: TlsConfig | None = Field(default=None, description="TLS settings; absent: plain TCP (loopback/tests only).")
    username: str | None = Field(default=None, description="MQTT user name.")
    password_file: Path | None = Field(default=None, description="File holding the MQTT password.")
    client_id: str | None = Field(
        default=None, description="MQTT client id (persistent session key); default: smartgate-<gate>-<box>-<sink>."
    )
    topic: str = Field(
        default="smartgate/{gate}/{lane}/verdicts", description="Topic template for events ({gate}, {lane}, {box})."
    )
    status_topic: str = Field(
        default="smartgate/{gate}/{lane}/status",
        description="Retained online/offline status topic (the broker publishes offline as the last will).",
    )
    keepalive_s: int = Field(default=30, ge=5, le=3600, description="MQTT keep-alive interval.")


class HttpSinkConfig(_SinkBase):
    type: Literal["http"]
    url: str = Field(
        description="https:// URL that receives each event as a POST (2xx or 409 = acknowledged); "
        "plain http:// only to a loopback host."
    )
    tls: TlsConfig | None = Field(
        default=None, description="CA that signed the server's certificate (default: system CAs) and client "
        "certificate/key for mutual TLS."
    )
    hmac_key_file: Path | None = Field(
        default=None, description="File holding the HMAC-SHA256 key (surrounding whitespace stripped) for the "
        "X-Smartgate-Signature header; absent: no HMAC header."
    )
    ack_timeout_s: float = Field(
        default=10.0, gt=0, description="How long each POST may take (connect, TLS handshake, response) before "
        "it counts as not acknowledged."
    )
    headers: dict[str, str] = Field(
        default_factory=dict, description="Extra request headers, e.g. Authorization: Bearer <token> (a token "
        "here makes this file a secret: mode 0600). Content-Type, Idempotency-Key and X-Smartgate-Signature "
        "are set by the sink."
    )

    @model_validator(mode="after")
    def _check_url_and_headers(self) -> HttpSinkConfig:
        from appliance.publish.http_sink import reserved_headers, url_problem

        problem = url_problem(self.url)
        if problem:
            raise ValueError(problem)
        bad = reserved_headers(self.headers)
        if bad:
            raise ValueError(f"headers {bad} are set by the sink itself and cannot be configured")
        return self


SinkConfig = Annotated[MqttSinkConfig | HttpSinkConfig, Field(discriminator="type")]


class PublishConfig(Strict):
    signing_key: Path | None = Field(
        default=None, description="Ed25519 private key (PEM) that signs every event; absent: events are unsigned."
    )
    sinks: list[SinkConfig] = Field(default_factory=list, description="Where verdict events go; default: nowhere.")
    backlog_alarm_s: float = Field(
        default=900.0, gt=0,
        description="Events never expire; when a sink's oldest undelivered event is older than this, the sink "
        "is in alarm (status API, `appliance outbox status`, a WARNING in the log).",
    )

    @model_validator(mode="after")
    def _unique_sinks(self) -> PublishConfig:
        names = [s.name for s in self.sinks]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"sink names must be unique, repeated: {dupes}")
        return self


class InboundConfig(Strict):
    host: str = Field(description="Broker host name or address that carries central's manifests and watchlists.")
    port: int = Field(default=8883, ge=1, le=65535, description="Broker port (1883 plain, 8883 TLS).")
    tls: TlsConfig | None = Field(default=None, description="TLS settings; absent: plain TCP (loopback/tests only).")
    username: str | None = Field(default=None, description="MQTT user name.")
    password_file: Path | None = Field(default=None, description="File holding the MQTT password.")
    client_id: str | None = Field(
        default=None, description="MQTT client id (persistent session key); default: smartgate-<gate>-<box>-inbound."
    )
    manifest_topic: str = Field(
        default="smartgate/{gate}/manifests", description="Topic of pre-arrival manifest events ({gate}, {box})."
    )
    watchlist_topic: str = Field(
        default="smartgate/{gate}/watchlists", description="Topic of watchlist events ({gate}, {box})."
    )
    trusted_keys: list[Path] = Field(
        default_factory=list,
        description="Central's Ed25519 public keys (PEM); when set, every inbound message must carry a valid "
        "signature by one of them. Empty: unsigned messages are accepted (development only, logged once).",
    )
    max_payload_bytes: int = Field(
        default=262144, ge=1024, le=16 * 1024 * 1024, description="Larger messages are dead-lettered unread."
    )
    keepalive_s: int = Field(default=30, ge=5, le=3600, description="MQTT keep-alive interval.")


class HealthConfig(Strict):
    lane_stall_s: float = Field(
        default=60.0, gt=0,
        description="A lane whose loop got no frame through its pipeline for this long is stalled: the systemd "
        "watchdog pings stop (the service is restarted) and /readyz fails. Must exceed the longest normal gap "
        "between two frames of a lane.",
    )
    max_outbox_backlog: int = Field(
        default=10000, ge=1, description="/readyz fails when a sink has more undelivered events than this."
    )
    min_free_disk_mb: float = Field(
        default=500.0, ge=0, description="/readyz fails when the store's file system has less free space (MB)."
    )
    metrics_token_file: Path | None = Field(
        default=None,
        description="File holding a bearer token that GET /metrics must present (Prometheus: authorization."
        "credentials_file); absent: /metrics answers whoever reaches the web port (127.0.0.1 by default).",
    )


class AppConfig(Strict):
    site: SiteConfig
    lanes: list[LaneConfig] = Field(min_length=1)
    analyzers: AnalyzersConfig = Field(default_factory=AnalyzersConfig)
    verdicts: VerdictConfig = Field(default_factory=VerdictConfig)
    manifest: ManifestConfig = Field(default_factory=ManifestConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    retention: RetentionConfig = Field(default_factory=RetentionConfig, description="Disk budgets, legal holds "
                                       "and eviction of evidence (docs/RETENTION.md).")
    web: WebConfig = Field(default_factory=WebConfig)
    models: ModelsConfig = Field(default_factory=ModelsConfig)
    publish: PublishConfig = Field(default_factory=PublishConfig)
    faces: FacesConfig = Field(default_factory=FacesConfig)
    xray: XrayConfig | None = Field(default=None, description="The lane's X-ray scanner; absent: none.")
    inbound: InboundConfig | None = Field(
        default=None, description="Subscription to central's manifests and watchlists; absent: none."
    )
    health: HealthConfig = Field(
        default_factory=HealthConfig, description="Readiness (/readyz), watchdog and /metrics settings."
    )

    @model_validator(mode="after")
    def _unique_lanes(self) -> AppConfig:
        ids = [lane.id for lane in self.lanes]
        if len(set(ids)) != len(ids):
            raise ValueError(f"lane ids must be unique, got {ids}")
        return self


def _line_of(node: yaml.Node | None, loc: tuple[int | str, ...]) -> int | None:
    """1-based line of the YAML node at ``loc`` (the deepest existing parent if not found)."""
    if node is None:
        return None
    line = node.start_mark.line + 1
    for key in loc:
        child: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                if k.value == key:
                    child = v
                    line = k.start_mark.line + 1
                    break
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            child = node.value[key]
            line = child.start_mark.line + 1
        if child is None:
            break
        node = child
    return line


def _resolve_paths(cfg: AppConfig, base: Path) -> AppConfig:
    """Relative paths in the config are relative to the config file's folder."""

    def fix(p: Path | None) -> Path | None:
        if p is None or p.is_absolute():
            return p
        return base / p

    data: dict[str, Any] = cfg.model_dump()
    for lane in data["lanes"]:
        for src in lane["sources"]:
            if "path" in src:
                src["path"] = fix(src["path"])
    data["manifest"]["file"] = fix(data["manifest"]["file"]) if data["manifest"]["file"] else None
    data["storage"]["path"] = fix(data["storage"]["path"])
    data["storage"]["evidence_dir"] = fix(data["storage"]["evidence_dir"])
    data["faces"]["store_path"] = fix(data["faces"]["store_path"])
    data["faces"]["key_file"] = fix(data["faces"]["key_file"])
    data["faces"]["document_reader_dir"] = fix(data["faces"]["document_reader_dir"])
    if data["models"]["root"]:
        data["models"]["root"] = fix(data["models"]["root"])
    if data["xray"]:
        data["xray"]["drop_dir"] = fix(data["xray"]["drop_dir"])
        data["xray"]["calibration_dir"] = fix(data["xray"]["calibration_dir"])
        data["xray"]["upload_token_file"] = fix(data["xray"]["upload_token_file"])
    data["models"]["trusted_keys"] = [fix(k) for k in data["models"]["trusted_keys"]]
    data["health"]["metrics_token_file"] = fix(data["health"]["metrics_token_file"])
    data["publish"]["signing_key"] = fix(data["publish"]["signing_key"])
    for sink in data["publish"]["sinks"]:
        for key in ("password_file", "hmac_key_file"):
            if sink.get(key):
                sink[key] = fix(sink[key])
        if sink.get("tls"):
            for key in ("ca_file", "cert_file", "key_file"):
                sink["tls"][key] = fix(sink["tls"][key])
    if data["inbound"]:
        inbound = data["inbound"]
        inbound["password_file"] = fix(inbound["password_file"])
        inbound["trusted_keys"] = [fix(k) for k in inbound["trusted_keys"]]
        if inbound["tls"]:
            for key in ("ca_file", "cert_file", "key_file"):
                inbound["tls"][key] = fix(inbound["tls"][key])
    return AppConfig.model_validate(data)


def parse_config(text: str, where: str = "<config>", base: Path | None = None) -> AppConfig:
    """Validate YAML text; raise ConfigError listing every problem as ``where:LINE: field: message``."""
    try:
        node = yaml.compose(text)
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{where}{line}: not valid YAML: {getattr(exc, 'problem', exc)}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: the config must be a YAML mapping with site: and lanes:")
    try:
        cfg = AppConfig.model_validate(raw)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p in _UNION_TAGS))
            line_no = _line_of(node, loc)
            field = ".".join(str(p) for p in loc) or "(top level)"
            msg = err["msg"]
            if err["type"] == "extra_forbidden":
                msg = "unknown key (typo? see the schema with `appliance check-config --schema`)"
            lines.append(f"{where}:{line_no}: {field}: {msg}")
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(lines)) from exc
    return _resolve_paths(cfg, base) if base is not None else cfg


_UNION_TAGS = {"video_file", "stream", "usb", "folder", "mqtt", "http", "modbus", "gpio"}  # modbus, gpio: actuators


def load_config(path: Path) -> AppConfig:
    """Read and validate the config file at ``path``."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: config file not found") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc}") from exc
    return parse_config(text, where=str(path), base=path.resolve().parent)


def verify_paths(cfg: AppConfig, where: str = "<config>") -> None:
    """Files the config names must exist before anything starts (a half-started lane helps nobody).

    Video files and the manifest must exist; scanner drop folders must exist (the scanner writes
    into them, the appliance does not invent them). Raises ConfigError listing every problem.
    """
    problems = []
    for i, lane in enumerate(cfg.lanes):
        for j, src in enumerate(lane.sources):
            field = f"lanes.{i}.sources.{j}.path"
            if isinstance(src, VideoFileSourceConfig) and not src.path.is_file():
                problems.append(f"{where}: {field}: video file {src.path} not found")
            if isinstance(src, FolderSourceConfig) and not src.path.is_dir():
                problems.append(f"{where}: {field}: scanner folder {src.path} not found (create it for the scanner)")
    if cfg.manifest.file is not None and not cfg.manifest.file.is_file():
        problems.append(f"{where}: manifest.file: {cfg.manifest.file} not found")
    for k, key in enumerate(cfg.models.trusted_keys):
        if not key.is_file():
            problems.append(f"{where}: models.trusted_keys.{k}: public key {key} not found")
    if cfg.xray is not None and not cfg.xray.drop_dir.is_dir():
        problems.append(f"{where}: xray.drop_dir: X-ray drop folder {cfg.xray.drop_dir} not found (create it for "
                        "the scanner)")
    if problems:
        raise ConfigError("configuration names missing files:\n  " + "\n  ".join(problems))
