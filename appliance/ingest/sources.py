"""Frame sources: video files, live streams (RTSP/HTTP/USB) and scanner folder drops.

Every source follows the small :class:`Source` protocol: ``open()``, ``read() -> Frame | None``,
``close()``, ``healthy`` and ``status()``. ``read()`` returns ``None`` only when there will be no
more frames: a finite source (video file, folder without ``follow``) is drained, or the source was
closed. Live sources never raise out of ``read()``: they reconnect with exponential backoff.

``close()`` may be called from another thread while ``read()`` is blocked (that is how a
:class:`~appliance.ingest.runner.SourceRunner` stops one); the blocked ``read()`` then returns
``None`` within about one read timeout. ``read()`` opens the source itself when ``open()`` was not
called, so ``open()`` is only needed to fail early.

Sources are chosen by a ``type`` string through :func:`open_source` ("video_file", "stream",
"usb", "folder"), one class per kind, like the detector plugins of Frigate.
"""

from __future__ import annotations

import datetime as _dt
import fnmatch
import inspect
import logging
import math
import os
import random
import re
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, Self, runtime_checkable
from urllib.parse import urlsplit, urlunsplit

import cv2
import numpy as np

from appliance.errors import SourceError
from appliance.ingest.frames import Frame

__all__ = [
    "SOURCE_TYPES",
    "FolderSource",
    "Source",
    "StreamSource",
    "VideoFileSource",
    "open_source",
    "redact_url",
]

logger = logging.getLogger(__name__)


@runtime_checkable
class Source(Protocol):
    """What the runner and the replay merge need from any frame source."""

    @property
    def id(self) -> str:
        """Source id from the config (e.g. ``"front"``); copied into every frame."""
        ...

    @property
    def live(self) -> bool:
        """True for sources that never end by themselves (streams, followed folders)."""
        ...

    def open(self) -> None:
        """Open the source; raise :class:`SourceError` when it can never work (bad path, no fps)."""
        ...

    def read(self) -> Frame | None:
        """Next frame, or None when there will be no more (finite source drained, or closed)."""
        ...

    def close(self) -> None:
        """Release the source; safe to call twice and from another thread."""
        ...

    @property
    def healthy(self) -> bool:
        """False when the source is failing (disconnected, stale, could not be opened)."""
        ...

    def status(self) -> dict[str, Any]:
        """A JSON-serialisable snapshot for the health page and logs."""
        ...


class _SourceBase:
    """Shared plumbing: id check, closed flag, context manager."""

    kind = "source"

    def __init__(self, id: str) -> None:
        if not isinstance(id, str) or not id.strip():
            raise SourceError(f"a {self.kind} source needs a non-empty id, got {id!r}")
        self._id = id
        self._closed = threading.Event()
        self._opened = False

    @property
    def id(self) -> str:
        return self._id

    @property
    def live(self) -> bool:
        return False

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def open(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(id={self._id!r})"


def _fmt_ts(ts: float) -> str:
    return _dt.datetime.fromtimestamp(ts, tz=_dt.UTC).isoformat(timespec="milliseconds")


# --------------------------------------------------------------------------------------------
# Video files
# --------------------------------------------------------------------------------------------

_MAX_SANE_FPS = 1000.0
# When the container does not declare a frame count, this many failed grabs in a row end the file.
_FAILURES_WHEN_COUNT_UNKNOWN = 25


class VideoFileSource(_SourceBase):
    """Frames of a recorded video; frame ``i`` is stamped ``start_time + i / fps``.

    ``fps`` comes from the container unless given here (some containers carry none). When
    ``start_time`` is None the file's mtime minus the video's duration is used (the recording
    ended when the file was last written); pass ``start_time`` for deterministic replay.

    Damaged files: a frame that fails to decode is skipped with a WARNING naming the file and the
    frame index, and counted (``status()["skipped_frames"]``); the next good frame keeps its own
    index and timestamp (taken from its presentation time), so timestamps never slide. A file that
    ends before the frame count its header declares (a truncated recording) logs a WARNING and
    ends. A file that cannot be opened at all raises :class:`SourceError`.

    ``realtime=True`` paces ``read()`` to the video clock (frame ``i`` is returned ``i / fps``
    seconds after the first), as a camera would deliver it.
    """

    kind = "video_file"

    def __init__(
        self,
        id: str,
        path: str | os.PathLike[str],
        start_time: float | None = None,
        realtime: bool = False,
        fps: float | None = None,
        max_consecutive_failures: int = 250,
    ) -> None:
        super().__init__(id)
        self.path = Path(path)
        self._start_time_arg = start_time
        self.realtime = realtime
        self._fps_arg = fps
        self._max_failures = max(1, int(max_consecutive_failures))
        self._cap: cv2.VideoCapture | None = None
        self._cap_lock = threading.Lock()
        self.fps = 0.0
        self.start_time = 0.0
        self.frame_count: int | None = None
        self.width = 0
        self.height = 0
        self._next_index = 0  # index the next decoded frame should have
        self._frames = 0
        self._skipped = 0
        self._failed_grabs = 0
        self._ended = False
        self._missing_at_end = 0
        self._open_error: str | None = None
        self._pace_t0: float | None = None  # monotonic time frame 0 is due (realtime)

    # -- lifecycle ------------------------------------------------------------------------
    def open(self) -> None:
        if self._opened:
            return
        if self._closed.is_set():
            raise SourceError(f"video source {self.id!r}: {self.path} was already closed")
        try:
            self._open()
        except SourceError as exc:
            self._open_error = str(exc)
            raise
        self._opened = True

    def _open(self) -> None:
        path = self.path
        if not path.exists():
            raise SourceError(f"video source {self.id!r}: {path} does not exist; check the path in the source config")
        if not path.is_file():
            raise SourceError(f"video source {self.id!r}: {path} is not a regular file")
        size = path.stat().st_size
        if size == 0:
            raise SourceError(f"video source {self.id!r}: {path} is empty (0 bytes); the recording was never written")
        cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
        if not cap.isOpened():
            cap.release()
            hint = "it is not a video, uses a codec this OpenCV/FFmpeg build lacks, or is damaged"
            if path.suffix.lower() in (".mp4", ".mov", ".m4v"):
                hint += (
                    "; an MP4/MOV whose recording was cut off has no 'moov' index and cannot be "
                    "opened: remux it (ffmpeg -i in.mp4 -c copy out.mkv after recovery) or record "
                    "to MKV, AVI or fragmented MP4"
                )
            raise SourceError(f"video source {self.id!r}: FFmpeg could not open {path} ({size} bytes): {hint}")
        fps = float(self._fps_arg) if self._fps_arg is not None else float(cap.get(cv2.CAP_PROP_FPS))
        if not math.isfinite(fps) or fps <= 0.0 or fps > _MAX_SANE_FPS:
            cap.release()
            raise SourceError(
                f"video source {self.id!r}: {path} declares no usable frame rate (fps={fps!r}); "
                "frame timestamps need it: set fps in the source config"
            )
        width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        if width <= 0 or height <= 0:
            cap.release()
            raise SourceError(
                f"video source {self.id!r}: {path} has no video stream with a frame size "
                f"({width}x{height}); is it an audio-only or damaged file?"
            )
        count = cap.get(cv2.CAP_PROP_FRAME_COUNT)
        self.frame_count = int(count) if math.isfinite(count) and count > 0 else None
        self.fps = fps
        self.width, self.height = width, height
        if self._start_time_arg is not None:
            self.start_time = float(self._start_time_arg)
        else:
            duration = (self.frame_count or 0) / fps
            self.start_time = path.stat().st_mtime - duration
            logger.info(
                "video source %s: no start_time given for %s; using file mtime minus duration (%s)",
                self.id,
                path,
                _fmt_ts(self.start_time),
            )
        with self._cap_lock:
            self._cap = cap
        logger.info(
            "video source %s: opened %s (%dx%d, %.3f fps, %s frames%s)",
            self.id,
            path,
            width,
            height,
            fps,
            self.frame_count if self.frame_count is not None else "unknown",
            ", realtime" if self.realtime else "",
        )

    def close(self) -> None:
        self._closed.set()
        # A read in another thread holds the lock for one grab (milliseconds for a file).
        with self._cap_lock:
            if self._cap is not None:
                self._cap.release()
                self._cap = None

    # -- reading --------------------------------------------------------------------------
    def read(self) -> Frame | None:
        if self._closed.is_set() or self._ended:
            return None
        if not self._opened:
            self.open()
        failures = 0
        pos_msec = 0.0
        while True:
            with self._cap_lock:
                cap = self._cap
                if cap is None or self._closed.is_set():
                    return None
                image: np.ndarray | None = None
                ok = cap.grab()
                if ok:
                    ok, image = cap.retrieve()
                    pos_msec = float(cap.get(cv2.CAP_PROP_POS_MSEC))
            if not ok or image is None or image.size == 0:
                failures += 1
                self._failed_grabs += 1
                if failures > self._allowed_failures():
                    self._finish()
                    return None
                continue
            index = self._index_for(pos_msec, failures)
            if index > self._next_index:
                skipped = index - self._next_index
                self._skipped += skipped
                logger.warning(
                    "video source %s: %s frame %d%s could not be decoded and %s skipped",
                    self.id,
                    self.path,
                    self._next_index,
                    f"..{index - 1}" if skipped > 1 else "",
                    "were" if skipped > 1 else "was",
                )
            self._next_index = index + 1
            self._frames += 1
            if self.realtime and not self._pace(index):
                return None
            return Frame(self.id, self.start_time + index / self.fps, index, image)

    def _allowed_failures(self) -> int:
        """How many failed grabs in a row may still be followed by good frames."""
        if self.frame_count is None:
            return min(self._max_failures, _FAILURES_WHEN_COUNT_UNKNOWN)
        return min(self._max_failures, max(0, self.frame_count - self._next_index))

    def _index_for(self, pos_msec: float, failures: int) -> int:
        """Index of the frame just decoded.

        Without failures it is the next one in sequence. After failed grabs the frame's
        presentation time says how many frames were lost; when it is unusable we assume one frame
        per failed grab.
        """
        expected = self._next_index
        if failures == 0:
            return expected
        if math.isfinite(pos_msec) and pos_msec > 0.0:
            pts_index = round(pos_msec * self.fps / 1000.0)
            if pts_index >= expected:
                return int(pts_index)
        return expected + failures

    def _finish(self) -> None:
        self._ended = True
        if self.frame_count is not None and self._next_index < self.frame_count - 1:
            self._missing_at_end = self.frame_count - self._next_index
            logger.warning(
                "video source %s: %s ended at frame %d but its header declares %d frames; "
                "the file is probably truncated (%d frames missing)",
                self.id,
                self.path,
                self._next_index,
                self.frame_count,
                self._missing_at_end,
            )
        else:
            logger.info("video source %s: end of %s after %d frames", self.id, self.path, self._frames)
        with self._cap_lock:
            if self._cap is not None:
                self._cap.release()
                self._cap = None

    def _pace(self, index: int) -> bool:
        now = time.monotonic()
        if self._pace_t0 is None:
            self._pace_t0 = now - index / self.fps
        delay = self._pace_t0 + index / self.fps - now
        if delay > 0:
            return not self._closed.wait(delay)
        return not self._closed.is_set()

    # -- health ---------------------------------------------------------------------------
    @property
    def healthy(self) -> bool:
        return self._open_error is None

    def status(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.kind,
            "path": str(self.path),
            "open": self._cap is not None,
            "ended": self._ended,
            "error": self._open_error,
            "fps": self.fps,
            "frame_count": self.frame_count,
            "frames": self._frames,
            "next_index": self._next_index,
            "skipped_frames": self._skipped,
            "failed_grabs": self._failed_grabs,
            "missing_at_end": self._missing_at_end,
        }


# --------------------------------------------------------------------------------------------
# Live streams: RTSP / HTTP (FFmpeg) and USB cameras
# --------------------------------------------------------------------------------------------


def redact_url(url: str) -> str:
    """The URL with any password replaced by ``***`` (camera URLs often carry credentials)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable url>"
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{user}:***@{host}"
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


_rtsp_env_lock = threading.Lock()


class StreamSource(_SourceBase):
    """A live camera: an RTSP/HTTP URL read through OpenCV's FFmpeg backend, or a USB device.

    ``url_or_device`` is a URL (``rtsp://``, ``http://``, ...), a device index (``0``) or a device
    path (``/dev/video0``). Frames are stamped with the wall clock when they arrive.

    When the stream drops (read fails or times out) the source releases it and reconnects with
    exponential backoff (``backoff_initial_s`` doubling up to ``backoff_max_s``, each delay
    shortened by a random share of up to ``jitter`` so that many cameras do not reconnect in
    lock-step). ``read()`` never raises for stream trouble; it blocks until a frame arrives or the
    source is closed. ``open()`` does not raise either when the camera is merely unreachable
    (it logs and the first ``read()`` keeps trying), unless ``require_on_open=True``.

    FFmpeg open/read timeouts (``open_timeout_s``/``read_timeout_s``) bound every blocking call,
    so ``close()`` from another thread takes effect within about one read timeout. For RTSP the
    transport defaults to TCP (``rtsp_transport``) through ``OPENCV_FFMPEG_CAPTURE_OPTIONS``
    unless the operator set that variable; it is process-wide.
    """

    kind = "stream"

    def __init__(
        self,
        id: str,
        url_or_device: str | int,
        open_timeout_s: float = 10.0,
        read_timeout_s: float = 5.0,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 30.0,
        jitter: float = 0.3,
        stale_after_s: float | None = None,
        require_on_open: bool = False,
        rtsp_transport: str | None = "tcp",
        rng: random.Random | None = None,
    ) -> None:
        super().__init__(id)
        if isinstance(url_or_device, str) and url_or_device.strip().isdigit():
            url_or_device = int(url_or_device.strip())
        if isinstance(url_or_device, bool) or not isinstance(url_or_device, (str, int)):
            raise SourceError(f"stream source {id!r}: url_or_device must be a URL, a device path or an index")
        if isinstance(url_or_device, str) and not url_or_device.strip():
            raise SourceError(f"stream source {id!r}: empty URL")
        if open_timeout_s <= 0 or read_timeout_s <= 0:
            raise SourceError(f"stream source {id!r}: open/read timeouts must be > 0")
        if backoff_initial_s <= 0 or backoff_max_s < backoff_initial_s:
            raise SourceError(
                f"stream source {id!r}: need 0 < backoff_initial_s <= backoff_max_s, got "
                f"{backoff_initial_s} and {backoff_max_s}"
            )
        if not 0.0 <= jitter < 1.0:
            raise SourceError(f"stream source {id!r}: jitter must be in [0, 1), got {jitter}")
        self.target = url_or_device
        self.is_device = isinstance(url_or_device, int) or str(url_or_device).startswith("/dev/")
        self.open_timeout_s = float(open_timeout_s)
        self.read_timeout_s = float(read_timeout_s)
        self.backoff_initial_s = float(backoff_initial_s)
        self.backoff_max_s = float(backoff_max_s)
        self.jitter = float(jitter)
        self.stale_after_s = float(stale_after_s) if stale_after_s is not None else max(5.0, 2.0 * self.read_timeout_s)
        self.require_on_open = require_on_open
        self.rtsp_transport = rtsp_transport
        self._rng = rng or random.Random()
        self._cap: cv2.VideoCapture | None = None
        self._cap_lock = threading.Lock()
        self._connected = False
        self._index = 0
        self._frames = 0
        self._drops = 0
        self._reconnects = 0
        self._connect_attempts = 0
        self._failed_attempts = 0
        self._attempt = 0  # consecutive failed attempts since the last good frame
        self._ever_connected = False
        self._last_frame_mono: float | None = None
        self._next_retry_mono: float | None = None
        self._last_error: str | None = None
        self._last_delay_s = 0.0

    @property
    def live(self) -> bool:
        return True

    @property
    def display_target(self) -> str:
        if isinstance(self.target, int):
            return f"device {self.target}"
        return redact_url(self.target)

    # -- lifecycle ------------------------------------------------------------------------
    def open(self) -> None:
        if self._opened:
            return
        self._opened = True
        if not self._connect() and self.require_on_open:
            raise SourceError(
                f"stream source {self.id!r}: could not open {self.display_target} "
                f"({self._last_error}); check the URL/device, the network and the credentials"
            )

    def close(self) -> None:
        self._closed.set()
        # Do not wait for a read blocked in FFmpeg: the reader releases the capture itself when
        # it sees the closed flag after its read returns (bounded by read_timeout_s).
        if self._cap_lock.acquire(blocking=False):
            try:
                self._release_locked()
            finally:
                self._cap_lock.release()

    def _release_locked(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None
        self._connected = False

    def _new_capture(self) -> cv2.VideoCapture:
        target = self.target
        if isinstance(target, int):
            api = cv2.CAP_V4L2 if sys.platform.startswith("linux") else cv2.CAP_ANY
            return cv2.VideoCapture(target, api)
        if target.startswith("/dev/"):
            return cv2.VideoCapture(target, cv2.CAP_V4L2)
        if self.rtsp_transport and target.lower().startswith("rtsp"):
            with _rtsp_env_lock:
                os.environ.setdefault("OPENCV_FFMPEG_CAPTURE_OPTIONS", f"rtsp_transport;{self.rtsp_transport}")
        params = [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
            int(self.open_timeout_s * 1000),
            cv2.CAP_PROP_READ_TIMEOUT_MSEC,
            int(self.read_timeout_s * 1000),
        ]
        return cv2.VideoCapture(target, cv2.CAP_FFMPEG, params)

    def _connect(self) -> bool:
        """One connection attempt; True when the capture is open."""
        self._connect_attempts += 1
        cap: cv2.VideoCapture | None = None
        try:
            cap = self._new_capture()
            ok = cap.isOpened()
        except cv2.error as exc:  # OpenCV raises for some malformed targets
            ok = False
            self._last_error = f"OpenCV error: {exc}".strip()
        if not ok or cap is None:
            if cap is not None:
                cap.release()
                self._last_error = "could not open (unreachable, refused, timed out or not a video)"
            self._failed_attempts += 1
            logger.warning(
                "stream source %s: cannot open %s (attempt %d): %s",
                self.id,
                self.display_target,
                self._attempt + 1,
                self._last_error,
            )
            return False
        with self._cap_lock:
            if self._closed.is_set():
                cap.release()
                return False
            self._release_locked()
            self._cap = cap
            self._connected = True
        if self._ever_connected:
            self._reconnects += 1
            logger.info(
                "stream source %s: reconnected to %s (reconnect #%d)",
                self.id,
                self.display_target,
                self._reconnects,
            )
        else:
            logger.info("stream source %s: connected to %s", self.id, self.display_target)
        self._ever_connected = True
        self._next_retry_mono = None
        return True

    def backoff_delay(self, attempt: int) -> float:
        """Delay before reconnect attempt ``attempt`` (0-based): exponential, capped, jittered."""
        base = min(self.backoff_max_s, self.backoff_initial_s * (2.0 ** min(attempt, 30)))
        return base * (1.0 - self.jitter * self._rng.random())

    def _wait_before_retry(self) -> bool:
        """Sleep the backoff delay; False when closed meanwhile."""
        delay = self.backoff_delay(self._attempt)
        self._attempt += 1
        self._last_delay_s = delay
        self._next_retry_mono = time.monotonic() + delay
        logger.debug("stream source %s: next connection attempt in %.2f s", self.id, delay)
        return not self._closed.wait(delay)

    # -- reading --------------------------------------------------------------------------
    def read(self) -> Frame | None:
        if not self._opened:
            self.open()
        while not self._closed.is_set():
            if self._cap is None:
                if not self._wait_before_retry():
                    break
                self._connect()
                continue
            error: str | None = None
            with self._cap_lock:
                cap = self._cap
                if cap is None or self._closed.is_set():
                    continue
                try:
                    ok, image = cap.read()
                except cv2.error as exc:
                    ok, image = False, None
                    error = f"OpenCV error while reading: {exc}".strip()
                if not ok or image is None or image.size == 0:
                    self._release_locked()
            if ok and image is not None and image.size > 0:
                now = time.time()
                self._last_frame_mono = time.monotonic()
                self._attempt = 0
                frame = Frame(self.id, now, self._index, image)
                self._index += 1
                self._frames += 1
                return frame
            if self._closed.is_set():
                break  # the read failed because we are shutting down: not a drop
            self._drops += 1
            self._last_error = error or "stream ended or read timed out"
            logger.warning(
                "stream source %s: lost %s after %d frames (drop #%d: %s); reconnecting with backoff",
                self.id,
                self.display_target,
                self._frames,
                self._drops,
                self._last_error,
            )
        # Closed: release here if close() could not (we held the lock then).
        with self._cap_lock:
            self._release_locked()
        return None

    # -- health ---------------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def last_frame_age(self) -> float | None:
        """Seconds since the last frame arrived (None before the first)."""
        if self._last_frame_mono is None:
            return None
        return time.monotonic() - self._last_frame_mono

    @property
    def healthy(self) -> bool:
        age = self.last_frame_age
        return self._connected and age is not None and age <= self.stale_after_s

    def status(self) -> dict[str, Any]:
        age = self.last_frame_age
        retry = self._next_retry_mono
        return {
            "id": self.id,
            "type": "usb" if self.is_device else self.kind,
            "target": self.display_target,
            "connected": self._connected,
            "healthy": self.healthy,
            "last_frame_age_s": None if age is None else round(age, 3),
            "frames": self._frames,
            "drops": self._drops,
            "reconnects": self._reconnects,
            "connect_attempts": self._connect_attempts,
            "failed_attempts": self._failed_attempts,
            "next_retry_in_s": None if retry is None else round(max(0.0, retry - time.monotonic()), 3),
            "last_backoff_s": round(self._last_delay_s, 3),
            "last_error": self._last_error,
        }


# --------------------------------------------------------------------------------------------
# Folder drops (document scanners, X-ray exports)
# --------------------------------------------------------------------------------------------

_EPOCH_MS_PREFIX = re.compile(r"^(\d{12,14})_")
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_JPEG_MAGIC = b"\xff\xd8\xff"
_TAIL_BYTES = 64


def _parse_patterns(pattern: str | Sequence[str]) -> tuple[str, ...]:
    parts = re.split(r"[|,]", pattern) if isinstance(pattern, str) else list(pattern)
    pats = tuple(p.strip().lower() for p in parts if p.strip())
    if not pats:
        raise SourceError(f"folder source: empty file pattern {pattern!r}")
    return pats


def _unique_target(directory: Path, name: str) -> Path:
    target = directory / name
    if not target.exists() and not (directory / f"{name}.reason.txt").exists():
        return target
    stem, suffix = os.path.splitext(name)
    n = 2
    while True:
        candidate = directory / f"{stem}__{n}{suffix}"
        if not candidate.exists() and not (directory / f"{candidate.name}.reason.txt").exists():
            return candidate
        n += 1


class FolderSource(_SourceBase):
    """Images dropped into a folder by a scanner: one frame per file, in file-name order.

    - Files matching ``pattern`` (``"*.png|*.jpg|*.jpeg"``, case-insensitive; hidden files and
      sub-folders are ignored) are taken in name order.
    - ``ts`` is the leading ``<epoch_ms>_`` of the name (12-14 digits) when there is one, else the
      file's mtime.
    - A file is only read once it is complete: not modified for ``settle_s`` seconds and the same
      size and mtime as at the previous look; a PNG/JPEG whose end marker is missing is waited for
      up to ``incomplete_timeout_s`` in follow mode (the writer may be slow), then rejected.
      A file still being written holds back the files named after it, so name order is kept.
    - Files that cannot be read or decoded are moved to ``<path>/rejected/`` with a
      ``<name>.reason.txt`` saying why (nothing is deleted), with a WARNING.
    - Delivered files are moved to ``<path>/done/`` (``move_processed=True``), or left in place
      and remembered by name for the life of this source (``move_processed=False``).
    - ``follow=False``: ``read()`` returns None once the folder is drained (offline replay);
      ``follow=True``: it polls every ``poll_interval_s`` until closed.

    A file is moved to ``done/`` when its frame is returned, i.e. before the caller has
    processed it; a crash in between leaves it in ``done/`` unprocessed, never lost.
    """

    kind = "folder"

    def __init__(
        self,
        id: str,
        path: str | os.PathLike[str],
        pattern: str | Sequence[str] = "*.png|*.jpg|*.jpeg",
        follow: bool = False,
        move_processed: bool = True,
        poll_interval_s: float = 0.5,
        settle_s: float = 1.0,
        incomplete_timeout_s: float = 30.0,
        done_dir: str = "done",
        rejected_dir: str = "rejected",
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(id)
        self.path = Path(path)
        self.patterns = _parse_patterns(pattern)
        self.follow = follow
        self.move_processed = move_processed
        self.poll_interval_s = max(0.01, float(poll_interval_s))
        self.settle_s = max(0.0, float(settle_s))
        self.incomplete_timeout_s = max(0.0, float(incomplete_timeout_s))
        self.done_path = self.path / done_dir
        self.rejected_path = self.path / rejected_dir
        self._clock = clock
        self._ready: deque[str] = deque()
        self._waiting = 0  # files seen but not yet complete at the last scan
        self._observed: dict[str, tuple[tuple[int, int], float]] = {}  # (size, mtime_ns), since
        self._first_seen: dict[str, float] = {}
        self._seen: set[str] = set()
        self._index = 0
        self._delivered = 0
        self._rejected = 0
        self._move_failures = 0
        self._last_scan: float | None = None
        self._error: str | None = None

    @property
    def live(self) -> bool:
        return self.follow

    # -- lifecycle ------------------------------------------------------------------------
    def open(self) -> None:
        if self._opened:
            return
        if not self.path.is_dir():
            self._error = f"{self.path} is not a directory"
            raise SourceError(
                f"folder source {self.id!r}: {self.path} does not exist or is not a directory; "
                "create it or fix the path in the source config"
            )
        if not os.access(self.path, os.R_OK | os.X_OK):
            self._error = f"{self.path} is not readable"
            raise SourceError(f"folder source {self.id!r}: no permission to list {self.path}")
        if self.move_processed and not os.access(self.path, os.W_OK):
            logger.warning(
                "folder source %s: %s is not writable; processed files cannot be moved to %s "
                "(they will be remembered by name instead)",
                self.id,
                self.path,
                self.done_path.name,
            )
        self._opened = True
        logger.info(
            "folder source %s: watching %s for %s (%s)",
            self.id,
            self.path,
            "|".join(self.patterns),
            "follow" if self.follow else "until drained",
        )

    def close(self) -> None:
        self._closed.set()

    # -- scanning -------------------------------------------------------------------------
    def _matches(self, name: str) -> bool:
        if name.startswith(".") or name.endswith(".reason.txt"):
            return False
        lname = name.lower()
        return any(fnmatch.fnmatchcase(lname, pat) for pat in self.patterns)

    def _scan(self) -> None:
        """Queue complete files in name order; count the ones still being written."""
        now = self._clock()
        self._last_scan = now
        try:
            with os.scandir(self.path) as it:
                entries = [e for e in it if self._matches(e.name) and e.name not in self._seen]
        except OSError as exc:
            self._error = f"cannot list {self.path}: {exc}"
            logger.warning("folder source %s: cannot list %s: %s", self.id, self.path, exc)
            self._waiting = 0
            return
        self._error = None
        waiting = 0
        stalled = 0
        current: set[str] = set()
        for entry in sorted(entries, key=lambda e: e.name):
            name = entry.name
            current.add(name)
            if name in self._ready:
                continue
            try:
                if not entry.is_file(follow_symlinks=True):
                    continue
                st = entry.stat(follow_symlinks=True)
            except FileNotFoundError:
                continue
            except OSError as exc:
                if waiting:
                    continue
                self._reject(Path(entry.path), f"could not stat the file: {exc}")
                continue
            verdict = self._readiness(name, st.st_size, st.st_mtime_ns, st.st_mtime, now)
            if verdict is None:
                if waiting == 0:
                    self._ready.append(name)
            elif verdict == "wait":
                # A file still changing holds back the ones named after it (name order), but
                # not for longer than incomplete_timeout_s: a writer that never finishes must not
                # stall the whole drop.
                if now - self._first_seen.get(name, now) < self.incomplete_timeout_s:
                    waiting += 1
                else:
                    stalled += 1
            else:
                if waiting == 0:
                    self._reject(self.path / name, verdict)
                else:
                    waiting += 1
        # Forget bookkeeping of files that vanished (moved away by someone else).
        for name in list(self._observed):
            if name not in current:
                self._observed.pop(name, None)
                self._first_seen.pop(name, None)
        self._waiting = waiting + stalled

    def _readiness(self, name: str, size: int, mtime_ns: int, mtime: float, now: float) -> str | None:
        """None when the file can be read now, "wait", or a rejection reason."""
        key = (size, mtime_ns)
        previous = self._observed.get(name)
        first_seen = self._first_seen.setdefault(name, now)
        if previous is not None and previous[0] != key:
            self._observed[name] = (key, now)
            return "wait"  # changed since the last look: still being written
        if previous is None:
            self._observed[name] = (key, now)
        # Quiet: not modified for settle_s by its mtime, or (when the writer's clock is off and the
        # mtime lies in the future) seen unchanged for settle_s by us.
        unchanged_for = now - previous[1] if previous is not None else 0.0
        if now - mtime < self.settle_s and unchanged_for < self.settle_s:
            return "wait"
        give_up = not self.follow or now - first_seen >= self.incomplete_timeout_s
        if size == 0:
            return "the file is empty (0 bytes)" if give_up else "wait"
        problem = self._trailer_problem(self.path / name, size)
        if problem is not None:
            return problem if give_up else "wait"
        return None

    @staticmethod
    def _trailer_problem(path: Path, size: int) -> str | None:
        """A PNG/JPEG whose end marker is missing was cut off (or is still being written)."""
        try:
            with path.open("rb") as fh:
                head = fh.read(8)
                fh.seek(max(0, size - _TAIL_BYTES))
                tail = fh.read(_TAIL_BYTES)
        except OSError:
            return None  # reported with the right reason when it is read
        if head.startswith(_PNG_MAGIC) and b"IEND" not in tail:
            return f"truncated PNG: no IEND chunk at the end of the file ({size} bytes)"
        if head.startswith(_JPEG_MAGIC) and b"\xff\xd9" not in tail:
            return f"truncated JPEG: no end-of-image marker (FFD9) at the end of the file ({size} bytes)"
        return None

    # -- reading --------------------------------------------------------------------------
    def read(self) -> Frame | None:
        if not self._opened:
            self.open()
        while not self._closed.is_set():
            if not self._ready:
                self._scan()
            while self._ready and not self._closed.is_set():
                name = self._ready.popleft()
                frame = self._load(name)
                if frame is not None:
                    return frame
            if self._ready:
                continue
            if not self.follow and self._waiting == 0:
                return None
            self._closed.wait(self.poll_interval_s)
        return None

    def _load(self, name: str) -> Frame | None:
        path = self.path / name
        try:
            st = path.stat()
            data = path.read_bytes()
        except FileNotFoundError:
            logger.info("folder source %s: %s vanished before it was read", self.id, path)
            self._observed.pop(name, None)
            return None
        except OSError as exc:
            self._reject(path, f"the file could not be read: {exc}")
            return None
        image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR) if data else None
        if image is None or image.size == 0:
            head = data[:8].hex(" ") if data else "(empty)"
            self._reject(
                path,
                f"OpenCV could not decode it as an image ({len(data)} bytes, first bytes {head}); "
                "expected a PNG or JPEG",
            )
            return None
        match = _EPOCH_MS_PREFIX.match(name)
        ts = int(match.group(1)) / 1000.0 if match else st.st_mtime
        frame = Frame(self.id, ts, self._index, image, name=name)
        self._index += 1
        self._delivered += 1
        self._finish(path)
        return frame

    def _finish(self, path: Path) -> None:
        name = path.name
        self._observed.pop(name, None)
        self._first_seen.pop(name, None)
        if not self.move_processed:
            self._seen.add(name)
            return
        try:
            self.done_path.mkdir(exist_ok=True)
            path.rename(_unique_target(self.done_path, name))
        except OSError as exc:
            self._move_failures += 1
            self._seen.add(name)
            logger.warning(
                "folder source %s: could not move %s to %s (%s); remembering it by name instead",
                self.id,
                path,
                self.done_path,
                exc,
            )

    def _reject(self, path: Path, reason: str) -> None:
        name = path.name
        self._rejected += 1
        self._observed.pop(name, None)
        self._first_seen.pop(name, None)
        logger.warning("folder source %s: rejected %s: %s", self.id, path, reason)
        try:
            size: int | str = path.stat().st_size
        except OSError:
            size = "unknown"
        try:
            self.rejected_path.mkdir(exist_ok=True)
            target = _unique_target(self.rejected_path, name)
            path.rename(target)
            note = (
                f"file: {name}\n"
                f"moved_to: {target.name}\n"
                f"source: {self.id}\n"
                f"rejected_at: {_fmt_ts(time.time())}\n"
                f"size_bytes: {size}\n"
                f"reason: {reason}\n"
            )
            (self.rejected_path / f"{target.name}.reason.txt").write_text(note, encoding="utf-8")
        except OSError as exc:
            self._move_failures += 1
            self._seen.add(name)
            logger.warning(
                "folder source %s: could not move rejected %s to %s (%s); it stays in place and is skipped",
                self.id,
                path,
                self.rejected_path,
                exc,
            )

    # -- health ---------------------------------------------------------------------------
    @property
    def healthy(self) -> bool:
        return self._error is None

    def status(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.kind,
            "path": str(self.path),
            "follow": self.follow,
            "delivered": self._delivered,
            "rejected": self._rejected,
            "waiting": self._waiting,
            "queued": len(self._ready),
            "move_failures": self._move_failures,
            "last_scan": None if self._last_scan is None else _fmt_ts(self._last_scan),
            "error": self._error,
        }


# --------------------------------------------------------------------------------------------
# Factory
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _SourceType:
    cls: type[VideoFileSource] | type[StreamSource] | type[FolderSource]
    aliases: dict[str, str]  # config parameter name -> constructor parameter name


_TYPES: dict[str, _SourceType] = {
    "video_file": _SourceType(VideoFileSource, {}),
    "stream": _SourceType(StreamSource, {"url": "url_or_device"}),
    "usb": _SourceType(StreamSource, {"device": "url_or_device"}),
    "folder": _SourceType(FolderSource, {}),
}
# Other spellings of the same types (the simulator's lane.yaml writes "video" and "image_folder").
_TYPE_ALIASES = {"video": "video_file", "image_folder": "folder", "rtsp": "stream", "http": "stream"}

#: Every ``type`` string :func:`open_source` accepts, mapped to the class it builds.
SOURCE_TYPES: dict[str, type[VideoFileSource] | type[StreamSource] | type[FolderSource]] = {
    **{name: t.cls for name, t in _TYPES.items()},
    **{alias: _TYPES[name].cls for alias, name in _TYPE_ALIASES.items()},
}


def open_source(kind: str, **params: Any) -> Source:
    """Build the source for a config ``type``: "video_file", "stream", "usb" or "folder".

    ``params`` are the constructor arguments (``id`` included); "stream" takes ``url`` and "usb"
    ``device`` as other names of ``url_or_device``; "video", "image_folder", "rtsp" and "http" are
    accepted as type aliases. The source is returned unopened: ``read()`` opens it, or call
    ``open()`` to fail early. Unknown types, unknown or missing parameters raise
    :class:`SourceError` naming the source and what is accepted.
    """
    source_type = _TYPES.get(_TYPE_ALIASES.get(kind, kind))
    if source_type is None:
        raise SourceError(f"unknown source type {kind!r}; known types: {', '.join(sorted(SOURCE_TYPES))}")
    source_id = params.get("id", "?")
    sig = inspect.signature(source_type.cls)
    accepted = set(sig.parameters) | set(source_type.aliases)
    unknown = sorted(set(params) - accepted)
    if unknown:
        raise SourceError(
            f"source {source_id!r} (type {kind}): unknown parameter(s) {', '.join(unknown)}; "
            f"accepted: {', '.join(sorted(accepted))}"
        )
    kwargs = {source_type.aliases.get(k, k): v for k, v in params.items()}
    missing = [n for n, p in sig.parameters.items() if p.default is inspect.Parameter.empty and n not in kwargs]
    if missing:
        raise SourceError(f"source {source_id!r} (type {kind}): missing parameter(s) {', '.join(missing)}")
    return source_type.cls(**kwargs)
