"""Response shapes of the HTTP API, and the one error type routes raise.

Every error leaves the service as ``{"error": {"status", "code", "message", "request_id"}}``
(see :class:`ErrorBody`), whatever raised it.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ApiError(Exception):
    """A problem the client can fix: an HTTP status, a stable code and a message naming it."""

    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.extra = status, code, message, extra


def error_body(status: int, code: str, message: str, request_id: str) -> dict[str, Any]:
    """The JSON body of every error answer (the shape :class:`ErrorBody` documents)."""
    return {"error": {"status": status, "code": code, "message": message, "request_id": request_id}}


class ErrorDetail(BaseModel):
    status: int = Field(description="the HTTP status, repeated")
    code: str = Field(description="stable machine-readable code, e.g. 'unknown_category'")
    message: str = Field(description="what was wrong and what is accepted")
    request_id: str = Field(description="also in the X-Request-ID response header")


class ErrorBody(BaseModel):
    error: ErrorDetail


class Result(BaseModel):
    """One product found; fields beyond these come from the catalog's metadata."""

    model_config = ConfigDict(extra="allow")

    id: str
    score: float = Field(description="cosine similarity to the query, higher is closer")
    category: str | None = None
    title: str | None = None
    image_url: str | None = Field(None, description="GET this for the product image")
    weak: bool = Field(
        False,
        description="probably not the item asked for: the score is under the model's score "
        "floor (fewer than 5 in 100 true matches score so low), or the product's category is "
        "not the one asked (docs/search.md)",
    )


class Attention(BaseModel):
    grid: list[list[float]] = Field(description="(g, g) class-token attention, sums to 1")
    size: int = Field(description="g, the patch grid side")


class Condition(BaseModel):
    category: str | None = None
    text: str | None = None


class Presence(BaseModel):
    """Whether the asked item is in the photo at all (the model's presence head)."""

    present: bool = Field(description="probability >= the head's threshold (0.5)")
    probability: float = Field(
        description="calibrated probability that an item of the asked condition is worn"
    )


PRESENCE_DESCRIPTION = (
    "whether the asked item is in the photo (calibrated on the validation split); null when the "
    "model has no presence head or nothing was asked"
)

BOX_DESCRIPTION = "the region searched, as sent (x0,y0,x1,y1: fractions or pixels); null: all"


class SearchResponse(BaseModel):
    results: list[Result]
    condition: Condition
    k: int
    took_ms: float
    box: str | None = Field(None, description=BOX_DESCRIPTION)
    attention: Attention | None = Field(
        None, description="with a box, over the box's crop padded to a square"
    )
    presence: Presence | None = Field(None, description=PRESENCE_DESCRIPTION)
    modify: str | None = Field(None, description="the modification composed in, as sent")
    like: str | None = Field(
        None, description="the catalog product the search started from (instead of a photo)"
    )


class ShopTheLookResponse(BaseModel):
    results: dict[str, list[Result]] = Field(
        description="category → results, in category order; with a presence head only the "
        "categories found in the photo, unless include_absent"
    )
    k: int
    took_ms: float
    box: str | None = Field(None, description=BOX_DESCRIPTION)
    presence: dict[str, Presence] | None = Field(
        None, description="category → presence, for every category asked; " + PRESENCE_DESCRIPTION
    )
    absent: list[str] = Field(
        default_factory=list, description="categories asked but not found in the photo (left out)"
    )


class PresenceResponse(BaseModel):
    presence: dict[str, Presence] = Field(description="category → presence, in category order")
    box: str | None = Field(None, description=BOX_DESCRIPTION)


class AttentionResponse(Attention):
    condition: Condition
    box: str | None = Field(None, description=BOX_DESCRIPTION + "; the grid covers its crop")


class Product(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str
    category: str | None = None
    title: str | None = None
    image_url: str | None = None


class CategoriesResponse(BaseModel):
    categories: list[str]
    #: True for a text model: the names are sent to its sentence encoder as texts.
    categories_as_text: bool = False
    accepts_text: bool
    #: True when the model has a Combiner: /search takes ``modify`` ("this, but in red").
    composes: bool = False
    max_text_chars: int
    default_k: int
    max_k: int


class Health(BaseModel):
    status: str
    products: int | None = None
    model: str | None = None
    trained_model: bool | None = None
    writes_enabled: bool
    worker: int = Field(description="id of the process that answered (one per --workers)")


class Sample(BaseModel):
    name: str
    image_url: str
    caption: str | None = None
    categories: list[str] | None = Field(None, description="items worn in the scene, if known")


class SamplesResponse(BaseModel):
    samples: list[Sample]


class Deleted(BaseModel):
    id: str
    deleted: bool = True
    products: int
