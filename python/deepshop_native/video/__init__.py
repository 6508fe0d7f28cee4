"""Video: ``ds.stylize_video`` and `deepshop video` (docs/guides/video.md).

    media.py     what a file holds, decoding to RGB, encoding, joining segments, the audio copied (PyAV)
    temporal.py  temporal consistency: scene cuts, shot statistics, optical-flow blending
    stages.py    threads joined by bounded queues (decode, analyse, stylize, encode at once)
    segments.py  the work folder beside the output: segments encoded so far and their manifest
    driver.py    stylize_video: the stages, the pipeline, the segments, the atomic output

A layer above pipelines/ and models/ (it paints through models.styles.open_styled), beside api.
PyAV and OpenCV are imported on first use (the ``video`` extra).
"""
from .driver import VideoResult, open_video_pipeline, stylize_video
from .temporal import DEFAULT_MODE, MODES

__all__ = ["stylize_video", "VideoResult", "open_video_pipeline", "MODES", "DEFAULT_MODE"]
