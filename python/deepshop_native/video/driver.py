"""``ds.stylize_video``: a video file in, a stylized video file out, with its audio, frame rate,
size, timestamps and rotation, through four stages at once (stages.py):

    decode (thread)  ->  analyse (thread: scene cuts, optical flow)  ->  stylize (the caller's
    thread: the engine, the shot statistics)  ->  blend and encode (thread)

The video is encoded into segments in a work folder beside the output (segments.py), which are
remuxed into the output at the end through core/files' atomic writer (a temporary file beside it,
renamed): an error, Ctrl-C or SIGTERM leaves no half-written file at the output's name, and the
work folder, from which the same call goes on (``resume``).  It never replaces the input, nor an
existing file without ``overwrite``.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import time
import warnings
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from .. import _native
from ..core import options
from ..core.errors import Cancelled, OptionError, OutputExistsError, VideoError
from ..core.files import atomic_write, check_not_an_input, output_exists_message
from ..models.styles import open_styled
from . import media
from . import segments as sg
from . import temporal as tc
from .stages import Stages

#: Frames each queue between two stages holds at most.
QUEUE = 4
#: Options of one style family or another, passed to the family that takes them (as ds.stylize).
FAMILY_OPTIONS = ("style_size", "style_tile", "style_statistics")
#: Engine options that do not change the pixels (a resumed run may differ in them).
NEUTRAL_OPTIONS = ("threads",)


class VideoNote(UserWarning):
    """A note of stylize_video (segments of an earlier run not reused) when no ``notice`` is given."""


@dataclass
class VideoResult:
    """What stylize_video did."""
    output: str
    frames: int
    seconds: float
    temporal: str               # the mode that ran
    statistics: bool            # whether shot statistics were used (a global-statistics graph)
    cuts: int                   # scene cuts found (the first frame not counted)
    measurements: int           # statistics measurements taken
    device: str
    resumed: int = 0            # frames an interrupted earlier run had painted (in the output, not painted again)

    @property
    def fps(self) -> float:
        """Frames painted by this run per second."""
        return (self.frames - self.resumed) / self.seconds if self.seconds > 0 else 0.0


def statistics_graph(path) -> Optional[str]:
    """The global-statistics graph beside a plain one (NAME.statistics.onnx), if there is one."""
    path = os.fspath(path)
    if path.endswith(".statistics.onnx"):
        return None
    candidate = os.path.splitext(path)[0] + ".statistics.onnx"
    return candidate if os.path.isfile(candidate) else None


def open_video_pipeline(model=None, styles=(), weights=None, *, mode: str = tc.DEFAULT_MODE,
                        family_options: Optional[dict] = None, **engine_options):
    """The pipeline that paints (models/styles.open_styled), on its global-statistics graph when the
    mode uses statistics and the plain graph has one beside it (the pretrained networks do).
    ``stats`` mode refuses a model without one (OptionError); ``flow`` goes on without."""
    pipeline = open_styled(model, list(styles), weights, family_options=family_options, **engine_options)
    if mode != "off" and not pipeline.has_statistics:
        sibling = statistics_graph(pipeline.model_path)
        if sibling is not None:
            chosen = list(styles) or list(getattr(pipeline, "style_names", []) or [])
            pipeline = open_styled(sibling, chosen, weights if styles else None, family_options=family_options,
                                   **engine_options)
    if mode == "stats" and not pipeline.has_statistics:
        raise OptionError(f"temporal: stats needs a global-statistics graph, and {pipeline.model_path} is none (nor "
                          "is one beside it); use temporal flow or off")
    return pipeline


def _check(mode, start, duration, crf, bitrate, blend, stats_every):
    if mode not in tc.MODES:
        raise OptionError(f"temporal: expected one of {', '.join(tc.MODES)}, got {mode!r}")
    start = options.check_number("start", start, 0.0, 1e7)
    if duration is not None:
        duration = options.check_number("duration", duration, 0.0, 1e7)
        if duration <= 0:
            raise OptionError(f"duration: must be more than 0 seconds, got {duration:g}")
    if crf is not None and bitrate is not None:
        raise OptionError("crf: give either crf or bitrate, not both")
    if crf is not None:
        crf = options.check_integer("crf", crf, 0, 63)
    bitrate = media.parse_bitrate(bitrate)
    blend = options.check_number("blend", blend, 0.0, 1.0)
    stats_every = options.check_integer("stats_every", stats_every, 1, 100_000)
    return start, duration, crf, bitrate, blend, stats_every


def _identity(value):
    """A style or model argument as the manifest records it: a file by its identity, pixels by
    their hash, else itself."""
    if isinstance(value, (str, os.PathLike)) and os.path.isfile(value):
        return sg.file_identity(value)
    if isinstance(value, (str, int, float, bool, type(None))):
        return value
    if isinstance(value, (list, tuple)):
        return [_identity(v) for v in value]
    try:
        pixels = np.ascontiguousarray(np.asarray(value))
    except Exception:   # noqa: BLE001  (anything else: its description)
        return repr(value)
    if pixels.dtype == object:
        return repr(value)
    return {"pixels": hashlib.sha256(pixels.tobytes()).hexdigest(), "shape": list(pixels.shape),
            "dtype": str(pixels.dtype)}


def _settings(info, output, pipeline, given: dict, engine: dict) -> dict:
    """Everything that changes the output's pixels or timing, as the work folder's manifest keeps it."""
    from .. import __version__
    model_path = getattr(pipeline, "model_path", None)
    return {
        "deepshop": __version__,
        "input": sg.file_identity(info.path),
        "output": [os.path.splitext(output)[1].lower(), media.container_for(output)[1]],
        "given": {k: _identity(val) for k, val in given.items()},
        "engine": {k: v for k, v in engine.items() if k not in NEUTRAL_OPTIONS},
        "pipeline": {"class": type(pipeline).__name__, "model": _identity(model_path) if model_path else None,
                     "styles": _identity(getattr(pipeline, "style_names", None)),
                     "working_size": getattr(pipeline, "working_size", None),
                     "statistics": bool(getattr(pipeline, "has_statistics", False)),
                     "device": getattr(pipeline, "device_used", None)},
    }


def stylize_video(input, output, *, style=None, model=None, style_weights=None, strength: float = 1.0,
                  temporal: Optional[str] = None, start: float = 0.0, duration: Optional[float] = None,
                  crf: Optional[int] = None, bitrate=None, overwrite: bool = False,
                  blend: float = tc.DEFAULT_BLEND, stats_every: int = tc.DEFAULT_STATS_EVERY,
                  progress: Optional[Callable[[int, Optional[int]], Optional[bool]]] = None, pipeline=None,
                  resume: bool = True, segment_frames: int = sg.SEGMENT_FRAMES,
                  notice: Optional[Callable[[str], None]] = None, **engine_options) -> VideoResult:
    """Stylize the video file ``input`` into ``output`` (.mp4, .m4v, .mov, .mkv, .webm).

    style, model, style_weights, strength: as ds.stylize (a painting, a built-in style, a model;
    none: the default style), or ``pipeline``: a style pipeline already opened.
    temporal: "off" (frame by frame), "stats" (one set of instance-norm statistics per shot)
    or "flow" (stats, and the previous painted frame carried along the optical flow; the default).
    start, duration: the part to stylize, in seconds.  crf (x264's 0..51, default 18) or bitrate
    ("8M"): the video's quality.  blend: flow mode's weight (0..1) of the previous painted frame's
    strokes, carried along the motion.
    stats_every: frames between statistics measurements.  progress(done, total) after each frame
    (total None when unknown; return False to cancel: Cancelled).  engine_options: the pipeline's
    (device, tile, working_size, ... and a family's style_size).
    resume: go on from the segments an interrupted run with the same input and settings left in
    the work folder ``.OUTPUT.deepshop-partial`` (False: start over).  segment_frames: frames per
    segment.  notice(text): told when an earlier run's segments are not reused (default: a
    VideoNote warning).  Returns a VideoResult."""
    mode = tc.DEFAULT_MODE if temporal is None else temporal
    start, duration, crf, bitrate, blend, stats_every = _check(mode, start, duration, crf, bitrate, blend,
                                                                stats_every)
    strength = options.check_strength(strength)
    segment_frames = options.check_integer("segment_frames", segment_frames, 1, 1_000_000)
    if progress is not None and not callable(progress):
        raise OptionError("progress: expected a callable progress(done, total)")
    output = os.fspath(output)
    media.container_for(output)
    check_not_an_input(output, [input])
    if not overwrite and os.path.lexists(output):
        raise OutputExistsError(output_exists_message(output))
    info = media.probe(input)
    media.check_audio(info, output)
    engine = dict(engine_options)
    if pipeline is None:
        styles = [] if style is None else list(style) if isinstance(style, (list, tuple)) else [style]
        family = {k: engine_options.pop(k) for k in FAMILY_OPTIONS if k in engine_options}
        pipeline = open_video_pipeline(model, styles, style_weights, mode=mode, family_options=family,
                                       **engine_options)
    elif style is not None or model is not None or engine_options:
        raise OptionError("pipeline: give either an opened pipeline or style/model and engine options, not both")
    elif mode == "stats" and not pipeline.has_statistics:
        raise OptionError(f"temporal: stats needs a global-statistics graph, and {pipeline.model_path} is none")
    given = dict(style=style, model=model, style_weights=style_weights, strength=strength, temporal=mode,
                 blend=blend, stats_every=stats_every, start=start, duration=duration, crf=crf, bitrate=bitrate)
    work = sg.WorkFolder(output, _settings(info, output, pipeline, given, engine), resume=resume)
    work.open()
    if work.reason:
        (notice or (lambda text: warnings.warn(text, VideoNote, stacklevel=3)))(work.reason)
    resumed = work.frames_done
    run = _Run(info, pipeline, mode, strength, blend, stats_every, progress)
    began = time.perf_counter()
    try:
        run.paint(work, output, start, duration, crf, bitrate, segment_frames)
        atomic_write(output, lambda f: media.join(f, output, info, work.parts(), start=start, duration=duration),
                     overwrite=overwrite, error=VideoError)
    except Cancelled as e:
        work.close()
        raise Cancelled(f"{e}; {work.note()}" if work.segments else str(e)) from None
    except BaseException as e:
        work.close()
        if work.segments:           # how to go on: the command prints it, a traceback shows it
            with contextlib.suppress(AttributeError, TypeError):
                e.resume_note = work.note()
            if hasattr(e, "add_note"):
                e.add_note(work.note())
        raise
    work.remove()
    return VideoResult(output=output, frames=work.frames_done, seconds=time.perf_counter() - began,
                       temporal=mode, statistics=run.shots is not None, cuts=sum(s.cuts for s in work.segments),
                       measurements=sum(s.measurements for s in work.segments), device=pipeline.device_used,
                       resumed=resumed)


class _Run:
    """One video's stages and their state."""

    def __init__(self, info: media.VideoInfo, pipeline, mode: str, strength: float, blend: float, stats_every: int,
                 progress):
        self.info, self.pipeline, self.mode, self.strength, self.progress = info, pipeline, mode, strength, progress
        self.turns = (info.rotation // 90) % 4      # quarter turns to show the frame upright
        self.cuts_of = tc.SceneCuts() if mode != "off" else None
        self.motion = tc.MotionEstimator() if mode == "flow" else None
        # Strokes are painted at the working size: DETAIL pixels there, more in a larger frame.
        side = max(info.width, info.height)
        painted = min(side, pipeline.working_size) if pipeline.working_size else side
        self.blender = tc.FlowBlender(blend, tc.DETAIL * side / painted) if mode == "flow" else None
        self.shots = (tc.ShotStatistics(self._measure, stats_every)
                      if mode != "off" and pipeline.has_statistics else None)
        self.frames = 0
        self.cuts = 0

    def _measure(self, upright: np.ndarray) -> tuple:
        """The frame's statistics at the size the network paints it (its working size)."""
        h, w = _native.working_shape(height=upright.shape[0], width=upright.shape[1],
                                     working_size=self.pipeline.working_size)
        if (h, w) != upright.shape[:2]:
            cv2 = tc.require_cv2()
            upright = cv2.resize(upright, (w, h), interpolation=cv2.INTER_AREA)
        return self.pipeline.statistics(upright)

    def _analyse(self, frame: media.Frame):
        if frame.rgb is None:           # painted by an earlier run
            return frame, None, False, None
        upright = np.ascontiguousarray(np.rot90(frame.rgb, self.turns)) if self.turns else frame.rgb
        cut = self.cuts_of(upright) if self.cuts_of is not None else frame.index == 0
        motion = self.motion(upright, cut) if self.motion is not None else None
        return frame, upright, cut, motion

    def _encode(self, writer: sg.SegmentWriter, item) -> None:
        frame, styled, motion, cut, measured = item
        if self.blender is not None:
            styled = self.blender(styled, motion)
        if self.turns:
            styled = np.ascontiguousarray(np.rot90(styled, -self.turns))
        writer.write(frame, styled, cut, measured)

    def _paint(self, done, upright: np.ndarray, cut: bool, motion, noted) -> None:
        """Paint a frame and queue it for the encoder with ``noted`` (the frame, whether its cut is
        counted: a resumed run's first frame is not) and the statistics measurements it took."""
        before = self.shots.measurements if self.shots is not None else 0
        statistics = self.shots(upright, cut) if self.shots is not None else None
        measured = self.shots.measurements - before if self.shots is not None else 0
        styled = self.pipeline.run(upright, strength=self.strength, statistics=statistics)
        done.put((noted[0], styled, motion, noted[1], measured))
        self.frames += 1

    def paint(self, work: sg.WorkFolder, name: str, start: float, duration: Optional[float], crf, bitrate,
              length: int) -> None:
        """Paint the frames after those in ``work``'s segments into new segments.  A resumed run's
        first frame is a cut: the temporal state (statistics, carried strokes) starts again there."""
        if work.complete:
            return
        skip = work.frames_done
        total = self.info.frame_count(start, duration)
        info = self.info
        writer = sg.SegmentWriter(
            work, lambda f, offset: media.VideoWriter(f, name, info, start=start, duration=duration, crf=crf,
                                                      bitrate=bitrate, muxer=sg.SEGMENT_MUXER, audio=False,
                                                      offset=offset),
            lambda frame: media.output_pts(frame, info, start), length)
        seen = 0
        try:
            with Stages() as stages:
                frames = stages.source(media.decode_frames(info, start, duration, stages.stop_event, skip=skip,
                                                           after=work.last_pts),
                                       QUEUE, "decode")
                analysed = stages.map(self._analyse, frames, QUEUE, "analyse")
                done = stages.sink(lambda item: self._encode(writer, item), QUEUE, "encode")
                try:
                    for frame, upright, cut, motion in analysed:
                        seen = frame.index + 1
                        if upright is not None:
                            self._paint(done, upright, cut, motion, (frame, cut and frame.index > skip))
                        if self.progress is not None and self.progress(seen, total) is False:
                            raise Cancelled(f"{info.path}: cancelled after {seen} frames")
                except (Cancelled, KeyboardInterrupt):
                    # Stopped on purpose: the frames painted and queued are encoded and kept.
                    with contextlib.suppress(Exception):
                        stages.finish(done)
                    raise
                stages.finish(done)
            writer.close()
        except BaseException:
            # Every stage has stopped: keep what reached the encoder (a failing encoder: nothing).
            try:
                writer.close()
            except Exception:   # noqa: BLE001  (the first error is the one to tell)
                pass
            raise
        if seen == 0 or seen < skip:
            where = f" from {start:g} s" if start else ""
            what = "no video frames to stylize" if seen == 0 else f"has {seen} frames, fewer than the {skip} done"
            raise VideoError(f"{info.path}: {what}{where}")
        work.finish(seen)
