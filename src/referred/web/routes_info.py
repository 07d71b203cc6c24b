"""Informational endpoints: ``/categories``, ``/healthz`` and the sample scenes the page offers."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path, PurePath
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse

from referred.web import schemas
from referred.web.errors import responses
from referred.web.results import IMAGE_CONTENT, IMAGE_TYPES
from referred.web.routes_deps import SearcherDep, SettingsDep
from referred.web.schemas import ApiError
from referred.web.settings import Settings

router = APIRouter()


@router.get(
    "/categories",
    response_model=schemas.CategoriesResponse,
    tags=["catalog"],
    responses=responses(503),
)
def categories(searcher: SearcherDep, settings: SettingsDep) -> dict[str, Any]:
    return {
        "categories": list(searcher.category_choices),
        "categories_as_text": not searcher.categories and bool(searcher.category_choices),
        "accepts_text": bool(searcher.accepts_text),
        "composes": getattr(searcher, "composer", None) is not None,
        "max_text_chars": settings.max_text_chars,
        "default_k": settings.default_k,
        "max_k": settings.max_k,
    }


@router.get("/healthz", response_model=schemas.Health, tags=["service"], responses=responses())
def healthz(request: Request, settings: SettingsDep) -> dict[str, Any]:
    state = request.app.state
    searcher = getattr(state, "searcher", None)
    catalog = getattr(state, "catalog", None)
    info = getattr(state, "info", {}) or {}
    model = info.get("model")
    return {
        "status": "ok" if searcher is not None else "no_model",
        "products": len(catalog.searcher) if catalog is not None else None,
        # the model's name only: the server's folders are nobody's business
        "model": PurePath(str(model)).name or str(model) if model else None,
        "trained_model": info.get("trained"),
        "writes_enabled": settings.writes_enabled,
        "worker": os.getpid(),
    }


def list_samples(settings: Settings) -> dict[str, tuple[Path, dict[str, Any]]]:
    """name → (file, {caption, categories}) for the images directly inside ``samples_dir``.

    An optional ``samples.json`` maps a file name to a caption, or to
    ``{"caption": str, "categories": [names of the items worn]}``.
    """
    root = settings.samples_dir
    if root is None or not root.is_dir():
        return {}
    described: dict[str, Any] = {}
    meta = root / "samples.json"
    if meta.is_file():
        with contextlib.suppress(ValueError, OSError):
            described = dict(json.loads(meta.read_text()))
    out = {}
    for p in sorted(root.iterdir()):
        if p.suffix.lower() in IMAGE_TYPES and p.is_file():
            d = described.get(p.name)
            d = d if isinstance(d, dict) else {"caption": d}
            cats = d.get("categories")
            out[p.name] = (
                p,
                {
                    "caption": None if d.get("caption") is None else str(d["caption"]),
                    "categories": [str(c) for c in cats] if cats else None,
                },
            )
    return out


@router.get(
    "/samples", response_model=schemas.SamplesResponse, tags=["catalog"], responses=responses()
)
def samples(settings: SettingsDep) -> dict[str, Any]:
    return {
        "samples": [
            {"name": n, "image_url": f"/samples/{quote(n)}", **d}
            for n, (_, d) in list_samples(settings).items()
        ]
    }


@router.get(
    "/samples/{name}",
    tags=["catalog"],
    response_class=FileResponse,
    responses={
        200: {
            "description": "the sample scene's image",
            "content": IMAGE_CONTENT,
        },
        **responses(404),
    },
)
def sample_image(name: str, settings: SettingsDep) -> FileResponse:
    found = list_samples(settings).get(name)  # looked up, never joined onto a path
    if found is None:
        raise ApiError(404, "unknown_sample", f"no sample scene named {name[:80]!r}")
    path = found[0]
    return FileResponse(
        path,
        media_type=IMAGE_TYPES[path.suffix.lower()],
        headers={"Cache-Control": "public, max-age=3600"},
    )
