"""deepshop serve with a model that takes a style image (MSG-Net, a small random one exported once per
session by conftest): uploads of paintings, concurrent requests with different paintings on one
shared pipeline (each gets its own style), a catalogue style backed by a painting, and the errors."""
from __future__ import annotations

import io
import threading

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi")
pytest.importorskip("httpx")
pytest.importorskip("python_multipart")
pytest.importorskip("torch")

from fastapi.testclient import TestClient  # noqa: E402

import deepshop_native as ds  # noqa: E402
from deepshop_native.serve.app import ServerConfig, create_app  # noqa: E402
from deepshop_native.serve.catalogue import Catalogue, Style, default_catalogue  # noqa: E402
from deepshop_native.image import encode_image, read_image  # noqa: E402
from serve_helpers import assert_clean_error, decoded, encoded  # noqa: E402


def _resized(arr, w, h):
    return np.asarray(Image.fromarray(arr).resize((w, h), Image.LANCZOS))


@pytest.fixture(scope="module")
def paintings(photos):
    return {"coffee.png": encoded(_resized(photos["coffee"], 96, 64)),
            "chelsea.png": encoded(_resized(photos["chelsea"], 90, 64))}


@pytest.fixture(scope="module")
def portrait(photos):
    """16 bits: the small random MSG-Net paints nearly black, and its styles differ by a fraction of an
    8-bit level; a 16-bit photo gives a 16-bit result in which they differ by tens of levels."""
    return _resized(photos["astronaut"], 100, 132).astype(np.uint16) * 257


def png(arr) -> bytes:
    return encode_image(arr, "PNG")


def read16(data: bytes) -> np.ndarray:
    image = read_image(data)
    assert image.bit_depth == 16
    return image.pixels.astype(int)


@pytest.fixture(scope="module")
def catalogue(msgnet_pair):
    return default_catalogue([msgnet_pair], device="cpu", threads=1)


def _direct(pair, painting: bytes, photo: np.ndarray) -> np.ndarray:
    net = ds.StyleNet(pair, device="cpu", threads=1)
    net.set_style(io.BytesIO(painting))
    return net(photo)


def test_models_and_styles_listing(catalogue):
    with TestClient(create_app(ServerConfig(catalogue=catalogue))) as c:
        assert [(m["name"], m["takes_style_image"]) for m in c.get("/v1/models").json()] == [
            ("default_style", False), ("msg", True)]
        assert [s["name"] for s in c.get("/v1/styles").json()] == ["default_style"]


def test_concurrent_paintings_each_get_their_own_style(catalogue, msgnet_pair, paintings, portrait):
    results = []
    with TestClient(create_app(ServerConfig(catalogue=catalogue, workers=2))) as c:
        def one(name):
            results.append((name, c.post("/v1/stylize", files={"photo": ("me.png", png(portrait)),
                                                          "style_image": (name, paintings[name])})))
        threads = [threading.Thread(target=one, args=(name,)) for name in paintings for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        plain = c.post("/v1/stylize", files={"photo": ("me.png", png(portrait)),
                                             "style_image": ("coffee.png", paintings["coffee.png"])},
                       data={"model": "msg"})
    outs = {}
    assert len(results) == 4
    for name, r in results:
        assert r.status_code == 200, r.text
        outs[name] = read16(r.content)
        expected = _direct(msgnet_pair, paintings[name], portrait).astype(int)
        assert outs[name].shape == portrait.shape and np.abs(outs[name] - expected).max() <= 2
    assert np.abs(outs["coffee.png"] - outs["chelsea.png"]).mean() > 5      # each got its own painting
    assert np.abs(read16(plain.content) - outs["coffee.png"]).max() <= 2
    # the shared pipeline never took a request's style: each request set it on its own shallow copy
    assert catalogue.model("msg").open().gram is None


def test_a_catalogue_style_backed_by_a_painting(catalogue, msgnet_pair, paintings, portrait, tmp_path):
    painting = tmp_path / "coffee.png"
    painting.write_bytes(paintings["coffee.png"])
    msg = catalogue.model("msg")
    cat = Catalogue(styles=[Style("coffee_painting", "the coffee photo as a painting", msg, style_image=str(painting))],
                    models=catalogue.models)
    with TestClient(create_app(ServerConfig(catalogue=cat))) as c:
        assert [s["name"] for s in c.get("/v1/styles").json()] == ["coffee_painting"]
        thumb = c.get("/v1/styles/coffee_painting/thumbnail")
        assert thumb.status_code == 200 and decoded(thumb.content).shape == (160, 240, 3)
        r = c.post("/v1/stylize", files={"photo": ("me.png", png(portrait))}, data={"style": "coffee_painting"})
    expected = _direct(msgnet_pair, paintings["coffee.png"], portrait).astype(int)
    assert np.abs(read16(r.content) - expected).max() <= 2


def test_style_image_errors(catalogue, paintings, portrait, msgnet_pair):
    gray = encoded(np.full((64, 64), 128, np.uint8))
    with TestClient(create_app(ServerConfig(catalogue=catalogue, max_pixels=200 * 200))) as c:
        def post(style_image=None, **data):
            files = {"photo": ("me.png", png(portrait))}
            if style_image:
                files["style_image"] = style_image
            return c.post("/v1/stylize", files=files, data=data)
        assert_clean_error(post(model="msg"), 400, msgnet_pair, contains="model 'msg' takes a style image")
        assert_clean_error(post(("gray.png", gray)), 400, msgnet_pair, contains="gray.png: the style image is grayscale")
        assert_clean_error(post(("notes.png", b"not a painting")), 415, contains="notes.png: not an image file")
        big = encoded(np.zeros((201, 200, 3), np.uint8))
        assert_clean_error(post(("huge.png", big)), 413, contains="huge.png: image is 200x201")
        job = c.post("/v1/jobs", files={"photo": ("me.png", png(portrait)), "style_image": ("gray.png", gray)})
        state = [e for e in c.get(job.json()["events"]).text.split("\n") if e.startswith("event:")]
        assert state[-1] == "event: failed" and c.get(job.json()["url"]).json()["error_status"] == 400
