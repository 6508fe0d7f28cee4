"""Video files through PyAV (FFmpeg's libraries in a wheel): what a file holds, its frames as RGB
arrays, and a new file with stylized frames and the input's audio packets copied unchanged.

    info = probe("in.mp4")                     # size, frame rate, rotation, audio streams, colours
    for frame in decode_frames(info, start=2.0, duration=5.0): ...   # Frame(index, pts, time, rgb)
    with VideoWriter(file_object, "out.mp4", info, crf=18) as w:     # the audio is copied as it goes
        w.write(frame, rgb)
    join(file_object, "out.mp4", info, [(path, offset), ...])        # segments remuxed, the audio copied

Colours: frames are converted to RGB with the matrix and range their stream declares (BT.709 for
untagged HD, BT.601 below 720 lines, as players assume) and back with the same, and the output
is tagged like the input, so that an unchanged frame comes back with its colours.  Rotation: the
display matrix (a phone's "rotate" tag) is copied onto the output as it is; the stored frames
keep their stored size.  Timestamps are the input's (variable frame rates stay variable), shifted
by ``start`` when a part is taken.

Imports PyAV on first use only; MissingDependencyError says how to install it.
"""
from __future__ import annotations

import os
from contextlib import suppress as _suppress
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Iterator, Optional, Tuple

import numpy as np

from ..core.errors import MissingDependencyError, OptionError, VideoError
from ..core.files import check_regular_file

#: Output containers by file extension: (FFmpeg muxer, video encoders in order of preference).
CONTAINERS = {
    ".mp4": ("mp4", ("libx264", "h264", "mpeg4")),
    ".m4v": ("mp4", ("libx264", "h264", "mpeg4")),
    ".mov": ("mov", ("libx264", "h264", "mpeg4")),
    ".mkv": ("matroska", ("libx264", "h264", "libvpx-vp9", "mpeg4")),
    ".webm": ("webm", ("libvpx-vp9", "libvpx", "libaom-av1")),
}
#: Default constant rate factor (libx264: 0 lossless .. 51; 18 is close to transparent).  Painted
#: frames are all texture: a lower quality shows as smeared strokes.
DEFAULT_CRF = 18
INSTALL = "pip install 'deepshop-native[video]'"

# FFmpeg's AVColorSpace numbers (frame.colorspace) -> swscale's matrix names.
_MATRICES = {1: "ITU709", 4: "FCC", 5: "ITU601", 6: "ITU601", 7: "SMPTE240M", 9: "BT2020", 10: "BT2020"}
_UNSPECIFIED = 2
_RANGE_MPEG, _RANGE_JPEG = 1, 2


def require_av():
    """The ``av`` module, or MissingDependencyError saying how to install it."""
    try:
        import av
    except ImportError:
        raise MissingDependencyError(f"video needs PyAV (FFmpeg's libraries in a wheel): {INSTALL}") from None
    return av


@dataclass(frozen=True)
class Colours:
    """How a stream's YUV maps to RGB: swscale's matrix name, the range, and the tags to copy."""
    matrix: str                 # "ITU709", "ITU601", ...
    full_range: bool            # JPEG (0..255) rather than MPEG (16..235) levels
    tags: Tuple[int, int, int, int] = (_UNSPECIFIED, 0, _UNSPECIFIED, _UNSPECIFIED)  # space, range, primaries, trc


@dataclass(frozen=True)
class VideoInfo:
    """What a video file holds (probe())."""
    path: str
    width: int                  # stored size (before the display matrix)
    height: int
    rate: Fraction              # average frame rate
    time_base: Fraction
    frames: int                 # the container's frame count (0: not recorded)
    duration: float             # seconds (0: unknown)
    codec: str
    colours: Colours
    display_matrix: Optional[Tuple[int, ...]] = None   # the 9 numbers, when the file has one
    rotation: int = 0           # degrees counter-clockwise the picture is shown turned (a multiple of 90)
    audio: Tuple[int, ...] = field(default_factory=tuple)   # indices of the audio streams

    @property
    def display_size(self) -> Tuple[int, int]:
        """(width, height) as shown, the rotation applied."""
        return (self.height, self.width) if self.rotation % 180 else (self.width, self.height)

    def frame_count(self, start: float = 0.0, duration: Optional[float] = None) -> Optional[int]:
        """The number of frames of the part [start, start + duration), estimated from the count or
        the duration and the frame rate; None when unknown."""
        total = self.duration if self.duration > 0 else (float(self.frames / self.rate) if self.frames else 0.0)
        if total <= 0 or not self.rate:
            return None
        length = max(0.0, total - start) if duration is None else max(0.0, min(duration, total - start))
        if start == 0 and duration is None and self.frames:
            return self.frames
        return max(0, round(length * float(self.rate)))


def _open(av, path: str):
    try:
        return av.open(path, metadata_errors="replace")
    except av.FFmpegError as e:
        raise VideoError(f"{path}: not a video file FFmpeg can read ({_reason(e)})") from None
    except (UnicodeDecodeError, ValueError) as e:
        raise VideoError(f"{path}: cannot read ({e})") from None


def _reason(e: BaseException) -> str:
    text = getattr(e, "strerror", None) or str(e)
    return text.split(": '", 1)[0].strip() or type(e).__name__


def _colours(frame, height: int) -> Colours:
    space, rng = int(frame.colorspace), int(frame.color_range)
    matrix = _MATRICES.get(space) or ("ITU709" if height >= 720 else "ITU601")
    full = rng == _RANGE_JPEG or frame.format.name.startswith("yuvj")
    tags = (space, rng if rng else (_RANGE_JPEG if full else 0), int(frame.color_primaries), int(frame.color_trc))
    return Colours(matrix, full, tags)


def _display_matrix(av, frame) -> Optional[Tuple[int, ...]]:
    try:
        data = frame.side_data.get(av.sidedata.sidedata.Type.DISPLAYMATRIX)
    except (AttributeError, KeyError):
        data = None
    if data is None or data.buffer_size != 36:
        return None
    return tuple(int(v) for v in np.frombuffer(bytes(data), dtype=np.int32))


def probe(path) -> VideoInfo:
    """The file's video stream (the first one) and audio streams; VideoError naming the file when
    it is no video FFmpeg reads, has no video stream or no frame can be decoded."""
    av = require_av()
    path = os.fspath(path)
    check_regular_file(path, "video", error=VideoError)
    with _open(av, path) as container:
        if not container.streams.video:
            kinds = sorted({s.type for s in container.streams}) or ["none"]
            raise VideoError(f"{path}: has no video stream (streams: {', '.join(kinds)})")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        first = None
        try:
            for first in container.decode(stream):
                break
        except av.FFmpegError as e:
            raise VideoError(f"{path}: cannot decode its video ({_reason(e)})") from None
        if first is None:
            raise VideoError(f"{path}: its video stream has no frame that can be decoded")
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate or Fraction(25)
        duration = 0.0
        if stream.duration and stream.time_base:
            duration = float(stream.duration * stream.time_base)
        elif container.duration:
            duration = container.duration / 1_000_000
        rotation = int(round(getattr(first, "rotation", 0) or 0)) % 360
        return VideoInfo(
            path=path, width=first.width, height=first.height, rate=Fraction(rate),
            time_base=Fraction(stream.time_base or Fraction(1, 90000)), frames=int(stream.frames or 0),
            duration=duration, codec=stream.codec_context.name, colours=_colours(first, first.height),
            display_matrix=_display_matrix(av, first), rotation=rotation - rotation % 90,
            audio=tuple(s.index for s in container.streams.audio))


@dataclass
class Frame:
    """A decoded frame: its place in the output, its timestamp (input time base) and time (s)."""
    index: int
    pts: Optional[int]
    time: float
    rgb: Optional[np.ndarray]   # H x W x 3 uint8, stored orientation (None: skipped)


def _to_rgb(frame, colours: Colours) -> np.ndarray:
    out = frame.reformat(format="rgb24", src_colorspace=colours.matrix, dst_colorspace=colours.matrix,
                         src_color_range="JPEG" if colours.full_range else "MPEG", dst_color_range="JPEG")
    return out.to_ndarray()


def decode_frames(info: VideoInfo, start: float = 0.0, duration: Optional[float] = None,
                  stop=None, skip: int = 0, after: Optional[int] = None) -> Iterator[Frame]:
    """The frames of [start, start + duration) as RGB (the stored orientation), in display order.
    ``stop``: a threading.Event that ends the iteration early.  VideoError names the file on a
    stream that cannot be decoded.

    A resumed run's first ``skip`` frames are done: with ``after``, the timestamp of the last of
    them, decoding begins at the key frame before it and the frames after it come (indices from
    ``skip``); where that frame is not found there (a seek that missed), and without ``after``,
    every frame is decoded and the first ``skip`` come unconverted (rgb None)."""
    av = require_av()
    if skip > 0 and after is not None:
        index = None
        for frame, time in _decoded(av, info, start, duration, stop, seek=after):
            if index is None:
                if frame.pts == after:
                    index = skip
                elif frame.pts is None or frame.pts > after:
                    break
                continue
            yield Frame(index, frame.pts, time, _to_rgb(frame, info.colours))
            index += 1
        if index is not None or (stop is not None and stop.is_set()):
            return
    index = 0
    for frame, time in _decoded(av, info, start, duration, stop):
        yield Frame(index, frame.pts, time, _to_rgb(frame, info.colours) if index >= skip else None)
        index += 1


def _decoded(av, info: VideoInfo, start: float, duration: Optional[float], stop, seek: Optional[int] = None):
    """(PyAV frame, its time in seconds) of [start, start + duration), from the key frame at or
    before ``seek`` (the stream's timestamp) or ``start``."""
    end = None if duration is None else start + duration
    with _open(av, info.path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        try:
            if seek is not None:
                container.seek(seek, stream=stream, backward=True, any_frame=False)
            elif start > 0:
                container.seek(int(start * 1_000_000), backward=True, any_frame=False)
        except av.FFmpegError:
            container.seek(0)
        count = 0
        last_time = None
        try:
            for frame in container.decode(stream):
                if stop is not None and stop.is_set():
                    return
                time = frame.time if frame.time is not None else (
                    (last_time + 1 / float(info.rate)) if last_time is not None else 0.0)
                last_time = time
                if time < start - 1e-6:
                    continue
                if end is not None and time >= end - 1e-6:
                    return
                yield frame, time
                count += 1
        except av.FFmpegError as e:
            where = f"frame {count}" if seek is None else f"a frame after timestamp {seek}"
            raise VideoError(f"{info.path}: cannot decode {where} ({_reason(e)})") from None


def container_for(name: str) -> Tuple[str, str]:
    """(muxer, video encoder) for an output file name; OptionError naming the extensions taken."""
    av = require_av()
    ext = os.path.splitext(os.fspath(name))[1].lower()
    if ext not in CONTAINERS:
        raise OptionError(f"output: {os.fspath(name)}: unknown video extension {ext or '(none)'!r}; use one of "
                          + ", ".join(CONTAINERS))
    muxer, encoders = CONTAINERS[ext]
    for encoder in encoders:
        if encoder in av.codecs_available:
            return muxer, encoder
    raise MissingDependencyError(f"{os.fspath(name)}: this FFmpeg has none of the encoders {', '.join(encoders)}")


def parse_bitrate(value) -> Optional[int]:
    """A bit rate: bits per second, or with k/M suffix ("8M", "2500k"); None passes."""
    if value is None:
        return None
    text = str(value).strip().lower()
    scale = {"k": 1_000, "m": 1_000_000}.get(text[-1:], 1)
    try:
        number = float(text[:-1] if scale > 1 else text)
    except ValueError:
        raise OptionError(f"bitrate: expected bits per second, e.g. 8M or 2500k, got {value!r}") from None
    bits = int(number * scale)
    if not 10_000 <= bits <= 2_000_000_000:
        raise OptionError(f"bitrate: must be from 10k to 2000M bits per second, got {value!r}")
    return bits


class AudioCopier:
    """Copies the input's audio packets of [start, end) into ``out`` (an output container),
    unchanged, shifted by ``start``: ``copy(until)`` muxes those that begin before ``until``
    seconds (of the input's time line; None: all that remain), so that they interleave with the
    video.  VideoError names the output when a codec cannot go into its container."""

    def __init__(self, out, name: str, info: VideoInfo, start: float = 0.0, end: Optional[float] = None):
        self._av, self._out, self.info, self.name = require_av(), out, info, name
        self.start, self.end = start, end
        self._in = None
        self._pending = None     # a packet read but not yet due
        self.streams = self._add_streams(out) if info.audio else {}
        self._done = not self.streams
        if self.streams:
            self._packets = self._in.demux(*[self._in.streams[i] for i in self.streams])

    def _add_streams(self, out) -> dict:
        av = self._av
        self._in = _open(av, self.info.path)
        streams = {}
        try:
            for index in self.info.audio:
                source = self._in.streams[index]
                try:
                    streams[index] = out.add_stream_from_template(source)
                except (av.FFmpegError, ValueError) as e:
                    raise VideoError(f"{self.name}: the audio ({source.codec_context.name}) cannot be copied into "
                                     f"this container ({_reason(e)}); choose another output type, e.g. .mkv") from None
        except BaseException:
            self.close()
            raise
        return streams

    def copy(self, until: Optional[float]) -> None:
        """Mux the audio packets that start before ``until`` seconds (None: all that remain)."""
        while not self._done:
            packet = self._pending
            if packet is None:
                try:
                    packet = next(self._packets)
                except StopIteration:
                    self._done = True
                    return
                except self._av.FFmpegError as e:
                    raise VideoError(f"{self.info.path}: cannot read its audio ({_reason(e)})") from None
                if packet.pts is None or packet.size == 0:   # flush packets of the demuxer
                    continue
            time = float(packet.pts * packet.time_base)
            if self.end is not None and time >= self.end:
                self._done = True
                return
            if until is not None and time > until:
                self._pending = packet
                return
            self._pending = None
            if self.start > 0 and time < self.start - 1e-6:   # (from the start: the priming packets too)
                continue
            if self.start > 0:
                shift = int(round(self.start / packet.time_base))
                packet.pts -= shift
                if packet.dts is not None:
                    packet.dts -= shift
            packet.stream = self.streams[packet.stream.index]
            _mux(self._av, self._out, self.name, packet)

    def close(self) -> None:
        if self._in is not None:
            self._in.close()
            self._in = None


def check_audio(info: VideoInfo, name: str) -> None:
    """VideoError now, before any work, when the input's audio cannot go into ``name``'s container."""
    if info.audio:
        av = require_av()
        import io
        out = av.open(io.BytesIO(), mode="w", format=container_for(name)[0])
        try:
            AudioCopier(out, name, info).close()
        finally:
            out.close()


def _mux(av, out, name: str, packets) -> None:
    try:
        out.mux(packets)
    except av.FFmpegError as e:
        raise VideoError(f"{name}: cannot write ({_reason(e)})") from None


def output_pts(frame: Frame, info: VideoInfo, start: float) -> int:
    """A frame's timestamp in the output (the input's time base, shifted by ``start``)."""
    tb = info.time_base
    pts = frame.pts if frame.pts is not None else int(round(frame.time / tb))
    if start > 0:
        pts -= int(round(start / tb))
    return max(0, pts)


class VideoWriter:
    """Encodes frames into ``file`` (a writable binary file object; the muxer ``muxer`` or from
    ``name``'s extension, the encoder from ``name``'s extension) with the input's frame rate, size,
    timestamps, colours and display matrix, and (``audio``) copies the input's audio packets between
    them.  ``offset``: subtracted from every output timestamp (a segment that begins at 0).  Use
    from one thread; ``close(finish=False)`` abandons the file (nothing is flushed)."""

    def __init__(self, file, name: str, info: VideoInfo, *, start: float = 0.0, duration: Optional[float] = None,
                 crf: Optional[int] = None, bitrate: Optional[int] = None, muxer: Optional[str] = None,
                 audio: bool = True, offset: int = 0):
        av = self._av = require_av()
        self.info, self.name = info, os.fspath(name)
        self.start, self.offset = start, offset
        self.frames = 0
        own_muxer, encoder = container_for(name)
        self._out = av.open(file, mode="w", format=muxer or own_muxer)
        self._audio = None
        try:
            self._video = self._video_stream(encoder, crf, bitrate)
            if audio:
                self._audio = AudioCopier(self._out, self.name, info, start,
                                          None if duration is None else start + duration)
        except BaseException:
            self.close(finish=False)
            raise

    def _video_stream(self, encoder: str, crf: Optional[int], bitrate: Optional[int]):
        info = self.info
        stream = self._out.add_stream(encoder, rate=info.rate)
        stream.width, stream.height = info.width, info.height
        # 4:2:0 halves the chroma in both directions: odd sizes keep every pixel with 4:4:4.
        self._pix_fmt = "yuv420p" if info.width % 2 == 0 and info.height % 2 == 0 else "yuv444p"
        if encoder == "mpeg4":
            self._pix_fmt = "yuv420p"
        stream.pix_fmt = self._pix_fmt
        stream.time_base = info.time_base
        ctx = stream.codec_context
        ctx.time_base = info.time_base
        space, rng, primaries, trc = info.colours.tags
        for attr, value in (("colorspace", space), ("color_range", rng), ("color_primaries", primaries),
                            ("color_trc", trc)):
            try:
                setattr(ctx, attr, value)
            except (AttributeError, ValueError, TypeError):
                pass
        options = {}
        if bitrate is not None:
            stream.bit_rate = bitrate
            if encoder.startswith("libvpx"):
                options["b"] = str(bitrate)
        elif encoder in ("libx264", "libx265"):
            options["crf"] = str(DEFAULT_CRF if crf is None else crf)
        elif encoder.startswith("libvpx") or encoder == "libaom-av1":
            options.update({"crf": str(31 if crf is None else crf), "b": "0"})
        else:   # mpeg4, h264 without x264: a quantiser instead of a rate factor
            options["qscale"] = str(max(1, min(31, (DEFAULT_CRF if crf is None else crf) // 6)))
        stream.options = options
        if info.display_matrix is not None:
            stream.set_display_matrix(list(info.display_matrix))
        return stream

    # --- video ---------------------------------------------------------------------------------
    def write(self, frame: Frame, rgb: np.ndarray) -> None:
        """Encode ``rgb`` (H x W x 3 uint8, stored orientation) at ``frame``'s time."""
        av = self._av
        out = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        colours = self.info.colours
        out = out.reformat(format=self._pix_fmt, src_colorspace=colours.matrix, dst_colorspace=colours.matrix,
                           src_color_range="JPEG", dst_color_range="JPEG" if colours.full_range else "MPEG")
        out.pts = output_pts(frame, self.info, self.start) - self.offset
        out.time_base = self.info.time_base
        if self._audio is not None:
            self._audio.copy(frame.time)
        _mux(av, self._out, self.name, self._video.encode(out))
        self.frames += 1

    def close(self, finish: bool = True) -> None:
        """Flush the encoder, copy the rest of the audio and write the trailer (finish), or just
        release everything."""
        out, self._out = getattr(self, "_out", None), None
        try:
            if out is not None and finish:
                _mux(self._av, out, self.name, self._video.encode(None))
                if self._audio is not None:
                    self._audio.copy(None)
        finally:
            if out is not None:
                try:
                    out.close()
                except self._av.FFmpegError as e:
                    if finish:
                        raise VideoError(f"{self.name}: cannot finish the file ({_reason(e)})") from None
            if self._audio is not None:
                self._audio.close()

    def __enter__(self):
        return self

    def __exit__(self, kind, value, tb):
        self.close(finish=kind is None)


def _reorder_delay(pts: list) -> int:
    """The fewest packets ``d`` that decoding runs behind display in a segment whose packets (in
    decode order) have these timestamps: every packet's pts is at least the (i - d)-th smallest."""
    ranked = sorted(pts)
    for d in range(len(pts)):
        if all(ranked[i - d] <= p for i, p in enumerate(pts) if i >= d):
            return d
    return len(pts)


def join(file, name: str, info: VideoInfo, parts, *, start: float = 0.0, duration: Optional[float] = None) -> int:
    """Remux the video packets of ``parts`` ((path, offset) pairs in order: files VideoWriter wrote
    without audio, each with that ``offset``) into ``file`` (the muxer from ``name``'s extension),
    their timestamps put back, with the input's audio of [start, start + duration) copied between
    them: nothing is decoded or encoded again.  Returns the number of video packets.

    Each segment's encoder delayed decoding behind display by its own number of frames (B-frames;
    a short segment fewer), so the decoding timestamps are made anew for the whole video with the
    largest delay D: the i-th packet's dts is the (i - D)-th smallest pts, which rises, and is no
    later than the packet's own pts in every segment."""
    av = require_av()
    name = os.fspath(name)
    parts = [(os.fspath(path), offset) for path, offset in parts]
    delay, step, order = 0, None, []
    for path, offset in parts:            # first pass: the timestamps alone
        with _open(av, path) as part:
            source = part.streams.video[0]
            pts = [p.pts for p in part.demux(source) if p.size and p.pts is not None]
        delay = max(delay, _reorder_delay(pts))
        order.append(sorted(pts))
        if step is None and len(pts) > 1:
            step = (order[-1][1] - order[-1][0]) * source.time_base
    step = step or Fraction(1, max(1, round(info.rate or 25)))
    out = av.open(file, mode="w", format=container_for(name)[0])
    stream, audio, count, finished = None, None, 0, False
    shown: list = []                          # the largest pts (as Fractions of seconds) of the segments before
    try:
        for (path, offset), ranked in zip(parts, order):
            with _open(av, path) as part:
                source = part.streams.video[0]
                tb = source.time_base
                if stream is None:      # the video first, then the audio: the order VideoWriter gives
                    stream = out.add_stream_from_template(source)
                    stream.time_base = info.time_base
                    with _suppress(AttributeError, ValueError, TypeError):
                        stream.codec_context.framerate = info.rate
                    audio = AudioCopier(out, name, info, start, None if duration is None else start + duration)
                shift = int(round(offset * info.time_base / tb))
                ranked = [p + shift for p in ranked]
                packets = (p for p in part.demux(source) if p.size and p.pts is not None)
                before = shown[-delay:] if delay else []
                for j, packet in enumerate(packets):
                    packet.pts += shift
                    if j >= delay:
                        packet.dts = ranked[j - delay]
                    elif len(before) >= delay - j:
                        packet.dts = int(round(before[j - delay] / tb))
                    else:                  # the video's first packets: before its first frame
                        packet.dts = ranked[0] - int(round((delay - j) * step / tb))
                    audio.copy(float(packet.pts * tb) + start)
                    packet.stream = stream
                    _mux(av, out, name, packet)
                    count += 1
                shown = (shown + [p * tb for p in ranked])[-max(delay, 1):]
        if audio is not None:
            audio.copy(None)
        finished = True
    except av.FFmpegError as e:
        raise VideoError(f"{name}: cannot join the segments ({_reason(e)})") from None
    finally:
        try:
            out.close()
        except av.FFmpegError as e:
            if finished:
                raise VideoError(f"{name}: cannot finish the file ({_reason(e)})") from None
        if audio is not None:
            audio.close()
    return count
