"""FastAPI app for one search index: a single static page plus a small JSON API (OpenAPI at /docs).

    GET  /                             the page (plain HTML/JS/CSS from ./static, no CDN)
    GET  /api/info                     manifest summary: method, model, count, dim, classifier
    GET  /api/items?offset=&limit=     browse the indexed images
    GET  /api/items/{id}               one item
    GET  /api/items/{id}/similar?k=    nearest neighbours of an indexed image (itself excluded)
    POST /api/search                   multipart `image` (+ `k`): neighbours, and top-5 classes
                                       when the index's model has a classifier head
    GET  /api/image/{id}?size=         the indexed file, or a JPEG thumbnail with that longer side

Images are served only by id from the index's own list of files, never by a path the client
sends, so no request can read anything else on the machine. Uploads above `max_upload_bytes`
get 413; something that does not decode as an image gets 415, both with a JSON `detail`.
"""

from __future__ import annotations

import functools
import io
import logging
import threading
from pathlib import Path

from PIL import Image

from ..errors import ReslabError

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
DEFAULT_MAX_UPLOAD_BYTES = 10 * 1024 * 1024
MULTIPART_OVERHEAD_BYTES = 64 * 1024  # boundaries and part headers around the uploaded file
MAX_K = 100
THUMBNAIL_SIZES = (128, 256, 512)
MAX_UPLOAD_PIXELS = 64_000_000  # a decompression bomb is refused before it is decoded


def hit_json(hit) -> dict:
    return {"id": hit.id, "score": round(float(hit.score), 6), "label": hit.label, "name": Path(hit.path).name,
            "url": f"/api/image/{hit.id}"}  # fmt: skip


def item_json(item) -> dict:
    return {"id": item.id, "label": item.label, "name": Path(item.path).name, "width": item.width,
            "height": item.height, "url": f"/api/image/{item.id}"}  # fmt: skip


def decode_upload(data: bytes) -> Image.Image:
    """Decode uploaded bytes to RGB, or raise ValueError with the reason."""
    if not data:
        raise ValueError("the upload is empty")
    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.size[0] * im.size[1] > MAX_UPLOAD_PIXELS:
                raise ValueError(f"the image is {im.size[0]}x{im.size[1]} pixels, more than {MAX_UPLOAD_PIXELS} allowed")
            im.load()
            if im.mode in ("P", "PA", "RGBA", "LA"):
                im = im.convert("RGBA")
                background = Image.new("RGBA", im.size, (255, 255, 255, 255))
                im = Image.alpha_composite(background, im)
            return im.convert("RGB")
    except (OSError, SyntaxError, Image.DecompressionBombError) as e:
        raise ValueError(f"the upload is not an image Pillow can decode ({e})") from None


def open_index(index):
    """A SearchIndex from a path, or the object itself."""
    if isinstance(index, (str, Path)):
        from ..search.index import SearchIndex

        return SearchIndex.open(index)
    return index


def create_app(index, max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES):
    """The FastAPI app for `index` (a path to an index, or a `SearchIndex`)."""
    from fastapi import FastAPI, File, Form, HTTPException, Query, Request, UploadFile
    from fastapi.responses import FileResponse, JSONResponse, Response
    from fastapi.staticfiles import StaticFiles

    index = open_index(index)
    # Embedders (OpenCV detectors, torch modules) are not promised to be thread-safe, and the
    # threadpool serves requests concurrently: one embedding or search at a time.
    lock = threading.Lock()
    manifest = dict(getattr(index, "manifest", {}) or {})

    app = FastAPI(
        title="reslab image search",
        version="1",
        description=f"Similar images in an index of {len(index)} images ({manifest.get('method', '?')} features).",
    )

    @app.middleware("http")
    async def refuse_big_bodies(request: Request, call_next):
        # Checked before the body is read, so a huge upload is not spooled to disk first.
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > max_upload_bytes + MULTIPART_OVERHEAD_BYTES:
            return JSONResponse({"detail": _too_big_message(max_upload_bytes)}, status_code=413)
        return await call_next(request)

    def known_item(item_id: int):
        if item_id < 0:
            raise HTTPException(404, f"no indexed image has id {item_id}")
        try:
            return index.item(item_id)
        except (ReslabError, KeyError, IndexError):
            raise HTTPException(404, f"no indexed image has id {item_id}") from None

    @app.get("/", include_in_schema=False)
    def page():
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    @app.get("/api/info", summary="What this index holds")
    def info() -> dict:
        with lock:
            has_classifier = _has_classifier(index)
        return {
            "count": len(index),
            "method": manifest.get("method"),
            "model": manifest.get("model"),
            "weights": manifest.get("weights"),
            "layer": manifest.get("layer"),
            "dim": manifest.get("dim"),
            "metric": manifest.get("metric"),
            "index_kind": manifest.get("index_kind"),
            "classifier": has_classifier,
            "max_upload_bytes": max_upload_bytes,
        }

    @app.get("/api/items", summary="Browse the indexed images")
    def items(offset: int = Query(0, ge=0), limit: int = Query(48, ge=1, le=500)) -> dict:
        total = len(index)
        ids = range(offset, min(offset + limit, total))
        return {"total": total, "offset": offset, "items": [item_json(index.item(i)) for i in ids]}

    @app.get("/api/items/{item_id}", summary="One indexed image")
    def item(item_id: int) -> dict:
        return item_json(known_item(item_id))

    @app.get("/api/items/{item_id}/similar", summary="Images most similar to an indexed one")
    def similar(item_id: int, k: int = Query(12, ge=1, le=MAX_K)) -> dict:
        query = known_item(item_id)
        with lock:
            hits = index.search_item(item_id, k=k)
        return {"query": item_json(query), "hits": [hit_json(h) for h in hits]}

    @app.post("/api/search", summary="Images most similar to an uploaded one (and its classes)")
    async def search(image: UploadFile = File(..., description="an image file"), k: int = Form(12, ge=1, le=MAX_K)):
        data = await image.read(max_upload_bytes + 1)
        if len(data) > max_upload_bytes:
            raise HTTPException(413, _too_big_message(max_upload_bytes))
        try:
            picture = decode_upload(data)
        except ValueError as e:
            raise HTTPException(415, f"{image.filename or 'the upload'}: {e}; upload a JPEG, PNG, GIF, BMP, TIFF or WebP image")
        return await _run_sync(_search_upload, index, lock, picture, k)

    @app.get("/api/image/{item_id}", summary="An indexed image file, or its thumbnail", response_class=Response)
    def image(item_id: int, size: int | None = Query(None, description=f"thumbnail longer side, one of {THUMBNAIL_SIZES}")):
        entry = known_item(item_id)
        path = Path(entry.path)
        if not path.is_file():
            raise HTTPException(404, f"image {item_id} ({path.name}) is no longer on disk; rebuild the index")
        if size is None:
            return FileResponse(path)
        if size not in THUMBNAIL_SIZES:
            raise HTTPException(422, f"size must be one of {', '.join(map(str, THUMBNAIL_SIZES))}")
        stat = path.stat()
        try:
            data = _thumbnail(str(path), stat.st_mtime_ns, stat.st_size, size)
        except ReslabError as e:
            raise HTTPException(404, str(e)) from None
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "max-age=3600"})

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app


def _too_big_message(max_upload_bytes: int) -> str:
    return f"the upload is larger than the {max_upload_bytes / 2**20:.1f} MiB limit; send a smaller image or start the server with a larger --max-upload-mb"


def _has_classifier(index) -> bool:
    """Whether `index.classify` gives classes; asked once, on a tiny grey image."""
    cached = getattr(index, "_web_has_classifier", None)
    if cached is None:
        try:
            cached = index.classify(Image.new("RGB", (64, 64), (128, 128, 128)), top_k=1) is not None
        except Exception:  # noqa: BLE001 - a classifier that fails is reported as absent, never breaks /api/info
            log.exception("classification failed; the page will not show classes")
            cached = False
        try:
            index._web_has_classifier = cached
        except AttributeError:
            pass
    return cached


def _search_upload(index, lock, picture: Image.Image, k: int) -> dict:
    with lock:
        hits = index.search_image(picture, k=k)
        classes = index.classify(picture, top_k=5)
    return {
        "hits": [hit_json(h) for h in hits],
        "classes": None if classes is None else [{"label": label, "probability": round(float(p), 6)} for label, p in classes],
    }


async def _run_sync(fn, *args):
    # embedding is CPU work: run it in the threadpool so the event loop keeps serving
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(fn, *args)


@functools.lru_cache(maxsize=1024)
def _thumbnail(path: str, mtime_ns: int, file_size: int, size: int) -> bytes:
    """JPEG thumbnail; cached by path, mtime and size, so a changed file is re-read."""
    from ..imageio import load_image

    picture = load_image(path, min_size=size)
    picture.thumbnail((size, size), Image.BILINEAR, reducing_gap=3.0)
    buf = io.BytesIO()
    picture.save(buf, format="JPEG", quality=85)
    return buf.getvalue()
