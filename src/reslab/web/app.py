"""FastAPI app for one search index: a single static page plus a small JSON API (OpenAPI at /docs).

    GET  /                             the page (plain HTML/JS/CSS from ./static, no CDN)
    GET  /docs, /openapi.json          the API reference (an offline page) and the OpenAPI schema
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

import asyncio
import contextlib
import functools
import io
import itertools
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from ..console import printable
from ..errors import ReslabError
from ..imageio import BadImageError, upright

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
DEFAULT_MAX_UPLOAD_BYTES = 10 * 1024 * 1024
MULTIPART_OVERHEAD_BYTES = 64 * 1024  # boundaries and part headers around the uploaded file
MAX_K = 100
THUMBNAIL_SIZES = (128, 256, 512)
MAX_UPLOAD_PIXELS = 64_000_000  # a decompression bomb is refused before it is decoded


NOT_FOUND = {404: {"description": "No indexed image has this id"}}
UPLOAD_ERRORS = {
    413: {"description": "The upload is larger than the server's --max-upload-mb"},
    415: {"description": "The upload is not an image that can be decoded"},
}


# Names and labels are shown as `printable` text (a name that is not UTF-8 as \xNN escapes);
# the file itself is always reached by id, through the exact path the index stored.
def hit_json(hit) -> dict:
    return {"id": hit.id, "score": round(float(hit.score), 6), "label": printable(hit.label),
            "name": printable(Path(hit.path).name), "url": f"/api/image/{hit.id}"}  # fmt: skip


def item_json(item) -> dict:
    return {"id": item.id, "label": printable(item.label), "name": printable(Path(item.path).name), "width": item.width,
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
            # the same conversions as files on disk: EXIF orientation, CMYK, palette, 16-bit, alpha on white
            return upright(im, "RGB")
    except UnidentifiedImageError:
        raise ValueError("its bytes are not in any image format Pillow reads") from None
    except (OSError, SyntaxError, Image.DecompressionBombError) as e:
        raise ValueError(f"the upload is not an image Pillow can decode ({e})") from None


class IndexThread:
    """Runs every call on the index in one dedicated thread.

    The index's SQLite connection may only be used by the thread that opened it, and embedders
    (OpenCV detectors, torch modules) are not promised to be thread-safe; one thread gives both,
    and the event loop stays free to serve thumbnails and the page meanwhile.
    """

    def __init__(self, index, store: str | None = None, runtime: dict | None = None):
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="reslab-index")
        try:
            self.index = self.executor.submit(_open_here, index, store, runtime or {}).result()  # ReslabError surfaces here
        except BaseException:
            self.executor.shutdown(wait=False)
            raise

    def call(self, fn, *args):
        """Run fn(index, *args) in the index thread and wait (for synchronous callers)."""
        return self.executor.submit(fn, self.index, *args).result()

    async def run(self, fn, *args):
        """Run fn(index, *args) in the index thread without blocking the event loop."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, functools.partial(fn, self.index, *args))

    def close(self) -> None:
        self.executor.shutdown(wait=False)


def _open_here(index, store: str | None = None, runtime: dict | None = None):
    """Open `index` in the calling thread: a path (in `store`, a URI, when given; its query network run
    the way `runtime` says), or a `SearchIndex` (re-opened with its own runtime, so that its database
    connection belongs to this thread), or any object with the same methods."""
    if isinstance(index, (str, Path)):
        from ..search.index import SearchIndex

        return SearchIndex.open(index, store, **(runtime or {}))
    reopen = getattr(index, "reopen", None)
    if reopen is not None:
        return reopen()
    return index


def create_app(index, max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES, store: str | None = None, runtime: dict | None = None):
    """The FastAPI app for `index`: a path to an index made by `reslab embed` (in `store`, a URI, when
    given), or a `SearchIndex`. runtime: how the query network runs (runtime, precision, device;
    see `SearchIndex.open`).

    The steps: one thread owns the index (`IndexThread`), the app closes it on shutdown, a
    middleware refuses oversized bodies before reading them, then the routes: the page and the
    API reference, browsing, searching, images.
    """
    from fastapi.staticfiles import StaticFiles

    worker = IndexThread(index, store, runtime)
    app = _new_app(worker)
    _refuse_big_bodies(app, max_upload_bytes)
    app.include_router(_page_routes())
    app.include_router(_browse_routes(worker, max_upload_bytes))
    app.include_router(_search_routes(worker, max_upload_bytes))
    app.include_router(_image_routes(worker))
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app


def _new_app(worker: IndexThread):
    """A FastAPI app that closes the index thread when it shuts down; /docs is our offline page."""
    from fastapi import FastAPI

    manifest = dict(getattr(worker.index, "manifest", {}) or {})

    @contextlib.asynccontextmanager
    async def lifespan(_app):
        yield
        worker.close()

    app = FastAPI(
        title="reslab image search",
        version="1",
        description=f"Similar images in an index of {worker.call(len)} images ({manifest.get('method', '?')} features).",
        lifespan=lifespan,
        # FastAPI's Swagger UI and ReDoc load their scripts from a CDN; /docs is our own offline page
        docs_url=None,
        redoc_url=None,
    )
    app.state.index_thread = worker
    _damaged_index_is_503(app)
    return app


def _damaged_index_is_503(app) -> None:
    """A ReslabError that reaches a route's end is the index failing on the server's side (a vector
    file removed or truncated since `embed`): 503, with the file named in the server's log only,
    not a 500 and not the server's folders in the answer."""
    from fastapi import Request
    from fastapi.responses import JSONResponse

    @app.exception_handler(ReslabError)
    async def index_failed(request: Request, error: ReslabError):
        log.error("%s: %s", request.url.path, printable(str(error)))
        return JSONResponse({"detail": "the index cannot answer this request: one of its files is missing or damaged "
                                       "(the server's log names it); rebuild the index with `reslab embed`"}, status_code=503)


def _refuse_big_bodies(app, max_upload_bytes: int) -> None:
    from fastapi import Request
    from fastapi.responses import JSONResponse

    @app.middleware("http")
    async def refuse_big_bodies(request: Request, call_next):
        # Checked before the body is read, so a huge upload is not spooled to disk first.
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > max_upload_bytes + MULTIPART_OVERHEAD_BYTES:
            return JSONResponse({"detail": _too_big_message(max_upload_bytes)}, status_code=413)
        return await call_next(request)


async def _known_item(worker: IndexThread, item_id: int):
    """The indexed item with this id, or 404."""
    from fastapi import HTTPException

    if not 0 <= item_id < 2**63:  # ids are SQLite integers: anything outside names no image
        raise HTTPException(404, f"no indexed image has id {item_id}")
    try:
        return await worker.run(lambda ix: ix.item(item_id))
    except (ReslabError, KeyError, IndexError):
        raise HTTPException(404, f"no indexed image has id {item_id}") from None


def _page_routes():
    from fastapi import APIRouter
    from fastapi.responses import FileResponse

    router = APIRouter()

    @router.get("/", include_in_schema=False)
    def page():
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    @router.get("/docs", include_in_schema=False)
    def api_reference():
        return FileResponse(STATIC_DIR / "docs.html", media_type="text/html")

    return router


def _browse_routes(worker: IndexThread, max_upload_bytes: int):
    """/api/info, /api/items, /api/items/{id}, /api/items/{id}/similar."""
    from fastapi import APIRouter, Query

    router = APIRouter()
    manifest = dict(getattr(worker.index, "manifest", {}) or {})
    has_classifier = worker.call(_has_classifier)

    @router.get("/api/info", summary="What this index holds")
    async def info() -> dict:
        return {
            "count": await worker.run(len),
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

    @router.get("/api/items", summary="Browse the indexed images, in id order")
    async def items(offset: int = Query(0, ge=0), limit: int = Query(48, ge=1, le=500)) -> dict:
        def page_of(ix):
            total = len(ix)
            start = min(offset, total)  # an offset past the end is an empty page, however large
            return total, [item_json(it) for it in itertools.islice(ix.items(), start, start + limit)]

        total, listed = await worker.run(page_of)
        return {"total": total, "offset": offset, "items": listed}

    @router.get("/api/items/{item_id}", summary="One indexed image", responses=NOT_FOUND)
    async def item(item_id: int) -> dict:
        return item_json(await _known_item(worker, item_id))

    @router.get("/api/items/{item_id}/similar", summary="Images most similar to an indexed one", responses=NOT_FOUND)
    async def similar(item_id: int, k: int = Query(12, ge=1, le=MAX_K)) -> dict:
        query = await _known_item(worker, item_id)
        hits = await worker.run(lambda ix: ix.search_item(item_id, k=k))
        return {"query": item_json(query), "hits": [hit_json(h) for h in hits]}

    return router


def _search_routes(worker: IndexThread, max_upload_bytes: int):
    """POST /api/search: an uploaded image's neighbours (and classes)."""
    from fastapi import APIRouter, File, Form, HTTPException, UploadFile
    from starlette.concurrency import run_in_threadpool

    router = APIRouter()

    @router.post("/api/search", summary="Images most similar to an uploaded one (and its classes)", responses=UPLOAD_ERRORS)
    async def search(image: UploadFile = File(..., description="an image file"), k: int = Form(12, ge=1, le=MAX_K)):
        data = await image.read(max_upload_bytes + 1)
        if len(data) > max_upload_bytes:
            raise HTTPException(413, _too_big_message(max_upload_bytes))
        try:
            picture = await run_in_threadpool(decode_upload, data)
        except ValueError as e:
            raise HTTPException(415, f"{image.filename or 'the upload'}: {e}; upload a JPEG, PNG, GIF, BMP, TIFF or WebP image")
        return await worker.run(_search_upload, picture, k)

    return router


def _image_routes(worker: IndexThread):
    """GET /api/image/{id}: the indexed file, or a cached JPEG thumbnail."""
    from fastapi import APIRouter, HTTPException, Query
    from fastapi.responses import FileResponse, Response
    from starlette.concurrency import run_in_threadpool

    router = APIRouter()

    @router.get("/api/image/{item_id}", summary="An indexed image file, or its thumbnail", response_class=Response, responses=NOT_FOUND)
    async def image(item_id: int, size: int | None = Query(None, description=f"thumbnail longer side, one of {THUMBNAIL_SIZES}")):
        entry = await _known_item(worker, item_id)
        path = Path(entry.path)
        if not path.is_file():
            raise HTTPException(404, f"image {item_id} ({printable(path.name)}) is no longer on disk; rebuild the index")
        if not os.access(path, os.R_OK):  # else FileResponse fails after the answer has started: a 500
            raise HTTPException(404, f"image {item_id} ({printable(path.name)}) cannot be read by the server; check its permissions")
        if size is None:
            return FileResponse(path)
        if size not in THUMBNAIL_SIZES:
            raise HTTPException(422, f"size must be one of {', '.join(map(str, THUMBNAIL_SIZES))}")
        stat = path.stat()
        try:
            data = await run_in_threadpool(_thumbnail, str(path), stat.st_mtime_ns, stat.st_size, size)
        except BadImageError as e:  # named by the file name alone: a client never learns the server's folders
            reason = printable(e.reason.replace(str(path), path.name))
            raise HTTPException(404, f"image {item_id} ({printable(path.name)}) cannot be decoded: {reason}; fix the file and embed again") from None
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "max-age=3600"})

    return router


def _too_big_message(max_upload_bytes: int) -> str:
    return f"the upload is larger than the {max_upload_bytes / 2**20:.3g} MiB limit; send a smaller image or start the server with a larger --max-upload-mb"


def _has_classifier(index) -> bool:
    """Whether `index.classify` gives classes; asked once, on a small grey image."""
    try:
        return index.classify(Image.new("RGB", (64, 64), (128, 128, 128)), top_k=1) is not None
    except Exception:  # noqa: BLE001 - a failing classifier is reported as absent; it never breaks the page
        log.exception("classification failed; the page will not show classes")
        return False


def _search_upload(index, picture: Image.Image, k: int) -> dict:
    hits = index.search_image(picture, k=k)
    classes = index.classify(picture, top_k=5)
    return {
        "hits": [hit_json(h) for h in hits],
        "classes": None if classes is None else [{"label": label, "probability": round(float(p), 6)} for label, p in classes],
    }


@functools.lru_cache(maxsize=1024)
def _thumbnail(path: str, mtime_ns: int, file_size: int, size: int) -> bytes:
    """JPEG thumbnail; cached by path, mtime and size, so a changed file is re-read."""
    from ..imageio import load_image

    picture = load_image(path, min_size=size)
    picture.thumbnail((size, size), Image.BILINEAR, reducing_gap=3.0)
    buf = io.BytesIO()
    picture.save(buf, format="JPEG", quality=85)
    return buf.getvalue()
