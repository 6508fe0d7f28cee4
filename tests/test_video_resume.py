"""Resumable video runs (deepshop_native/video/segments.py): an interrupted run leaves no file at
the output's name and a work folder; the same call goes on from there to the video an
uninterrupted run makes (frames, timestamps, rate, rotation, audio: read back by PyAV alone);
other settings or a changed input start over.  Short clips made with PyAV (tests/test_video.py)."""
from __future__ import annotations

import json
import os
import warnings

import numpy as np
import pytest

av = pytest.importorskip("av", reason="PyAV is not installed (pip install 'deepshop-native[video]')")
cv2 = pytest.importorskip("cv2", reason="OpenCV is not installed (pip install 'deepshop-native[video]')")

import deepshop_native as ds  # noqa: E402
from deepshop_native.video import segments  # noqa: E402

from test_video import Recorder, make_clip, scene  # noqa: E402


def read(path):
    """(RGB frames, their pts, time base, average rate, rotation, audio packets' bytes) by PyAV alone."""
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        decoded = list(c.decode(v))
        facts = (v.time_base, v.average_rate, decoded[0].rotation if decoded else None)
    with av.open(str(path)) as c:
        audio = [bytes(p) for p in c.demux(*c.streams.audio) if p.size] if c.streams.audio else []
    return [f.to_ndarray(format="rgb24") for f in decoded], [f.pts for f in decoded], facts, audio


def stop_after(k, how="cancel"):
    def progress(done, total):
        if done >= k:
            if how == "cancel":
                return False
            raise KeyboardInterrupt
        return True
    return progress


class Counter(Recorder):
    """The stand-in pipeline, counting the frames it paints."""
    @property
    def painted(self):
        return len(self.shapes)


@pytest.fixture
def clip(photos, tmp_path):
    frames = [scene(photos, shift=(2 * i, i)) for i in range(14)]
    return make_clip(tmp_path / "in.mp4", frames, audio=True, rotation=90)


def work_of(out):
    return segments.folder_for(out)


def kept(out):
    with open(os.path.join(work_of(out), segments.MANIFEST)) as f:
        return sum(s["frames"] for s in json.load(f)["segments"])


def test_a_cancelled_run_goes_on_to_the_video_an_uninterrupted_one_makes(clip, tmp_path, identity_onnx):
    """temporal off, the identity network, x264's lossless crf 0: the frames come back identical."""
    options = dict(model=identity_onnx, temporal="off", crf=0, device="cpu", segment_frames=4)
    whole = ds.stylize_video(clip, tmp_path / "whole.mp4", **options)
    assert whole.frames == 14 and whole.resumed == 0
    assert not os.path.exists(work_of(tmp_path / "whole.mp4"))
    out = tmp_path / "out.mp4"
    with pytest.raises(ds.Cancelled, match="run the same command again"):
        ds.stylize_video(clip, out, progress=stop_after(9), **options)
    assert not out.exists() and not [n for n in os.listdir(tmp_path) if n.endswith(".part")]
    assert kept(out) == 9                         # every frame painted: a full segment, and 5 of the next
    done = 9
    seen = []
    result = ds.stylize_video(clip, out, progress=lambda d, t: seen.append(d), **options)
    assert result.resumed == done and result.frames == 14
    assert seen == list(range(10, 15))            # the progress goes on from the frames kept
    assert not os.path.exists(work_of(out))
    got, pts, facts, audio = read(out)
    want, want_pts, want_facts, want_audio = read(tmp_path / "whole.mp4")
    given, given_pts, given_facts, given_audio = read(clip)
    assert pts == want_pts == given_pts and len(got) == 14
    assert facts == want_facts and facts[1:] == (given_facts[1], 90)
    assert audio == want_audio == given_audio and len(audio) > 3
    for a, b in zip(got, want):
        assert np.array_equal(a, b)


def test_a_resumed_decoder_seeks_to_the_frame_after_the_last_one_done(photos, tmp_path):
    """A clip with a key frame every 4 frames: decoding after frame 9 begins at frame 8's key
    frame and gives frames 10.. (their pts and pixels as a decoding from the start gives them);
    a timestamp that is not there falls back to decoding every frame, the done ones unconverted."""
    from deepshop_native.video import media
    path = tmp_path / "gop.mp4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=12)
        stream.width, stream.height, stream.pix_fmt = 96, 64, "yuv420p"
        stream.options = {"crf": "10", "g": "4", "keyint_min": "4", "sc_threshold": "0"}
        for i in range(16):
            f = av.VideoFrame.from_ndarray(scene(photos, shift=(2 * i, 0)), format="rgb24")
            f.pts = i
            out.mux(stream.encode(f))
        out.mux(stream.encode(None))
    info = media.probe(path)
    every = list(media.decode_frames(info))
    with av.open(str(path)) as c:
        keys = [f.pts for f in c.decode(video=0) if f.key_frame]
    assert len(keys) >= 3 and every[8].pts in keys                 # frame 8 begins a group
    resumed = list(media.decode_frames(info, skip=10, after=every[9].pts))
    assert [f.index for f in resumed] == list(range(10, 16))
    assert [f.pts for f in resumed] == [f.pts for f in every[10:]]
    assert all(np.array_equal(a.rgb, b.rgb) for a, b in zip(resumed, every[10:]))
    missed = list(media.decode_frames(info, skip=10, after=every[9].pts + 1))
    assert [f.index for f in missed] == list(range(16)) and [f.rgb is None for f in missed] == [True] * 10 + [False] * 6


def test_ctrl_c_keeps_the_work_and_the_rerun_paints_only_the_rest(clip, tmp_path):
    out = tmp_path / "out.mov"
    first = Counter()
    with pytest.raises(KeyboardInterrupt) as caught:
        ds.stylize_video(clip, out, pipeline=first, temporal="flow", segment_frames=3, progress=stop_after(8, "raise"))
    assert any("run the same command again" in n for n in getattr(caught.value, "__notes__", []))
    assert not out.exists() and os.path.isdir(work_of(out))
    done = kept(out)
    assert done == 8
    second = Counter()
    result = ds.stylize_video(clip, out, pipeline=second, temporal="flow", segment_frames=3)
    assert second.painted == 14 - done == result.frames - result.resumed
    assert result.cuts == 0                                  # the point it went on from is no scene cut
    assert second.shapes[0] == (96, 64, 3)                  # painted upright, as before
    got, pts, facts, audio = read(out)
    given, given_pts, given_facts, given_audio = read(clip)
    assert pts == given_pts and facts[1:] == (given_facts[1], 90) and audio == given_audio
    assert [g.shape for g in got] == [(64, 96, 3)] * 14       # stored as before, turned by the tag


def test_the_shot_statistics_start_again_where_a_run_went_on(clip, tmp_path):
    """stats mode, the bundled style (a global-statistics graph), measured every 8 frames: the
    whole run measures frames 0 and 8; stopped after 5 frames, the first run measured frame 0 and
    the second measures frames 5 (its first frame, taken as a cut) and 13."""
    stylizer = ds.Stylizer(device="cpu")
    whole = ds.stylize_video(clip, tmp_path / "whole.mp4", pipeline=stylizer, temporal="stats")
    assert whole.measurements == 2
    out = tmp_path / "out.mp4"
    with pytest.raises(ds.Cancelled):
        ds.stylize_video(clip, out, pipeline=stylizer, temporal="stats", segment_frames=3, progress=stop_after(5))
    assert kept(out) == 5
    result = ds.stylize_video(clip, out, pipeline=stylizer, temporal="stats", segment_frames=3)
    assert (result.resumed, result.frames, result.measurements, result.cuts) == (5, 14, 3, 0)


def test_a_run_stopped_while_joining_only_joins_again(clip, tmp_path, monkeypatch):
    from deepshop_native.video import media
    out = tmp_path / "out.mkv"
    join = media.join

    def stopped(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(media, "join", stopped)
    with pytest.raises(KeyboardInterrupt):
        ds.stylize_video(clip, out, pipeline=Counter(), temporal="off", segment_frames=5)
    assert kept(out) == 14 and not out.exists()
    monkeypatch.setattr(media, "join", join)
    counter = Counter()
    result = ds.stylize_video(clip, out, pipeline=counter, temporal="off", segment_frames=5)
    assert counter.painted == 0 and result.resumed == result.frames == 14
    got, pts, facts, audio = read(out)
    assert len(got) == 14 and facts[2] == 90 and audio == read(clip)[3]


def test_other_settings_or_another_input_start_over(clip, photos, tmp_path):
    out = tmp_path / "out.mp4"
    notes = []

    def interrupted(**options):
        with pytest.raises(ds.Cancelled):
            ds.stylize_video(clip, out, pipeline=Counter(), temporal="off", segment_frames=2, progress=stop_after(6),
                             overwrite=True,
                             **options)
        assert kept(out) >= 2

    interrupted(crf=20)
    counter = Counter()
    result = ds.stylize_video(clip, out, pipeline=counter, temporal="off", crf=21, notice=notes.append, overwrite=True)
    assert result.resumed == 0 and counter.painted == 14
    assert "starting over" in notes[-1] and "(crf)" in notes[-1] and str(out) in notes[-1]

    interrupted()
    make_clip(clip, [scene(photos, shift=(i, 2 * i)) for i in range(14)], audio=True, rotation=90)  # replaced
    result = ds.stylize_video(clip, out, pipeline=Counter(), temporal="off", notice=notes.append, overwrite=True)
    assert result.resumed == 0 and "the input changed" in notes[-1]

    interrupted()
    with warnings.catch_warnings(record=True) as caught:      # no notice=: a VideoNote warning
        warnings.simplefilter("always")
        result = ds.stylize_video(clip, out, pipeline=Counter(), temporal="off", resume=False, overwrite=True)
    assert result.resumed == 0 and "resume is off" in str(caught[-1].message)
    assert not os.path.exists(work_of(out))


def test_a_second_run_of_the_same_output_is_refused_while_one_runs(clip, tmp_path):
    out = tmp_path / "out.mp4"
    first = segments.WorkFolder(out, {"a": 1})
    first.open()
    try:
        with pytest.raises(ds.VideoError, match="another run is writing"):
            ds.stylize_video(clip, out, pipeline=Counter(), temporal="off")
    finally:
        first.remove()
    assert not os.path.exists(work_of(out))


def test_the_command_resumes(clip, tmp_path, identity_onnx, capsys, monkeypatch):
    from deepshop_native import video
    from deepshop_native.cli import main
    out = tmp_path / "cli.mp4"
    argv = ["video", clip, "-o", str(out), "-m", identity_onnx, "--temporal", "off", "--device", "cpu"]
    whole = video.stylize_video

    def cancelled(*args, **kwargs):      # the command, stopped after 6 frames
        return whole(*args, **{**kwargs, "progress": stop_after(6), "segment_frames": 4})
    monkeypatch.setattr(video, "stylize_video", cancelled)
    assert main(argv) == 1
    assert "run the same command again" in capsys.readouterr().err
    done = kept(out)
    monkeypatch.setattr(video, "stylize_video", whole)
    assert main(argv) == 0
    assert f"went on from frame {done + 1}" in capsys.readouterr().err
    assert len(read(out)[0]) == 14 and not os.path.exists(work_of(out))
    assert main(argv + ["--overwrite", "--no-resume", "-q"]) == 0
