"""Video I/O through PyAV: streaming decode of videos and image folders, and overlay encoding.

Anything FFmpeg reads is accepted (mp4/h264, avi/mjpeg, webm/vp9, mov, mkv, ...), as well as a
folder of images (``*.jpg``, ``*.png``, ... in natural order: ``2.jpg`` before ``10.jpg``). Frames
come out one at a time as (H, W, 3) uint8 RGB arrays in display orientation: the rotation of the
container's display matrix (phones record portrait video as rotated landscape) is applied, so
``VideoInfo.width``/``height`` are the displayed size. Nothing holds more than one decoded frame;
the caller keeps the window it needs.

The frame count is the container's when it records one (mp4, mov, avi), else it is counted by
demuxing the packets without decoding them (webm, mkv). A stream that ends before that count
(a truncated file) is an :class:`~famicli.errors.InputError` naming the frame, not a silently
shorter result.

Overlays are written by :class:`VideoWriter`: h264 (``libx264``) in mp4 when the FFmpeg build has
it, else MPEG-4 Part 2 (``mpeg4``) with a logged warning; ``.avi`` gets mjpeg and ``.webm`` vp9.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from famicli.errors import ConfigError, InputError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
DEFAULT_FPS = 25.0  # frame rate assumed for image folders (PoseTrack's videos are ~25 fps)
# encoders tried in order for each output suffix; the first one this FFmpeg build has wins
ENCODERS = {
    ".mp4": ("libx264", "h264", "libopenh264", "mpeg4"),
    ".mov": ("libx264", "h264", "libopenh264", "mpeg4"),
    ".mkv": ("libx264", "h264", "libopenh264", "mpeg4"),
    ".avi": ("mjpeg",),
    ".webm": ("libvpx-vp9", "libvpx"),
}
_PIX_FMT = {"mjpeg": "yuvj420p"}  # every other encoder above takes yuv420p


@dataclass(frozen=True)
class VideoInfo:
    """What is known about a video before decoding it."""

    path: str  # the file or folder as given
    kind: str  # "video" (a container file) or "images" (a folder / list of image files)
    frames: int  # number of frames
    fps: float  # frames per second (DEFAULT_FPS or the caller's for images)
    width: int  # displayed width in pixels (after rotation)
    height: int  # displayed height in pixels (after rotation)
    rotation: int  # degrees counter-clockwise applied to decoded frames (0, 90, 180, 270)
    codec: str  # decoder name ("h264", "vp9", "mjpeg", ...) or "images"
    container: str  # FFmpeg demuxer name or "folder"

    def to_dict(self) -> dict:
        return asdict(self)


def open_video(path: str | Path, fps: float | None = None) -> VideoSource:
    """Open a video file or an image folder for streaming.

    Args:
        path: a video file (anything FFmpeg reads) or a folder of images.
        fps: frame rate of an image folder (default :data:`DEFAULT_FPS`); ignored for videos.

    Raises:
        InputError: missing or empty file, a file FFmpeg cannot read (not a video, truncated), a
            file without a video stream, a folder without images.
    """
    path = Path(path)
    if path.is_dir():
        files = sorted(
            (p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()),
            key=lambda p: _natural_key(p.name),
        )
        if not files:
            raise InputError(f"{path}: no images in this folder (expected {', '.join(IMAGE_SUFFIXES)} files)")
        return ImageSequence(files, fps, name=str(path))
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    if not path.is_file():
        raise InputError(f"{path}: not a regular file")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: empty file (0 bytes), not a video")
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return ImageSequence([path], fps, name=str(path))
    return VideoFile(path)


def _natural_key(name: str) -> list:
    return [int(s) if s.isdigit() else s.lower() for s in re.split(r"(\d+)", name)]


def _ffmpeg_reason(exc: Exception) -> str:
    text = " ".join(str(getattr(exc, "strerror", None) or exc).split())
    return text or type(exc).__name__


def _decode_errors() -> tuple[type[BaseException], ...]:
    """What a failed decode raises: PyAV's errors (imported here: ``famipose --help`` stays cheap), OS errors."""
    import av

    return (av.error.FFmpegError, OSError, ValueError)


def _decode_error(path: Path, index: int, exc: BaseException) -> InputError:
    """One message for every failed decode: ``<file>: cannot decode video (frame N: <reason>)``."""
    return InputError(f"{path}: cannot decode video (frame {index}: {_ffmpeg_reason(exc)}; corrupt or truncated file)")


class VideoSource:
    """Common interface of :class:`VideoFile` and :class:`ImageSequence` (a context manager)."""

    info: VideoInfo

    def frames(self, needed: Callable[[int], bool] | None = None) -> Iterator[np.ndarray | None]:
        """Frames in order as (H, W, 3) uint8 RGB; ``needed(i)`` False may yield None instead."""
        raise NotImplementedError

    def close(self) -> None:
        """Release the file."""

    def __enter__(self) -> VideoSource:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class VideoFile(VideoSource):
    """A container file decoded with PyAV, one frame at a time."""

    def __init__(self, path: Path):
        import av

        self.path = path
        try:
            self._container = av.open(str(path), mode="r")
        except (av.error.FFmpegError, OSError, UnicodeDecodeError) as exc:
            raise InputError(
                f"{path}: cannot read video: {_ffmpeg_reason(exc)} (not a video FFmpeg can read, or a truncated file)"
            ) from None
        try:
            if not self._container.streams.video:
                raise InputError(f"{path}: no video stream in this {self._container.format.name} file")
            stream = self._container.streams.video[0]
            stream.thread_type = "AUTO"
            self._stream = stream
            frames = stream.frames or self._count_packets()
            self._decoded = self._decode()
            try:
                self._first = next(self._decoded, None)
                if self._first is None:
                    raise InputError(f"{path}: cannot decode video (frame 0: no frame data; empty or truncated file)")
                rotation = self._first.rotation
                first = self._to_array(self._first, rotation)
            except _decode_errors() as exc:
                raise _decode_error(path, 0, exc) from None
        except BaseException:
            self._container.close()
            raise
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        self.info = VideoInfo(
            str(path),
            "video",
            int(frames),
            float(rate) if rate else DEFAULT_FPS,
            first.shape[1],
            first.shape[0],
            int(rotation) % 360,
            stream.codec_context.name,
            self._container.format.name,
        )

    def _count_packets(self) -> int:
        """Count the stream's packets without decoding, then rewind (containers without a count)."""
        import av

        try:
            n = sum(1 for p in self._container.demux(self._stream) if p.size)
            self._container.seek(0, stream=self._stream)
        except (av.error.FFmpegError, OSError, ValueError) as exc:
            raise InputError(f"{self.path}: cannot read video: {_ffmpeg_reason(exc)}") from None
        return n

    def _decode(self):
        yield from self._container.decode(self._stream)

    @staticmethod
    def _to_array(frame, rotation: int) -> np.ndarray:
        arr = frame.to_ndarray(format="rgb24")  # (H, W, 3) uint8
        k = round(rotation / 90) % 4  # the display matrix rotates counter-clockwise by ``rotation``
        return np.ascontiguousarray(np.rot90(arr, k)) if k else arr

    def frames(self, needed=None) -> Iterator[np.ndarray]:
        if self._first is None:
            raise ConfigError(f"{self.path}: frames() can be iterated once; open the video again")
        frame, self._first, index = self._first, None, 0
        rotation = self.info.rotation
        try:
            while frame is not None:
                yield self._to_array(frame, rotation)
                index += 1
                frame = next(self._decoded, None)
        except _decode_errors() as exc:
            raise _decode_error(self.path, index, exc) from None
        if index < self.info.frames:
            raise InputError(
                f"{self.path}: the stream ends after {index} of {self.info.frames} frames (truncated video)"
            )

    def close(self) -> None:
        self._container.close()


class ImageSequence(VideoSource):
    """A list of image files read one at a time (a PoseTrack sequence, a folder of frames)."""

    def __init__(self, files: list[Path], fps: float | None = None, name: str | None = None):
        from famicli.data.posetrack import read_image

        if not files:
            raise InputError(f"{name or 'image list'}: no images")
        if fps is not None and not fps > 0:
            raise ConfigError(f"fps must be > 0 (got {fps})")
        self.files = [Path(f) for f in files]
        first = read_image(self.files[0])
        self._size = first.shape[:2]
        self.info = VideoInfo(
            name or str(self.files[0].parent),
            "images",
            len(self.files),
            float(fps or DEFAULT_FPS),
            first.shape[1],
            first.shape[0],
            0,
            "images",
            "folder",
        )

    def frames(self, needed: Callable[[int], bool] | None = None) -> Iterator[np.ndarray | None]:
        from famicli.data.posetrack import read_image

        for i, path in enumerate(self.files):
            if needed is not None and not needed(i):
                yield None
                continue
            image = read_image(path)
            if image.shape[:2] != self._size:
                raise InputError(
                    f"{path}: image size {image.shape[1]}x{image.shape[0]} differs from the "
                    f"first frame's {self._size[1]}x{self._size[0]}"
                )
            yield image


class VideoWriter:
    """Encode RGB frames into a video file (see the module docstring for the codec choice).

    Frames of odd width or height are padded by one edge pixel (yuv420p needs even sizes);
    ``size`` is the encoded (width, height). Write to a temporary path and rename it when done
    (:func:`famicli.io.atomic_path`) so that a failed run leaves no half-written file.

    Args:
        path: output file; its suffix picks the container and the encoders tried.
        fps: frame rate.
        size: (width, height) of the frames that will be written.
        codec: an encoder name, or None for the suffix's list.
        container_format: FFmpeg muxer name when the suffix does not say it (e.g. a ``.tmp`` path).

    Raises:
        ConfigError: unknown suffix, or none of the encoders is available.
    """

    def __init__(
        self,
        path: str | Path,
        fps: float,
        size: tuple[int, int],
        codec: str | None = None,
        container_format: str | None = None,
    ):
        import av

        path = Path(path)
        suffix = f".{container_format}" if container_format else path.suffix.lower()
        if codec is None and suffix not in ENCODERS:
            raise ConfigError(f"{path}: unknown video suffix {suffix!r}; choose from: {', '.join(ENCODERS)}")
        candidates = (codec,) if codec else ENCODERS[suffix]
        available = [c for c in candidates if c in av.codecs_available]
        if not available:
            raise ConfigError(f"{path}: no encoder for {suffix} in this FFmpeg build (tried: {', '.join(candidates)})")
        self.codec = available[0]
        if codec is None and self.codec != candidates[0]:
            log.warning(
                "%s: encoder %s is not available in this FFmpeg build; writing %s instead",
                path,
                candidates[0],
                self.codec,
            )
        w, h = size
        self.size = (w + w % 2, h + h % 2)
        self.frames = 0
        self._closed = False
        fmt = {"mp4": "mp4", "mov": "mov", "mkv": "matroska", "avi": "avi", "webm": "webm"}.get(suffix[1:])
        self._container = av.open(str(path), mode="w", format=fmt)
        try:
            rate = Fraction(fps).limit_denominator(1001) if fps > 0 else Fraction(25)
            stream = self._container.add_stream(self.codec, rate=rate)
            stream.width, stream.height = self.size
            stream.pix_fmt = _PIX_FMT.get(self.codec, "yuv420p")
            if self.codec == "libx264":
                stream.options = {"crf": "23", "preset": "veryfast"}
            self._stream = stream
        except BaseException:
            self._container.close()
            raise

    def write(self, frame: np.ndarray) -> None:
        """Append one (H, W, 3) uint8 RGB frame of the size given at construction."""
        import av

        w, h = self.size
        if frame.shape[1] != w or frame.shape[0] != h:
            frame = np.pad(frame, ((0, h - frame.shape[0]), (0, w - frame.shape[1]), (0, 0)), mode="edge")
        for packet in self._stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
            self._container.mux(packet)
        self.frames += 1

    def close(self) -> None:
        """Flush the encoder and close the file (once; later calls do nothing)."""
        if self._closed:
            return
        self._closed = True
        try:
            for packet in self._stream.encode():
                self._container.mux(packet)
        finally:
            self._container.close()

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
