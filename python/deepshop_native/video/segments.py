"""The work folder that makes a video run resumable: ``.NAME.deepshop-partial/`` beside the
output NAME, holding the video encoded so far as segments and ``manifest.json``.

    work = WorkFolder("out.mp4", settings)     # settings: the input's identity, every option
    work.open()                                 # that changes the pixels (JSON values)
    writer = SegmentWriter(work, open_writer, offset_of, length=250)   # on the encoding thread
    writer.write(frame, rgb); ...; writer.close()                      # segments recorded as done
    media.join(file, "out.mp4", info, work.parts())                    # the output, remuxed
    work.remove()

A segment is one encoder session (so it begins on a key frame) of ``length`` frames, written to
``seg-FIRST.tmp`` and renamed to ``seg-FIRST.mp4`` when complete; only then does the manifest
(written atomically) list it.  An interrupted run (Ctrl-C, SIGTERM, a cancel, an error) finishes
the segment it was writing, so every frame that reached the encoder is kept; a killed one loses
that segment only.  A run whose settings equal the manifest's reuses its segments and paints
from the first frame after them; other settings, a changed input, or ``resume=False`` remove
them and start over (``reason`` says why).  The folder is locked while a run uses it.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import asdict, dataclass
from typing import Callable, List, Optional

from ..core.errors import VideoError
from ..core.files import atomic_write, lock_exclusively

FORMAT = "deepshop-video-partial/1"
SUFFIX = ".deepshop-partial"
MANIFEST = "manifest.json"
LOCK = "lock"
#: Segments are written by the mp4 muxer whatever the output: it keeps the timestamps exactly
#: (Matroska rounds them to milliseconds) and holds every encoder used here.  Each segment's
#: timestamps begin at 0 (a later first one would be rounded to the movie's millisecond edit list).
SEGMENT_MUXER = "mp4"
#: Frames per segment: what a killed run (SIGKILL, power loss) can lose; x264's own key frame
#: interval, so segments add about no key frames.
SEGMENT_FRAMES = 250
#: Bytes of the input hashed into its identity (with its size and modification time).
HEAD_BYTES = 1 << 20
_OURS = re.compile(r"^(seg-\d{8}\.(mp4|tmp)|manifest\.json|lock|\.manifest\.json\.[a-z0-9_]{8}\.part)$")


def folder_for(output) -> str:
    """The work folder of ``output``: hidden, beside it, named after it (relative when it is)."""
    output = os.fspath(output)
    if not os.path.basename(output):
        output = os.path.abspath(output)
    return os.path.join(os.path.dirname(output), "." + os.path.basename(output) + SUFFIX)


def file_identity(path) -> dict:
    """What tells a file apart from an edited or replaced one: its absolute path, size,
    modification time and the SHA-256 of its first HEAD_BYTES bytes."""
    path = os.fspath(path)
    st = os.stat(path)
    with open(path, "rb") as f:
        head = hashlib.sha256(f.read(HEAD_BYTES)).hexdigest()
    return {"path": os.path.abspath(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns, "head": head}


def _note(frames: int, path: str) -> str:
    return (f"{frames} frames are kept in {path}: run the same command again to go on from there (resume=False, "
            "--no-resume, or deleting that folder starts over)") if frames else ""


@dataclass
class Segment:
    file: str            # name in the work folder
    first: int           # index of its first frame in the output
    frames: int
    offset: int          # the output timestamp of its first frame (the input's time base)
    cuts: int = 0        # scene cuts counted in it
    measurements: int = 0
    last_pts: Optional[int] = None   # the input timestamp of its last frame (where a resumed run seeks)


class WorkFolder:
    def __init__(self, output, settings: dict, resume: bool = True):
        self.output = os.fspath(output)
        self.path = folder_for(output)
        self.settings = json.loads(json.dumps(settings, sort_keys=True, default=str))
        self.resume = resume
        self.segments: List[Segment] = []
        self.total: Optional[int] = None      # the frame count, once every frame is in a segment
        self.reason: Optional[str] = None     # why an earlier run's segments were not reused
        self._lock = None

    # --- state ---------------------------------------------------------------------------------
    @property
    def frames_done(self) -> int:
        return sum(s.frames for s in self.segments)

    @property
    def complete(self) -> bool:
        return self.total is not None and self.total == self.frames_done

    @property
    def last_pts(self) -> Optional[int]:
        """The input timestamp of the last frame done (None: none, or it had none)."""
        return self.segments[-1].last_pts if self.segments else None

    def parts(self) -> list:
        """(path, offset) of the segments, in order (media.join)."""
        return [(os.path.join(self.path, s.file), s.offset) for s in self.segments]

    def note(self) -> str:
        """How to go on after an interruption (empty when nothing is kept)."""
        return _note(self.frames_done, self.path)

    # --- the folder ----------------------------------------------------------------------------
    def open(self) -> None:
        """Create or take over the folder (locked), keeping an earlier run's segments when its
        settings are these (``reason`` says why not otherwise)."""
        if os.path.lexists(self.path) and not os.path.isdir(self.path):
            raise VideoError(f"{self.output}: {self.path} is in the way of the work folder (not a folder); "
                             "move it away")
        try:
            os.makedirs(self.path, exist_ok=True)
            self._lock = open(os.path.join(self.path, LOCK), "a+b")
        except OSError as e:
            raise VideoError(f"{self.output}: cannot create the work folder {self.path} ({e.strerror or e})") from None
        _lock(self._lock, self.output, self.path)
        earlier = self._read()
        if earlier is not None:
            segments, total, why = earlier
            if why is None and not self.resume:
                why = "resume is off"
            if why is None:
                self.segments, self.total = segments, total
            elif segments:
                self.reason = (f"{self.output}: not resuming the {sum(s.frames for s in segments)} frames in "
                               f"{self.path}: {why}; starting over")
        self._sweep()
        self.save()

    def _read(self):
        """(segments, total, why not reusable or None) of the manifest there, or None."""
        path = os.path.join(self.path, MANIFEST)
        if not os.path.exists(path):
            return None
        try:
            with open(path, "rb") as f:
                data = json.load(f)
            segments = [Segment(**s) for s in data["segments"]]
            total, settings = data.get("total"), data["settings"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            return [], None, f"its manifest cannot be read ({e})"
        if data.get("format") != FORMAT:
            return segments, None, f"it was written by another version ({data.get('format')})"
        if settings != self.settings:
            changed = _changed(settings, self.settings)
            return segments, None, ("the input changed" if "input" in changed else
                                    "it was made with other settings (" + ", ".join(changed) + ")")
        kept, first = [], 0          # whole segments, in order, up to the first one missing
        for s in segments:
            if s.first != first or s.frames <= 0 or not os.path.isfile(os.path.join(self.path, s.file)):
                break
            kept.append(s)
            first += s.frames
        return kept, total if len(kept) == len(segments) else None, None

    def _sweep(self) -> None:
        """Remove the segments not reused and unfinished ones (a killed run's)."""
        keep = {s.file for s in self.segments} | {MANIFEST, LOCK}
        for name in os.listdir(self.path):
            if name not in keep and _OURS.match(name):
                try:
                    os.unlink(os.path.join(self.path, name))
                except OSError:
                    pass

    def save(self) -> None:
        data = {"format": FORMAT, "output": os.path.basename(self.output), "settings": self.settings,
                "segments": [asdict(s) for s in self.segments], "total": self.total}
        text = json.dumps(data, indent=1, sort_keys=True).encode()
        atomic_write(os.path.join(self.path, MANIFEST), lambda f: f.write(text), overwrite=True, error=VideoError)

    def add(self, segment: Segment) -> None:
        self.segments.append(segment)
        self.save()

    def finish(self, total: int) -> None:
        """Every frame is in a segment: a rerun only joins them."""
        self.total = total
        self.save()

    def close(self) -> None:
        """Unlock; the folder goes when it keeps nothing."""
        if not self.segments:
            self.remove()
        elif self._lock is not None:
            self._lock.close()
            self._lock = None

    def remove(self) -> None:
        """Remove our files and the folder (the run is done, or kept nothing)."""
        if self._lock is not None:
            self._lock.close()
            self._lock = None
        try:
            names = os.listdir(self.path)
        except OSError:
            return
        for name in names:
            if _OURS.match(name):
                try:
                    os.unlink(os.path.join(self.path, name))
                except OSError:
                    pass
        try:
            os.rmdir(self.path)
        except OSError:
            pass


class SegmentWriter:
    """Frames into the segments of ``work``, ``length`` frames each; use from one thread.
    ``open_writer(file, offset)`` makes the encoder (media.VideoWriter) of one segment,
    ``offset_of(frame)`` gives a frame's output timestamp."""

    def __init__(self, work: WorkFolder, open_writer: Callable, offset_of: Callable, length: int = SEGMENT_FRAMES):
        self.work, self.open_writer, self.offset_of, self.length = work, open_writer, offset_of, length
        self._file = self._writer = self._segment = None

    def write(self, frame, rgb, cut: bool = False, measured: int = 0) -> None:
        if self._writer is None:
            first = self.work.frames_done
            segment = Segment(file=f"seg-{first:08d}.mp4", first=first, frames=0, offset=self.offset_of(frame))
            f = open(self._temporary(segment), "wb")
            try:
                self._writer = self.open_writer(f, segment.offset)
            except BaseException:
                f.close()
                _unlink(self._temporary(segment))
                raise
            self._file, self._segment = f, segment
        self._writer.write(frame, rgb)
        self._segment.frames += 1
        self._segment.last_pts = frame.pts
        self._segment.cuts += int(cut)
        self._segment.measurements += measured
        if self._segment.frames >= self.length:
            self.close()

    def _temporary(self, segment: Segment) -> str:
        return os.path.join(self.work.path, segment.file[:-4] + ".tmp")

    def close(self, finish: bool = True) -> None:
        """Finish the segment being written and record it (or, ``finish`` False or when that
        fails, abandon it)."""
        writer, f, segment = self._writer, self._file, self._segment
        self._writer = self._file = self._segment = None
        if writer is None:
            return
        try:
            try:
                writer.close(finish=finish)
            finally:
                f.flush()
                if finish:
                    os.fsync(f.fileno())
                f.close()
            if finish:
                os.replace(self._temporary(segment), os.path.join(self.work.path, segment.file))
                self.work.add(segment)
                return
        except BaseException:
            _unlink(self._temporary(segment))
            raise
        _unlink(self._temporary(segment))


def _changed(old: dict, new: dict) -> list:
    """The settings that differ, by name (one level into groups of them: given, engine, ...)."""
    names = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if a == b:
            continue
        if key != "input" and isinstance(a, dict) and isinstance(b, dict):
            names += [k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
        else:
            names.append(key)
    return names


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _lock(f, output: str, path: str) -> None:
    if not lock_exclusively(f):
        f.close()
        raise VideoError(f"{output}: another run is writing this output (its work folder {path} is in use)")
