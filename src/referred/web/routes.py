"""Search endpoints: ``/search``, ``/shop-the-look``, ``/attention`` and ``/presence``.

Fields are FastAPI ``Form``/``File`` parameters (:mod:`referred.web.forms`), so the OpenAPI
schema shows them as they are; conditions go through :mod:`referred.web.condition`, the
Searcher's own errors through the one declared set (:mod:`referred.web.errors`).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import APIRouter, UploadFile

from referred.imageio import Photo
from referred.region import Box, crop
from referred.search.searcher import MAX_QUERY_IMAGES
from referred.web import schemas
from referred.web.condition import resolve_categories, resolve_condition
from referred.web.errors import responses
from referred.web.forms import (
    BoxField,
    CategoriesField,
    CategoryField,
    ExcludeCategoriesField,
    ExcludeIdsField,
    ExcludeTextsField,
    FilterField,
    FlagField,
    FormRoute,
    ImageFile,
    IncludeAbsentField,
    KField,
    LikeField,
    ModifyField,
    MoreImagesField,
    NegativeIdsField,
    OptionalImageFile,
    PositiveIdsField,
    TextField,
    check_k,
    parse_box_field,
    parse_flag,
    parse_id_list,
    parse_json_object,
    split_list_field,
)
from referred.web.results import attention_json, hits_json
from referred.web.routes_deps import RunnerDep, SearcherDep, SearchRunner, SettingsDep
from referred.web.routes_products import check_id
from referred.web.schemas import ApiError
from referred.web.settings import Settings
from referred.web.uploads import ACCEPTED_NAMES, decode_image, read_image

router = APIRouter(route_class=FormRoute, tags=["search"])
UPLOAD_ERRORS = (400, 413, 415, 422, 503)


def parse_filter(raw: str | None) -> dict[str, Any] | None:
    value = parse_json_object(raw, "filter")
    for key, v in (value or {}).items():
        items = v if isinstance(v, list) else [v]
        if not all(isinstance(x, (str, int, float, bool)) for x in items):
            raise ApiError(
                422,
                "invalid_filter",
                f"filter field {key!r} must be a string, a number or a list of them",
            )
    return value


async def query_image(
    upload: UploadFile,
    settings: Settings,
    runner: SearchRunner,
    box: Box | None = None,
    name: str = "image",
) -> Any:
    """The uploaded photo, validated and decoded in a worker thread; cropped to ``box``."""
    data = await read_image(upload, name)
    return await runner.call(_decode_and_crop, data, settings.max_pixels, box)


def _decode_and_crop(data: bytes, max_pixels: int, box: Box | None) -> Photo:
    """A Photo: the request's search, presence and attention preprocess it once."""
    photo = decode_image(data, max_pixels)
    return Photo(photo if box is None else crop(photo, box))


def check_like(like: str | None, **photo_fields: Any) -> str | None:
    """The ``like`` product id of a search (None: a photo search, which needs ``image``);
    422 naming the fields that only go with a photo (``photo_fields``, by name)."""
    if like is None:
        if photo_fields.get("image") is None:
            raise ApiError(
                422,
                "missing_image",
                f"missing form field 'image': attach the photo as a file ({ACCEPTED_NAMES}), "
                "or send like=<product id> to start from a catalog product",
            )
        return None
    given = [
        name
        for name, value in photo_fields.items()
        if value and (not isinstance(value, str) or value.strip())
    ]
    if given:
        raise ApiError(
            422,
            "like_with_photo",
            "like=<product id> starts from a catalog product instead of a photo; send it "
            f"without {', '.join(given)}",
        )
    return check_id(like)


@router.post(
    "/search",
    response_model=schemas.SearchResponse,
    summary="Find the product a photo's chosen item is",
    responses=responses(*UPLOAD_ERRORS, 404),
)
async def search(
    searcher: SearcherDep,
    settings: SettingsDep,
    runner: RunnerDep,
    image: OptionalImageFile = None,
    category: CategoryField = None,
    text: TextField = None,
    k: KField = None,
    filter: FilterField = None,
    attention: FlagField = None,
    box: BoxField = None,
    positive_ids: PositiveIdsField = None,
    negative_ids: NegativeIdsField = None,
    exclude_ids: ExcludeIdsField = None,
    exclude_categories: ExcludeCategoriesField = None,
    exclude_texts: ExcludeTextsField = None,
    modify: ModifyField = None,
    more_images: MoreImagesField = None,
    like: LikeField = None,
) -> dict[str, Any]:
    start = time.perf_counter()
    want_attention = parse_flag(attention, "attention")
    product = check_like(like, image=image, more_images=more_images, category=category,
                         text=text, box=box, attention=want_attention)  # fmt: skip
    if more_images and 1 + len(more_images) > MAX_QUERY_IMAGES:
        raise ApiError(
            422,
            "too_many_images",
            f"a search takes at most {MAX_QUERY_IMAGES} photos of the item (image and "
            f"{MAX_QUERY_IMAGES - 1} more_images), got {1 + len(more_images)}",
        )
    if product is None:
        category, text = resolve_condition(category, text, searcher, settings)
    k, flt = check_k(k, settings), parse_filter(filter)
    region = parse_box_field(box)
    feedback = {
        "positive_ids": parse_id_list(positive_ids, "positive_ids"),
        "negative_ids": parse_id_list(negative_ids, "negative_ids"),
        "exclude_ids": parse_id_list(exclude_ids, "exclude_ids"),
        "exclude_categories": resolve_categories(
            exclude_categories, searcher, settings, "exclude_categories"
        )
        or [],
        "exclude_texts": split_list_field(exclude_texts, "exclude_texts", "words or phrases"),
    }
    if product is not None:  # this catalog product (changed by modify), through the one path
        hits = await runner.call(
            searcher.search, None, like=product, modify=modify, k=k, filter=flt, **feedback
        )
        took = round((time.perf_counter() - start) * 1000, 2)
        return {"results": hits_json(hits), "condition": {"category": None, "text": None},
                "k": k, "took_ms": took, "box": None, "modify": modify, "like": product,
                "presence": None}  # fmt: skip
    if modify is not None:  # (an empty form field arrives as None: not given)
        feedback["modify"] = modify
    alone = any(feedback.values()) or bool(more_images)  # its own query: never micro-batched
    # whether the asked item is in the photo, when the model can tell
    ask_presence = (category is not None or text is not None) and searcher.has_presence
    asked = {"category": category, "text": text}
    if runner.batching and not alone:  # the search joins a batch; the rest run beside it
        photo = await query_image(image, settings, runner, region)
        jobs = [runner.search(searcher, photo, **asked, k=k, filter=flt)]
        if want_attention:
            jobs.append(runner.call(searcher.attention, photo, **asked))
        if ask_presence:
            jobs.append(runner.call(searcher.presence, photo, **asked))
        hits, *rest = await asyncio.gather(*jobs)
        shown = rest.pop(0) if want_attention else None
        present = rest.pop(0) if ask_presence else None
    else:  # one job: a request waits in the queue once, and its photo is decoded once
        data = await read_image(image, "image")
        more = [await read_image(f, "more_images") for f in more_images or []]

        def answer() -> tuple[Any, Any, Any]:
            photo = _decode_and_crop(data, settings.max_pixels, region)
            others = [_decode_and_crop(d, settings.max_pixels, region) for d in more]
            query = [photo, *others] if others else photo
            found = searcher.search(query, **asked, k=k, filter=flt, **feedback)
            return (
                found,
                searcher.attention(photo, **asked) if want_attention else None,
                searcher.presence(photo, **asked) if ask_presence else None,
            )

        hits, shown, present = await runner.call(answer)
    body: dict[str, Any] = {
        "results": hits_json(hits),
        "condition": asked,
        "k": k,
        "took_ms": round((time.perf_counter() - start) * 1000, 2),
        "box": None if region is None else str(region),
        "modify": modify,
    }
    if want_attention:
        body["attention"] = attention_json(shown)
    body["presence"] = present.as_dict() if ask_presence else None
    return body


@router.post(
    "/shop-the-look",
    response_model=schemas.ShopTheLookResponse,
    summary="Results for every item of the look, one list per category",
    responses=responses(*UPLOAD_ERRORS),
)
async def shop_the_look(
    image: ImageFile,
    searcher: SearcherDep,
    settings: SettingsDep,
    runner: RunnerDep,
    categories: CategoriesField = None,
    k: KField = None,
    box: BoxField = None,
    include_absent: IncludeAbsentField = None,
) -> dict[str, Any]:
    start = time.perf_counter()
    k = check_k(k, settings, default=min(5, settings.max_k))
    names = resolve_categories(categories, searcher, settings)
    everything = parse_flag(include_absent, "include_absent")
    region = parse_box_field(box)
    photo = await query_image(image, settings, runner, region)
    presence = await runner.call(searcher.presence_all, photo, categories=names)
    absent = [] if presence is None else [c for c, p in presence.items() if not p.present]
    shop = names if presence is None else [c for c in presence if everything or c not in absent]
    found = {}
    if shop is None or shop:  # None: every category (no presence head to choose)
        found = await runner.call(searcher.shop_the_look, photo, categories=shop, k=k)
    return {
        "results": {c: hits_json(h) for c, h in found.items()},
        "k": k,
        "took_ms": round((time.perf_counter() - start) * 1000, 2),
        "box": None if region is None else str(region),
        "presence": None if presence is None else {c: p.as_dict() for c, p in presence.items()},
        "absent": [] if everything else absent,
    }


@router.post(
    "/presence",
    response_model=schemas.PresenceResponse,
    summary="Which items are worn in the photo (the model's presence head)",
    responses=responses(*UPLOAD_ERRORS),
)
async def presence(
    image: ImageFile,
    searcher: SearcherDep,
    settings: SettingsDep,
    runner: RunnerDep,
    categories: CategoriesField = None,
    box: BoxField = None,
) -> dict[str, Any]:
    if not searcher.has_presence:
        raise ApiError(
            422,
            "no_presence_head",
            "this model has no presence head; fit one with `referred train --task presence`",
        )
    names = resolve_categories(categories, searcher, settings)
    region = parse_box_field(box)
    photo = await query_image(image, settings, runner, region)
    found = await runner.call(searcher.presence_all, photo, categories=names)
    return {
        "presence": {c: p.as_dict() for c, p in found.items()},
        "box": None if region is None else str(region),
    }


@router.post(
    "/attention",
    response_model=schemas.AttentionResponse,
    summary="Where the model looks in the photo for the chosen item",
    responses=responses(*UPLOAD_ERRORS),
)
async def attention(
    image: ImageFile,
    searcher: SearcherDep,
    settings: SettingsDep,
    runner: RunnerDep,
    category: CategoryField = None,
    text: TextField = None,
    box: BoxField = None,
) -> dict[str, Any]:
    category, text = resolve_condition(category, text, searcher, settings)
    region = parse_box_field(box)
    photo = await query_image(image, settings, runner, region)
    grid = await runner.call(searcher.attention, photo, category=category, text=text)
    return {
        **attention_json(grid),
        "condition": {"category": category, "text": text},
        "box": None if region is None else str(region),
    }
