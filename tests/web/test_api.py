"""The JSON API through FastAPI's TestClient, on a real 12-image index."""

from __future__ import annotations

import io

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from skimage import data

from reslab.errors import ReslabError
from reslab.web.app import create_app

MAX_UPLOAD = 200_000


@pytest.fixture(scope="module")
def client(hist_index):
    with TestClient(create_app(hist_index, max_upload_bytes=MAX_UPLOAD)) as c:
        yield c


def _jpeg(array: np.ndarray, quality: int = 85) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def _ids_by_name(client) -> dict[str, int]:
    items = client.get("/api/items", params={"limit": 100}).json()["items"]
    return {it["name"]: it["id"] for it in items}


def test_info_and_browse(client):
    info = client.get("/api/info").json()
    assert info["count"] == 12 and info["method"] == "hist" and info["classifier"] is False
    page = client.get("/api/items", params={"offset": 10, "limit": 5}).json()
    assert page["total"] == 12 and len(page["items"]) == 2
    everything = client.get("/api/items", params={"limit": 100}).json()["items"]
    assert sorted(it["label"] for it in everything) == sorted(["astronaut", "coffee", "chelsea", "rocket"] * 3)
    assert page["items"] == everything[10:]


def test_search_with_an_upload_finds_the_same_photo_first(client):
    upload = _jpeg(data.coffee()[::2, ::2])  # half size, recompressed
    r = client.post("/api/search", files={"image": ("query.jpg", upload, "image/jpeg")}, data={"k": "4"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert len(body["hits"]) == 4 and body["classes"] is None
    assert [h["label"] for h in body["hits"][:3]] == ["coffee"] * 3  # original, mirror and crop
    scores = [h["score"] for h in body["hits"]]
    assert scores == sorted(scores, reverse=True) and scores[0] > 0.95


def test_similar_by_id_excludes_the_query(client):
    ids = _ids_by_name(client)
    r = client.get(f"/api/items/{ids['rocket.jpg']}/similar", params={"k": 3})
    assert r.status_code == 200
    body = r.json()
    assert body["query"]["name"] == "rocket.jpg"
    assert ids["rocket.jpg"] not in [h["id"] for h in body["hits"]]
    assert body["hits"][0]["name"] == "rocket_mirror.jpg" and body["hits"][0]["score"] > 0.999


def test_images_and_thumbnails_are_served_by_id(client, hist_index):
    ids = _ids_by_name(client)
    r = client.get(f"/api/image/{ids['chelsea_crop.png']}")
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    with Image.open(io.BytesIO(r.content)) as im:
        assert im.size == (451 * 3 // 4, 300 * 3 // 4)
    thumb = client.get(f"/api/image/{ids['chelsea.jpg']}", params={"size": 128})
    with Image.open(io.BytesIO(thumb.content)) as im:
        assert im.format == "JPEG" and max(im.size) == 128
    assert client.get(f"/api/image/{ids['chelsea.jpg']}", params={"size": 77}).status_code == 422


def test_oversized_upload_is_refused_with_413(client):
    noise = np.random.default_rng(0).integers(0, 256, (600, 600, 3), dtype=np.uint8)
    big = _jpeg(noise, quality=100)
    assert len(big) > MAX_UPLOAD
    r = client.post("/api/search", files={"image": ("big.jpg", big, "image/jpeg")})
    assert r.status_code == 413 and "limit" in r.json()["detail"]


def test_a_file_just_under_the_limit_but_body_over_it_is_checked_exactly(client):
    # the middleware allows multipart overhead; the endpoint checks the file itself
    payload = b"\xff" * (MAX_UPLOAD + 10)
    r = client.post("/api/search", files={"image": ("x.jpg", payload, "image/jpeg")})
    assert r.status_code == 413


def test_sixteen_bit_and_transparent_uploads_are_accepted(client):
    grey16 = io.BytesIO()
    Image.fromarray((np.arange(96 * 96).reshape(96, 96) * 7).astype(np.uint16)).save(grey16, format="PNG")
    rgba = io.BytesIO()
    Image.new("RGBA", (80, 60), (200, 30, 30, 128)).save(rgba, format="PNG")
    for name, payload in [("grey16.png", grey16.getvalue()), ("rgba.png", rgba.getvalue())]:
        r = client.post("/api/search", files={"image": (name, payload, "image/png")}, data={"k": "2"})
        assert r.status_code == 200, r.text
        assert len(r.json()["hits"]) == 2


@pytest.mark.parametrize("payload", [b"this is not an image", b"", b"\x89PNG\r\n\x1a\n" + b"\x00" * 64])
def test_non_images_get_415_with_a_message(client, payload):
    r = client.post("/api/search", files={"image": ("notes.png", payload, "image/png")})
    assert r.status_code == 415
    assert "notes.png" in r.json()["detail"] and "upload a JPEG" in r.json()["detail"]
    assert " object at 0x" not in r.json()["detail"]  # no Python object reprs in messages


@pytest.mark.parametrize("offset", [12, 13, 2**63 - 1, 2**63, 10**40])
def test_offsets_past_the_end_give_an_empty_page(client, offset):
    r = client.get("/api/items", params={"offset": offset})
    assert r.status_code == 200 and r.json() == {"total": 12, "offset": offset, "items": []}


def test_missing_upload_and_bad_k_are_422(client):
    assert client.post("/api/search", data={"k": "3"}).status_code == 422
    upload = _jpeg(data.coffee())
    assert client.post("/api/search", files={"image": ("q.jpg", upload)}, data={"k": "0"}).status_code == 422


@pytest.mark.parametrize("item_id", [0, 999, -1, 2**63 - 1, 2**63, 2**64, -(2**63) - 1, 10**40])
def test_unknown_ids_are_404(client, item_id):
    assert client.get(f"/api/image/{item_id}").status_code == 404
    assert client.get(f"/api/items/{item_id}/similar").status_code == 404
    assert client.get(f"/api/items/{item_id}").status_code == 404


@pytest.mark.parametrize(
    "url",
    [
        "/api/image/..%2F..%2F..%2Fetc%2Fpasswd",
        "/api/image/../../etc/passwd",
        "/api/image/%2Fetc%2Fpasswd",
        "/api/image/1%2F..%2F..%2Fmanifest.json",
        "/static/..%2F..%2Fapp.py",
        "/static/../app.py",
    ],
)
def test_path_traversal_never_serves_a_file(client, url):
    r = client.get(url)
    assert r.status_code in (404, 422)
    assert b"root:" not in r.content and b"def create_app" not in r.content


def test_page_and_openapi_are_served(client):
    page = client.get("/")
    assert page.status_code == 200 and 'id="file-input"' in page.text and "/static/app.js" in page.text
    assert "http" not in page.text.replace("http-equiv", "")  # no CDN: everything is local
    assert client.get("/static/app.js").status_code == 200 and client.get("/static/style.css").status_code == 200
    docs = client.get("/docs")
    assert docs.status_code == 200 and "/static/docs.js" in docs.text and "cdn" not in docs.text.lower()
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/api/search", "/api/items", "/api/items/{item_id}/similar", "/api/image/{item_id}", "/api/info"} <= set(paths)


def test_classes_are_returned_when_the_index_can_classify(hist_index):
    """A stand-in wrapping the real index with a classifier head, as a cnn index has."""
    from reslab.search.index import SearchIndex

    class Classifying:
        def __init__(self):
            self.inner = SearchIndex.open(hist_index)  # opened in the app's index thread (see below)
            self.manifest = self.inner.manifest

        def __len__(self):
            return len(self.inner)

        def __getattr__(self, name):
            return getattr(self.inner, name)

        def classify(self, image, top_k=5):
            mean = np.asarray(image, dtype=np.float64).mean(axis=(0, 1))
            p = np.exp(mean / 50) / np.exp(mean / 50).sum()
            return sorted(zip(["red", "green", "blue"], p.tolist()), key=lambda t: -t[1])[:top_k]

    from reslab.web import app as web_app

    worker_made = {}
    original = web_app._open_here
    web_app._open_here = lambda _ix, _store=None, _runtime=None: worker_made.setdefault("ix", Classifying())
    try:
        with TestClient(create_app(object(), max_upload_bytes=MAX_UPLOAD)) as c:
            assert c.get("/api/info").json()["classifier"] is True
            red = np.zeros((64, 64, 3), np.uint8)
            red[..., 0] = 250
            body = c.post("/api/search", files={"image": ("red.png", _jpeg(red))}, data={"k": "2"}).json()
    finally:
        web_app._open_here = original
    assert body["classes"][0]["label"] == "red" and len(body["classes"]) == 3
    assert sum(c["probability"] for c in body["classes"]) == pytest.approx(1.0, abs=1e-4)


def test_a_missing_index_is_a_clear_error(tmp_path):
    with pytest.raises(ReslabError, match="no index at"):
        create_app(tmp_path / "nowhere")


def test_an_upload_from_a_phone_is_turned_upright_like_indexed_files():
    """Phones store the pixels as the sensor saw them and write EXIF orientation 6 for a portrait."""
    from reslab.web.app import decode_upload

    upright = data.astronaut()[:, 100:400]  # (512, 300): a portrait
    stored = np.ascontiguousarray(np.rot90(upright, k=1))  # what the camera wrote: turned a quarter
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 clockwise to display"
    buf = io.BytesIO()
    Image.fromarray(stored).save(buf, format="JPEG", quality=95, exif=exif.tobytes())
    got = np.asarray(decode_upload(buf.getvalue()), dtype=np.int16)
    assert got.shape == upright.shape
    assert np.abs(got - upright).mean() < 3  # JPEG's loss only: turned the wrong way it differs by ~60
