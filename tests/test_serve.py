"""deepshop serve's HTTP API through FastAPI's TestClient: every endpoint, the results against
hand-worked answers (identity and invert models: exact), every error with its status and a clean
message (JSON, the client's file name, no traceback, no server path), the limits, the catalogue.
Concurrency (busy, cancel, time limit, disconnect, expiry, events): test_serve_jobs.py."""
from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi")
pytest.importorskip("httpx")
pytest.importorskip("python_multipart")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

from fastapi.testclient import TestClient  # noqa: E402

import deepshop_native as ds  # noqa: E402
from deepshop_native.serve.app import ServerConfig, create_app  # noqa: E402
from deepshop_native.serve.catalogue import Catalogue, Model, Style, default_catalogue  # noqa: E402
from serve_helpers import assert_clean_error, decoded, encoded, identity, invert_model, photo  # noqa: E402


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("serve_models")
    return folder, identity(folder / "identity.onnx"), invert_model(folder / "invert.onnx")


@pytest.fixture(scope="module")
def catalogue(models):
    _, ident, inv = models
    return default_catalogue([ident, inv], device="cpu", threads=1)


@pytest.fixture(scope="module")
def client(catalogue):
    with TestClient(create_app(ServerConfig(catalogue=catalogue, workers=2, max_pixels=1 << 22))) as c:
        yield c


def post(client, arr=None, *, data=None, name="photo.png", content=None, url="/v1/stylize", **files):
    content = encoded(photo() if arr is None else arr) if content is None else content
    return client.post(url, files={"photo": (name, content, "application/octet-stream"), **files}, data=data or {})


# ------------------------------------------------------------------ endpoints and exact results

def test_healthz_styles_models(client):
    h = client.get("/healthz").json()
    assert h["status"] == "ok" and h["workers"] == 2 and h["queued"] == 0
    styles = client.get("/v1/styles").json()
    assert [s["name"] for s in styles] == ["default_style", "identity", "invert"]
    assert all(s["thumbnail"] == f"/v1/styles/{s['name']}/thumbnail" and s["description"] for s in styles)
    models = client.get("/v1/models").json()
    assert [(m["name"], m["takes_style_image"]) for m in models] == [
        ("default_style", False), ("identity", False), ("invert", False)]
    assert all("/" not in m["description"] for m in models)     # no server path


def test_identity_gives_the_photo_back_exactly(client):
    arr = photo(37, 53)
    r = post(client, arr, data={"style": "identity"})
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert r.headers["content-disposition"] == 'inline; filename="photo_styled.png"'
    np.testing.assert_array_equal(decoded(r.content), arr)


def test_strength_and_preserve_colors_by_hand(client):
    arr = photo(24, 32, seed=3)
    full = decoded(post(client, arr, data={"style": "invert"}).content).astype(int)
    np.testing.assert_allclose(full, 255 - arr.astype(int), atol=1)
    half = decoded(post(client, arr, data={"style": "invert", "strength": "0.5"}).content).astype(int)
    assert np.all(np.abs(half - 127.5) <= 1)        # 0.5 (255 - x) + 0.5 x
    kept = decoded(post(client, arr, data={"style": "invert", "preserve_colors": "true"}).content).astype(float)
    # BT.601 luminance transfer: each channel moves by Y(255 - x) - Y(x) = 255 - 2 Y(x).
    c = arr.astype(float)
    y = 0.299 * c[..., 0] + 0.587 * c[..., 1] + 0.114 * c[..., 2]
    expected = np.clip(c + (255 - 2 * y)[..., None], 0, 255)
    np.testing.assert_allclose(kept, expected, atol=1.01)


def test_default_style_runs_the_bundled_model(client):
    arr = photo(40, 60, seed=1)
    r = post(client, arr)                          # no style: the first of the catalogue
    out = decoded(r.content)
    assert r.status_code == 200 and out.shape == arr.shape and np.abs(out.astype(int) - arr).mean() > 10


@pytest.mark.parametrize("fmt, ctype, pil", [("jpeg", "image/jpeg", "JPEG"), ("png", "image/png", "PNG"),
                                             ("webp", "image/webp", "WEBP")])
def test_formats_and_content_types(client, fmt, ctype, pil):
    r = post(client, photo(), data={"style": "identity", "format": fmt, "quality": "80"})
    assert r.status_code == 200 and r.headers["content-type"] == ctype
    assert Image.open(io.BytesIO(r.content)).format == pil
    assert r.headers["content-disposition"].endswith(f'_styled.{"jpg" if fmt == "jpeg" else fmt}"')


def test_format_follows_the_content_not_the_name(client):
    jpeg = encoded(photo(), "JPEG", quality=90)
    r = post(client, content=jpeg, name="looks_like.png", data={"style": "identity"})
    assert r.headers["content-type"] == "image/jpeg"
    r = post(client, content=encoded(photo()), name="looks_like.jpg", data={"style": "identity"})
    assert r.headers["content-type"] == "image/png"
    r = post(client, content=encoded(photo(), "BMP"), name="x.bmp", data={"style": "identity"})
    assert r.headers["content-type"] == "image/png"         # a format it cannot write: lossless png


def test_alpha_max_side_and_exif_orientation(client):
    rgba = np.dstack([photo(30, 40), np.arange(30 * 40, dtype=np.uint8).reshape(30, 40)])
    out = decoded(post(client, rgba, data={"style": "identity"}).content)
    np.testing.assert_array_equal(out, rgba)                # alpha kept in PNG
    out = decoded(post(client, rgba, data={"style": "identity", "format": "jpeg"}).content)
    assert out.shape == (30, 40, 3)                         # JPEG: no alpha
    r = post(client, photo(100, 200), data={"style": "identity", "max_side": "50"})
    assert decoded(r.content).shape == (25, 50, 3)
    exif = Image.Exif()
    exif[0x0112] = 6                                        # rotate 90 degrees on display
    jpeg = encoded(photo(20, 40), "JPEG", exif=exif.tobytes())
    assert decoded(post(client, content=jpeg, name="r.jpg", data={"style": "identity"}).content).shape[:2] == (40, 20)


def test_thumbnails_are_rendered_once_and_cached(catalogue):
    opened = {"n": 0}
    base = catalogue.model("identity")

    def counting_open():
        opened["n"] += 1
        return base.open()
    model = Model("counted", "counts", counting_open)
    cat = Catalogue(styles=[Style("counted", "counts", model)], models=[model])
    with TestClient(create_app(ServerConfig(catalogue=cat))) as c:
        first = c.get("/v1/styles/counted/thumbnail")
        second = c.get("/v1/styles/counted/thumbnail")
        assert first.status_code == 200 and first.headers["content-type"] == "image/jpeg"
        assert first.content == second.content and opened["n"] == 1
        thumb = decoded(first.content)
        sample = np.asarray(Image.open(ds.__path__[0] + "/serve/static/sample.jpg"))
        assert thumb.shape == sample.shape == (160, 240, 3)
        assert np.abs(thumb.astype(int) - sample).mean() < 3    # identity: the sample photo (JPEG twice)
        assert_clean_error(c.get("/v1/styles/nope/thumbnail"), 404, contains="no style named 'nope'")


def test_page_docs_and_static_files(client):
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    csp = page.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp
    assert page.headers["x-content-type-options"] == "nosniff"
    for asset in ("/static/app.js", "/static/style.css", "/static/docs.js", "/docs"):
        assert client.get(asset).status_code == 200, asset
    for text in (page.text, client.get("/static/app.js").text, client.get("/static/style.css").text,
                 client.get("/docs").text):
        assert "http://" not in text and "https://" not in text and "//cdn" not in text   # nothing from outside
    spec = client.get("/openapi.json").json()
    assert {"/v1/stylize", "/v1/jobs", "/v1/jobs/{job_id}", "/v1/jobs/{job_id}/events", "/v1/jobs/{job_id}/result",
            "/v1/styles", "/v1/styles/{name}/thumbnail", "/v1/models", "/healthz"} <= set(spec["paths"])
    form = spec["paths"]["/v1/stylize"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert {"photo", "style", "model", "style_image", "strength", "preserve_colors", "format", "quality",
            "max_side"} == set(form["properties"])


# ------------------------------------------------------------------ errors

def _png_declaring(width: int, height: int) -> bytes:
    data = encoded(photo(8, 8))
    ihdr = bytearray(data[12:29])
    ihdr[4:12] = struct.pack(">II", width, height)
    return data[:12] + bytes(ihdr) + struct.pack(">I", zlib.crc32(bytes(ihdr)) & 0xFFFFFFFF) + data[33:]


@pytest.mark.parametrize("data, status, message", [
    ({"style": "nope"}, 404, "style: no style named 'nope'"),
    ({"model": "nope"}, 404, "model: no model named 'nope'"),
    ({"style": "identity", "model": "invert"}, 400, "not both"),
    ({"strength": "abc"}, 400, "strength: expected a number, got 'abc'"),
    ({"strength": "1.5"}, 400, "strength: must be within [0, 1], got 1.5"),
    ({"strength": "nan"}, 400, "strength: must be a finite number"),
    ({"quality": "101"}, 400, "quality: must be from 0 to 100, got 101"),
    ({"quality": "9.5"}, 400, "quality: expected an integer"),
    ({"format": "gif"}, 400, "format: 'gif' is not one of jpeg, png, webp"),
    ({"max_side": "0"}, 400, "max_side: must be from 1 to 1048576, got 0"),
    ({"max_side": "99999999999999"}, 400, "max_side: must be from 1 to 1048576, got 99999999999999"),
    ({"max_side": "1e3"}, 400, "max_side: expected an integer, got '1e3'"),
    ({"preserve_colors": "maybe"}, 400, "preserve_colors: expected true or false"),
    ({"colour": "red"}, 400, "unknown field 'colour'"),
])
def test_bad_options(client, data, status, message):
    assert_clean_error(post(client, data=data), status, contains=message)


def test_bad_requests(client):
    assert_clean_error(client.post("/v1/stylize", data={"style": "identity"}, files={"x": ("a", b"b")}), 400,
                       contains="unknown field 'x'")
    assert_clean_error(client.post("/v1/stylize", files={"style": (None, "identity")}), 400,
                       contains="photo: no file given")
    assert_clean_error(client.post("/v1/stylize", json={"photo": "x"}), 415, contains="multipart/form-data")
    assert_clean_error(client.post("/v1/stylize", content=b"--x\r\nnonsense", headers={
        "content-type": "multipart/form-data; boundary=x"}), 400)
    two = [("photo", ("a.png", encoded(photo()))), ("photo", ("b.png", encoded(photo())))]
    assert_clean_error(client.post("/v1/stylize", files=two), 400, contains="'photo' given twice")
    assert_clean_error(post(client, data={"style": "x" * 2000}), 400, contains="longer than 1024 bytes")
    assert_clean_error(post(client, style_image=("p.png", encoded(photo()))), 400,
                       contains="no model that takes a style image")
    assert_clean_error(post(client, data={"model": "invert"}, style_image=("p.png", encoded(photo()))), 400,
                       contains="model 'invert' does not take a style image")
    assert_clean_error(client.get("/v1/nothing"), 404)
    assert_clean_error(client.put("/v1/stylize"), 405)


def test_bad_images_name_the_clients_file(client):
    name = "../../etc/holiday photo.png"            # a path from the client: only its last part is shown
    err = assert_clean_error(post(client, content=b"plain text, not an image", name=name), 415)
    assert err == "holiday photo.png: not an image file, or a format Pillow cannot read"
    assert_clean_error(post(client, content=b"", name="empty.png"), 415, contains="empty.png: empty")
    truncated = encoded(photo(64, 64))[:200]
    assert_clean_error(post(client, content=truncated, name="cut.png"), 400, contains="cut.png: ")
    err = assert_clean_error(post(client, content=_png_declaring(100_000, 100_000), name="bomb.png"), 413)
    assert err.startswith("bomb.png: image is 100000x100000 = 10,000,000,000 pixels, more than the limit")


def test_the_pixel_limit_is_checked_before_decoding(catalogue, monkeypatch):
    import deepshop_native.image.read as reader
    decoded_calls = []
    real = reader._decode
    monkeypatch.setattr(reader, "_decode", lambda *a: decoded_calls.append(1) or real(*a))
    with TestClient(create_app(ServerConfig(catalogue=catalogue, max_pixels=64 * 64))) as c:
        assert_clean_error(post(c, photo(65, 64), data={"style": "identity"}), 413, contains="more than the limit of 4,096")
        assert decoded_calls == []
        assert post(c, photo(64, 64), data={"style": "identity"}).status_code == 200
        assert decoded_calls == [1]


def test_upload_limit_is_enforced_early_and_while_streaming(catalogue):
    with TestClient(create_app(ServerConfig(catalogue=catalogue, max_upload_bytes=20_000))) as c:
        big = encoded(np.random.default_rng(0).integers(0, 256, (120, 120, 3), dtype=np.uint8))
        assert len(big) > 20_000
        assert_clean_error(post(c, content=big), 413, contains="upload limit of 0.0190735 MiB")
        boundary = "b0undary"
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"photo\"; filename=\"a.png\"\r\n\r\n".encode()
                + big + f"\r\n--{boundary}--\r\n".encode())

        def chunks():                               # no Content-Length: counted as it streams
            for k in range(0, len(body), 4096):
                yield body[k:k + 4096]
        r = c.post("/v1/stylize", content=chunks(), headers={"content-type": f"multipart/form-data; boundary={boundary}"})
        assert_clean_error(r, 413, contains="upload limit")
        assert post(c, photo(20, 20), data={"style": "identity"}).status_code == 200


def test_server_errors_hide_paths_and_tracebacks(tmp_path):
    secret = tmp_path / "secret folder" / "model.onnx"

    def broken_model():
        raise ds.ModelError(f"{secret}: the graph is broken")

    def crashing():
        raise RuntimeError(f"{secret} exploded")
    broken, crash = Model("broken", "x", broken_model), Model("crash", "y", crashing)
    cat = Catalogue(styles=[Style("broken", "x", broken), Style("crash", "y", crash)], models=[broken, crash])
    with TestClient(create_app(ServerConfig(catalogue=cat)), raise_server_exceptions=False) as c:
        err = assert_clean_error(post(c, data={"style": "broken"}), 500, str(tmp_path))
        assert err == "model.onnx: the graph is broken"
        assert assert_clean_error(post(c, data={"style": "crash"}), 500, str(tmp_path)) == "internal error"
        job = post(c, data={"style": "crash"}, url="/v1/jobs").json()
        c.get(job["events"]).read()
        state = c.get(job["url"]).json()
        assert state["status"] == "failed" and state["error"] == "internal error" and state["error_status"] == 500
        assert_clean_error(c.get(f"/v1/jobs/{job['id']}/result"), 500)


# ------------------------------------------------------------------ the catalogue and the command

def test_catalogue_names_by_stem_and_refuses_clashes_and_non_style_models(tmp_path, models):
    _, ident, _ = models
    other = tmp_path / "sub"
    other.mkdir()
    twin = identity(other / "identity.onnx")
    with pytest.raises(ds.OptionError, match="two models are named 'identity'"):
        default_catalogue([ident, twin], include_default=False, device="cpu")
    with pytest.raises(ds.ModelError, match="no such model file"):
        default_catalogue([tmp_path / "missing.onnx"], include_default=False, device="cpu")
    lineart = ds.__path__[0] + "/models/lineart.onnx"
    with pytest.raises(ds.ModelError, match="not a style model"):
        default_catalogue([lineart], include_default=False, device="cpu")
    with pytest.raises(ds.OptionError, match="--tile: identity.onnx: tile size 64 is too small for a halo"):
        default_catalogue([ident], include_default=False, device="cpu", tile=64)


def test_serve_command_without_the_extra_says_how_to_install(monkeypatch, capsys):
    import importlib.util
    from deepshop_native.cli import main
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "fastapi" else real(name, *a))
    assert main(["serve"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["deepshop: error: deepshop serve needs FastAPI, uvicorn and python-multipart: "
                   "pip install 'deepshop-native[serve]'"]


def test_serve_command_starts_uvicorn_on_localhost(monkeypatch, capsys, models):
    import uvicorn
    from deepshop_native.cli import main
    calls = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append((app, kw)))
    _, ident, _ = models
    assert main(["serve", "--port", "8123", "--model", ident, "--workers", "2", "--device", "cpu",
                 "--no-builtin"]) == 0
    app, kw = calls[0]
    assert kw["host"] == "127.0.0.1" and kw["port"] == 8123
    cfg = app.state.config
    assert [m.name for m in cfg.catalogue.models] == ["default_style", "identity"] and cfg.queue_size == 8
    assert "every machine" not in capsys.readouterr().err
    assert main(["serve", "--host", "0.0.0.0", "--device", "cpu", "--no-builtin"]) == 0
    assert "every machine that can reach this one may use the server" in capsys.readouterr().err


# ------------------------------------------------------------------ image.encode_image (the results' bytes)

@pytest.mark.parametrize("fmt, ext", [("PNG", ".png"), ("jpeg", ".jpg"), (".webp", ".webp"), ("TIFF", ".tif")])
def test_encode_image_gives_the_bytes_write_image_writes(tmp_path, fmt, ext):
    from deepshop_native.image import encode_image, write_image
    arr = photo(21, 34, seed=9)
    data = encode_image(arr, fmt, quality=85)
    write_image(tmp_path / f"x{ext}", arr, quality=85)
    assert data == (tmp_path / f"x{ext}").read_bytes()
    if ext in (".png", ".tif"):
        np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(data))), arr)    # Pillow: lossless


def test_encode_image_16_bits_and_errors():
    from deepshop_native.image import encode_image, read_image
    arr16 = np.random.default_rng(2).integers(0, 65536, (9, 7, 3), dtype=np.uint16)
    back = read_image(encode_image(arr16, "PNG"))
    assert back.bit_depth == 16
    np.testing.assert_array_equal(back.pixels, arr16)
    with pytest.raises(ds.ImageError, match="result: cannot encode 'gif'"):
        encode_image(photo(), "gif", name="result")
    with pytest.raises(ds.ImageError, match="result: cannot encode as WEBP"):
        encode_image(np.zeros((1, 16384, 3), np.uint8), "WEBP", name="result")     # WebP's 16383 px limit


def test_builtin_catalogue_offers_the_built_in_styles_and_paintings(tiny_pretrained, monkeypatch):
    """`deepshop serve` offers the built-in styles (the default first) and any painting as the style,
    on the pretrained networks (here their tiny stand-ins): each style's result is the pipeline's own,
    requests with different styles do not see each other's, and a painting runs the arbitrary network."""
    from deepshop_native.core.paths import PRETRAINED_ENV
    from deepshop_native.models.styles import DEFAULT_STYLE, open_styled
    from conftest import TINY_STYLES
    monkeypatch.setenv(PRETRAINED_ENV, str(tiny_pretrained[0]))
    cat = default_catalogue([], builtin=True, device="cpu", threads=1)
    names = [s.name for s in cat.styles]
    assert names[0] == DEFAULT_STYLE and set(names[1:]) == {s["name"] for s in TINY_STYLES}
    assert [m.name for m in cat.models if m.takes_style_image] == ["any-painting"]
    arr = photo(48, 64, seed=5)
    painting = photo(256, 256, seed=6)
    with TestClient(create_app(ServerConfig(catalogue=cat, workers=2))) as c:
        for name in ("tiny-1", "tiny-3", "tiny-1"):
            r = post(c, arr, data={"style": name, "format": "png"})
            want = open_styled(None, [name], device="cpu").run(arr)
            assert r.status_code == 200 and np.array_equal(decoded(r.content), want)
        r = post(c, arr, data={"format": "png"}, style_image=("painting.png", encoded(painting), "image/png"))
        want = open_styled(None, [painting], device="cpu").run(arr)
        assert r.status_code == 200 and np.abs(decoded(r.content).astype(int) - want).max() <= 1
        styles = c.get("/v1/styles").json()
        assert [s["name"] for s in styles] == names
        assert c.get(styles[2]["thumbnail"]).status_code == 200
