"""`deepshop video` and ds.stylize_video (deepshop_native/video): short clips made here with PyAV
(a few frames, small sizes), checked against what PyAV reads back on its own, numpy and OpenCV.
Skipped without PyAV or OpenCV (the `video` extra)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from fractions import Fraction

import numpy as np
import pytest

av = pytest.importorskip("av", reason="PyAV is not installed (pip install 'deepshop-native[video]')")
cv2 = pytest.importorskip("cv2", reason="OpenCV is not installed (pip install 'deepshop-native[video]')")

import deepshop_native as ds  # noqa: E402
from deepshop_native.video import media, temporal  # noqa: E402


# ------------------------------------------------------------------ clips made with PyAV alone

def scene(photos, width=96, height=64, shift=(0, 0)):
    """A crop of the astronaut photo moved by ``shift`` (x, y) pixels: a textured frame."""
    img = photos["astronaut"][::3, ::3]
    x, y = 40 + shift[0], 30 + shift[1]
    return np.ascontiguousarray(img[y:y + height, x:x + width])


def make_clip(path, frames, rate=12, audio=False, rotation=None, crf=10):
    """Frames (RGB uint8) into a video with libx264 (BT.601, limited range, as PyAV converts by
    default), a display rotation and an AAC tone of the clip's length when asked."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=rate)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p" if frames[0].shape[0] % 2 == 0 and frames[0].shape[1] % 2 == 0 else "yuv444p"
        stream.options = {"crf": str(crf)}
        if rotation is not None:
            stream.set_display_rotation(rotation)
        sound = None
        if audio:
            sound = out.add_stream("aac", rate=8000)
            sound.layout = "mono"
        for i, rgb in enumerate(frames):
            f = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            f.pts = i
            out.mux(stream.encode(f))
        out.mux(stream.encode(None))
        if sound is not None:
            n = int(8000 * len(frames) / rate)
            tone = (0.3 * np.sin(np.arange(n) * 2 * np.pi * 440 / 8000)).astype(np.float32)[None]
            frame = av.AudioFrame.from_ndarray(tone, format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 8000, 0
            out.mux(sound.encode(frame))
            out.mux(sound.encode(None))
    return str(path)


def read_back(path):
    """(frames as RGB by PyAV's own conversion, the video stream's facts, audio packets' bytes)."""
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        facts = dict(width=v.codec_context.width, height=v.codec_context.height, rate=v.average_rate,
                     audio=[s.codec_context.name for s in c.streams.audio])
        frames, rotation = [], None
        for f in c.decode(v):
            frames.append(f.to_ndarray(format="rgb24"))
            rotation = f.rotation
        facts["rotation"] = rotation
    with av.open(str(path)) as c:
        packets = [bytes(p) for p in c.demux(*c.streams.audio) if p.size] if c.streams.audio else []
    return frames, facts, packets


def one_generation(frames, path, rate=12, crf=18):
    """``frames`` encoded once more and read back by PyAV alone: the loss one more 4:2:0 x264
    generation causes by itself (chroma subsampling shifts the mean of a small, sharp crop by about
    a level), the reference an unchanged frame written by stylize_video is held to."""
    got, _, _ = read_back(make_clip(path, list(frames), rate=rate, crf=crf))
    return np.stack(got).astype(float)


class Recorder:
    """A stand-in pipeline: returns the frame it is given and notes its shape."""
    has_statistics = False
    device_used = "cpu"
    working_size = 0
    model_path = "recorder"

    def __init__(self):
        self.shapes = []

    def run(self, pixels, strength=1.0, statistics=None):
        self.shapes.append(pixels.shape)
        return pixels.copy()


@pytest.fixture
def moving(photos, tmp_path):
    frames = [scene(photos, shift=(2 * i, i)) for i in range(12)]
    return make_clip(tmp_path / "moving.mp4", frames, audio=True), frames


# ------------------------------------------------------------------ what is kept

def test_frames_size_rate_and_audio_are_kept(moving, tmp_path, identity_onnx):
    clip, frames = moving
    out = tmp_path / "out.mp4"
    result = ds.stylize_video(clip, out, model=identity_onnx, temporal="off", device="cpu")
    assert result.frames == 12 and out.is_file()
    got, facts, packets = read_back(out)
    given, given_facts, given_packets = read_back(clip)
    assert len(got) == 12
    assert (facts["width"], facts["height"]) == (96, 64)
    assert facts["rate"] == Fraction(12)
    assert facts["audio"] == ["aac"]
    assert packets == given_packets and len(packets) > 3       # the audio's packets, byte for byte
    # The identity model: the frames come back as they went in, within what one more generation
    # of the codec costs on its own (a wrong colour matrix or range would shift levels by several).
    reference = one_generation(given, tmp_path / "reference.mp4")
    given = np.stack(given).astype(float)
    got = np.stack(got).astype(float)
    assert np.abs(got - given).mean() < np.abs(reference - given).mean() + 0.5
    assert abs(got.mean() - reference.mean()) < 0.3                  # no colour shift of our own
    assert np.abs(got.mean(axis=(0, 1, 2)) - reference.mean(axis=(0, 1, 2))).max() < 0.5


def test_rotation_is_kept_and_frames_are_painted_upright(photos, tmp_path):
    frames = [scene(photos, shift=(i, 0)) for i in range(4)]            # stored 96 x 64
    clip = make_clip(tmp_path / "phone.mp4", frames, rotation=90)
    recorder = Recorder()
    out = tmp_path / "out.mov"
    ds.stylize_video(clip, out, pipeline=recorder, temporal="off")
    assert recorder.shapes == [(96, 64, 3)] * 4                         # shown upright: 64 wide, 96 high
    got, facts, _ = read_back(out)
    assert (facts["width"], facts["height"], facts["rotation"]) == (96, 64, 90)
    given, _, _ = read_back(clip)
    reference = one_generation(given, tmp_path / "reference.mp4")
    given = np.stack(given).astype(float)
    # turned back before encoding: as close to the input as one more generation of the codec
    assert np.abs(np.stack(got) - given).mean() < np.abs(reference - given).mean() + 0.5
    assert media.probe(out).display_matrix == media.probe(clip).display_matrix


def test_odd_sizes_are_kept(photos, tmp_path):
    frames = [scene(photos, 63, 45, shift=(i, 0)) for i in range(3)]
    clip = make_clip(tmp_path / "odd.mkv", frames)
    out = tmp_path / "odd_out.mkv"
    ds.stylize_video(clip, out, pipeline=Recorder(), temporal="off")
    got, facts, _ = read_back(out)
    assert (facts["width"], facts["height"], len(got)) == (63, 45, 3)


def test_a_part_of_the_video(photos, tmp_path):
    # Frame i shows a white bar at column 4 i: the output's first frame must be input frame 5.
    frames = []
    for i in range(20):
        f = np.full((32, 96, 3), 40, np.uint8)
        f[:, 4 * i:4 * i + 4] = 255
        frames.append(f)
    clip = make_clip(tmp_path / "bars.mp4", frames, rate=10, audio=True)
    out = tmp_path / "part.mp4"
    result = ds.stylize_video(clip, out, pipeline=Recorder(), temporal="off", start=0.5, duration=1.0)
    got, facts, packets = read_back(out)
    assert result.frames == len(got) == 10
    assert [int(np.argmax(g[16, :, 0].astype(int))) // 4 for g in got] == list(range(5, 15))
    with av.open(str(out)) as c:
        a = c.streams.audio[0]
        seconds = float(sum(p.duration for p in c.demux(a) if p.size) * a.time_base)
    assert 0.85 < seconds < 1.2, seconds


# ------------------------------------------------------------------ refusals and cancellation

def test_cancelling_leaves_no_output_only_the_work_folder(moving, tmp_path):
    clip, _ = moving
    out = tmp_path / "cancelled.mp4"
    with pytest.raises(ds.Cancelled):
        ds.stylize_video(clip, out, pipeline=Recorder(), temporal="off", progress=lambda done, total: done < 3)
    assert sorted(os.listdir(tmp_path)) == [".cancelled.mp4.deepshop-partial", "moving.mp4"]

    def interrupt(done, total):
        if done == 2:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        ds.stylize_video(clip, out, pipeline=Recorder(), temporal="flow", progress=interrupt, notice=print)
    assert sorted(os.listdir(tmp_path)) == [".cancelled.mp4.deepshop-partial", "moving.mp4"]
    # Stopped before any frame was painted: nothing to keep, no folder.
    with pytest.raises(ds.VideoError, match="no video frames to stylize from 100 s"):
        ds.stylize_video(clip, tmp_path / "other.mp4", pipeline=Recorder(), start=100)
    assert sorted(os.listdir(tmp_path)) == [".cancelled.mp4.deepshop-partial", "moving.mp4"]


def test_sigterm_leaves_no_output_and_the_same_command_goes_on(moving, tmp_path, identity_onnx):
    """The command, stopped by SIGTERM while it writes: status 143, no output, no temporary file,
    the work folder and how to go on; run again, it paints the rest."""
    clip, _ = moving
    argv = ["video", clip, "-o", str(tmp_path / "out.mp4"), "-m", identity_onnx, "--temporal", "off", "--device", "cpu"]
    code = textwrap.dedent(f"""
        import sys, time
        from deepshop_native.video import driver
        slow = driver._Run._encode
        driver._Run._encode = lambda self, writer, item: (time.sleep(0.5), slow(self, writer, item))
        from deepshop_native.cli import main
        sys.exit(main({argv!r}))
    """)
    work = tmp_path / ".out.mp4.deepshop-partial"
    proc = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and not (work.is_dir() and any(n.endswith(".tmp") for n in os.listdir(work))):
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "terminated" in err and "Traceback" not in err and "run the same command again" in err
    assert sorted(os.listdir(tmp_path)) == [".out.mp4.deepshop-partial", "moving.mp4"]
    from deepshop_native.cli import main
    assert main(argv) == 0
    assert len(read_back(tmp_path / "out.mp4")[0]) == 12
    assert sorted(os.listdir(tmp_path)) == ["moving.mp4", "out.mp4"]


def test_corrupt_files_give_an_error_naming_the_file(moving, tmp_path):
    clip, _ = moving
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(np.random.default_rng(0).bytes(4000))
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(open(clip, "rb").read()[:1500])
    for bad in (garbage, truncated):
        with pytest.raises(ds.VideoError, match=str(bad)):
            ds.stylize_video(bad, tmp_path / "out.mp4", pipeline=Recorder(), temporal="off")
    with pytest.raises(ds.VideoError, match="no such video file"):
        ds.stylize_video(tmp_path / "missing.mp4", tmp_path / "out.mp4", pipeline=Recorder())
    assert not (tmp_path / "out.mp4").exists()


def test_a_file_without_video_gives_an_error(tmp_path):
    path = tmp_path / "sound.m4a"
    with av.open(str(path), "w") as out:
        s = out.add_stream("aac", rate=8000)
        s.layout = "mono"
        f = av.AudioFrame.from_ndarray(np.zeros((1, 4000), np.float32), format="fltp", layout="mono")
        f.sample_rate, f.pts = 8000, 0
        out.mux(s.encode(f))
        out.mux(s.encode(None))
    with pytest.raises(ds.VideoError, match=f"{path}: has no video stream"):
        ds.stylize_video(path, tmp_path / "out.mp4", pipeline=Recorder())


def test_outputs_are_never_an_input_nor_replaced_without_overwrite(moving, tmp_path, identity_onnx):
    clip, _ = moving
    with pytest.raises(ds.DeepshopError, match="is the input"):
        ds.stylize_video(clip, clip, pipeline=Recorder(), overwrite=True)
    existing = tmp_path / "existing.mp4"
    existing.write_bytes(b"keep me")
    with pytest.raises(ds.OutputExistsError):
        ds.stylize_video(clip, existing, pipeline=Recorder())
    assert existing.read_bytes() == b"keep me"
    ds.stylize_video(clip, existing, pipeline=Recorder(), temporal="off", overwrite=True)
    assert media.probe(existing).width == 96
    with pytest.raises(ds.OptionError, match="unknown video extension"):
        ds.stylize_video(clip, tmp_path / "out.gif", pipeline=Recorder())
    with pytest.raises(ds.OptionError, match="temporal: stats needs a global-statistics graph"):
        ds.stylize_video(clip, tmp_path / "o.mp4", model=identity_onnx, temporal="stats", device="cpu")
    for bad in (dict(crf=99), dict(crf=20, bitrate="8M"), dict(bitrate="fast"), dict(start=-1), dict(duration=0),
                dict(temporal="smooth"), dict(blend=1.5), dict(strength=2)):
        with pytest.raises(ds.OptionError):
            ds.stylize_video(clip, tmp_path / "o.mp4", pipeline=Recorder(), **bad)


# ------------------------------------------------------------------ the temporal modes

def test_scene_cuts_are_found_between_photos_not_within_a_pan(photos):
    cuts = temporal.SceneCuts()
    pan = [scene(photos, shift=(3 * i, 0)) for i in range(8)]
    other = [np.ascontiguousarray(photos["coffee"][100 + 2 * i:164 + 2 * i, 200:296]) for i in range(5)]
    found = [cuts(f) for f in pan + other + pan[:3]]
    assert [i for i, c in enumerate(found) if c] == [0, 8, 13]


def test_shot_statistics_pool_the_frames_measured():
    rng = np.random.default_rng(1)
    samples = [rng.normal(m, s, (500, 4)) for m, s in ((0, 1), (3, 2), (-1, 0.5), (9, 9))]
    frames = iter(samples)
    measured = []

    def measure(frame):
        x = next(frames)
        measured.append(x)
        return x.mean(axis=0), x.var(axis=0)
    shots = temporal.ShotStatistics(measure, every=2)
    got = [shots(None, cut) for cut in (True, False, False, False, True)]
    # frames 0, 2 measured in the first shot; frame 4 starts a new one
    union = np.concatenate(samples[:2])
    np.testing.assert_allclose(got[1][0], samples[0].mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(got[3][0], union.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(got[3][1], union.var(axis=0), rtol=1e-5)
    np.testing.assert_allclose(got[4][1], samples[2].var(axis=0), rtol=1e-5)
    assert shots.measurements == 3


def test_motion_is_found_and_trusted_where_it_can_be(photos):
    estimate = temporal.MotionEstimator()
    before = scene(photos, 128, 96)
    after = scene(photos, 128, 96, shift=(3, -2))     # the camera moved: content goes (-3, +2)
    assert estimate(before, cut=True) is None
    motion = estimate(after, cut=False)
    inner = (slice(16, -16), slice(16, -16))
    np.testing.assert_allclose(np.median(motion.flow[inner].reshape(-1, 2), axis=0), (3, -2), atol=0.25)
    assert motion.reliable[inner].mean() > 0.85
    # The last 3 columns show what the previous frame did not: nothing to carry there.
    assert motion.reliable[20:-20, -2:].mean() < 0.3


def test_flow_blending_carries_the_strokes_along_the_motion(photos):
    """Fine detail comes from the previous painted frame moved by the motion, coarse colour from the
    current one: checked against numpy's exact shift and OpenCV's Gaussian."""
    blender = temporal.FlowBlender(blend=0.6)
    first = scene(photos)
    second = scene(photos, shift=(2, 0))
    blender(first, None)
    h, w = first.shape[:2]
    motion = temporal.Motion(flow=np.tile(np.float32([-2, 0]), (h, w, 1)), reliable=np.ones((h, w), np.float32),
                             scale=1.0)
    got = blender(second, motion)
    # the first frame moved 2 px right, its left column repeated into the gap
    carried = np.concatenate([first[:, :1], first[:, :1], first[:, :-2]], axis=1).astype(np.float32)
    d = carried - second
    sigma = temporal.DETAIL
    expected = np.clip(second + 0.6 * (d - cv2.GaussianBlur(d, (0, 0), sigma)), 0, 255)
    np.testing.assert_allclose(got.astype(float), expected, atol=0.51)
    assert np.array_equal(blender(second, None), second)             # a cut: the painting as it is


def test_flow_blending_follows_light_and_keeps_strokes():
    """A still picture that brightens by 40 levels: the output brightens with it (the coarse band is
    the current frame's) while its texture stays the first frame's, at full contrast."""
    rng = np.random.default_rng(3)
    texture = rng.integers(-40, 40, (48, 64, 3))
    first = np.clip(100 + texture, 0, 255).astype(np.uint8)
    other = np.clip(140 + rng.integers(-40, 40, (48, 64, 3)), 0, 255).astype(np.uint8)   # new strokes, brighter
    blender = temporal.FlowBlender()
    blender(first, None)
    still = temporal.Motion(flow=np.zeros((48, 64, 2), np.float32), reliable=np.ones((48, 64), np.float32), scale=1.0)
    got = blender(other, still).astype(float)
    inner = (slice(8, -8), slice(8, -8))
    assert abs(got[inner].mean() - other[inner].mean()) < 2.0                      # the light of now
    strokes = got - cv2.GaussianBlur(got, (0, 0), temporal.DETAIL)
    old = first - cv2.GaussianBlur(first.astype(float), (0, 0), temporal.DETAIL)
    assert np.corrcoef(strokes[inner].ravel(), old[inner].ravel())[0, 1] > 0.95       # the strokes of before
    assert strokes[inner].std() > 0.9 * old[inner].std()                            # not washed out


def test_flow_blending_resamples_strokes_once_along_a_shot():
    """Texture gliding 0.5 px a frame for 16 frames under freshly painted (other) strokes every
    frame: the output's strokes are the first frame's moved 8 px, at full contrast.  Warping the
    previous output every frame instead blurs them a little more at every half-pixel step."""
    rng = np.random.default_rng(5)
    h, w, steps = 48, 96, 16
    first = np.clip(128 + rng.normal(0, 30, (h, w, 3)), 0, 255).astype(np.uint8)
    glide = temporal.Motion(flow=np.tile(np.float32([-0.5, 0]), (h, w, 1)), reliable=np.ones((h, w), np.float32),
                            scale=1.0)
    blender = temporal.FlowBlender()
    blender(first, None)
    for _ in range(steps):
        fresh = np.clip(128 + rng.normal(0, 30, (h, w, 3)), 0, 255).astype(np.uint8)   # the boiling painting
        got = blender(fresh, glide).astype(float)
    strokes = got - cv2.GaussianBlur(got, (0, 0), temporal.DETAIL)
    moved = first[:, :-8].astype(float)                                  # the first frame, 8 px right
    old = moved - cv2.GaussianBlur(moved, (0, 0), temporal.DETAIL)
    inner = (slice(8, -8), slice(24, -8))
    a, b = strokes[:, 8:][inner], old[inner]
    assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.97
    assert a.std() > 0.95 * b.std()
    assert blender.anchors == 1                                          # the whole shot traced to frame 0


def test_flow_blending_moves_its_anchor_when_the_picture_has_moved_on():
    """A pan of 6 px a frame over a 48 px wide frame: after 5 frames less than half of it (18 of 48
    columns) traces back to the first, and the anchor moves to the newest output."""
    h, w = 32, 48
    frame = np.full((h, w, 3), 100, np.uint8)
    pan = temporal.Motion(flow=np.tile(np.float32([6, 0]), (h, w, 1)), reliable=np.ones((h, w), np.float32),
                          scale=1.0)
    blender = temporal.FlowBlender()
    blender(frame, None)
    counts = []
    for _ in range(6):
        blender(frame, pan)
        counts.append(blender.anchors)
    assert counts == [1, 1, 1, 1, 2, 2], counts
    blender(frame, None)                                                 # a cut
    assert blender.anchors == 3


def test_flow_mode_flickers_less_on_a_pan(photos, tmp_path):
    """The bundled style (a global-statistics graph) on an 8-frame pan: the painted frames agree
    with the previous ones moved by the true motion (Lai et al.'s warping error) better with flow
    than frame by frame.  (How stats compares is a measure, not a test: docs/results/video.md.)"""
    frames = [scene(photos, shift=(2 * i, 0)) for i in range(8)]
    clip = make_clip(tmp_path / "pan.mp4", frames)
    stylizer = ds.Stylizer(device="cpu")
    assert stylizer.has_statistics
    errors = {}
    for mode in ("off", "stats", "flow"):
        out = tmp_path / f"{mode}.mp4"
        result = ds.stylize_video(clip, out, pipeline=stylizer, temporal=mode, crf=0)
        assert result.statistics == (mode != "off") and result.frames == 8
        assert result.measurements == (0 if mode == "off" else 1)     # one shot, measured every 8th frame
        got, _, _ = read_back(out)
        a = np.stack(got[1:]).astype(float)[:, :, 8:-8]
        b = np.stack(got[:-1]).astype(float)[:, :, 10:-6]             # content moved 2 px left
        errors[mode] = float(((a - b) ** 2).mean())
    assert errors["flow"] < 0.5 * errors["off"], errors


# ------------------------------------------------------------------ the command

def test_the_command(moving, tmp_path, identity_onnx, capsys):
    from deepshop_native.cli import main
    clip, _ = moving
    out = tmp_path / "cli.mp4"
    assert main(["video", clip, "-o", str(out), "-m", identity_onnx, "--temporal", "off", "-q", "--device",
                 "cpu"]) == 0
    assert media.probe(out).audio
    assert main(["video", clip, "-o", str(out), "-m", identity_onnx, "-q"]) == 1
    assert "exists" in capsys.readouterr().err
    assert main(["video", clip, "-o", str(tmp_path / "x.mp4"), "--crf", "99"]) == 1
    assert "--crf: must be from 0 to 63" in capsys.readouterr().err
    assert main(["video", str(tmp_path / "none.mp4"), "-q"]) == 1
    assert "none.mp4: no such video file" in capsys.readouterr().err
    from deepshop_native.cli.video import default_output
    assert default_output("/a/b/clip.MOV") == "/a/b/clip_styled.MOV"
    assert default_output("/a/b/clip.avi") == "/a/b/clip_styled.mp4"
