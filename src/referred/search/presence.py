"""The Searcher's presence answers: is the asked item in the photo at all?

A mixin of :class:`referred.search.Searcher` (it uses the Searcher's query encoder, region
crop and category choices). Without a presence head on the model (see :mod:`referred.presence`)
every answer is None, so callers can always ask.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from referred.presence import Presence
from referred.search.errors import QueryError


class PresenceQueries:
    """``presence`` / ``presence_all`` for a Searcher (needs ``encoder``, ``_region``,
    ``_pixels`` and ``category_choices``)."""

    encoder: Any
    category_choices: tuple[str, ...]

    @property
    def has_presence(self) -> bool:
        """Whether the model carries a presence head."""
        return self.encoder.presence_head is not None

    def presence(
        self, image: Any, *, category: str | None = None, text: str | None = None, box: Any = None
    ) -> Presence | None:
        """Whether an item of ``category`` / ``text`` is worn in ``image`` (or its ``box``):
        the calibrated probability and the decision; None without a presence head or a
        condition. Conditions are checked as :meth:`Searcher.search` checks them."""
        cond = self.encoder.parse(category, text)
        if not self.has_presence or cond.kind == "none":
            return None
        pixels = self._pixels([self._region(image, box)])  # type: ignore[attr-defined]
        p = float(self.encoder.presence(pixels, [cond])[0, 0])
        return Presence(p >= self._threshold(), p)

    def presence_all(
        self, image: Any, *, categories: Sequence[str] | None = None, box: Any = None
    ) -> dict[str, Presence] | None:
        """Presence of every category in ``categories`` (default: every choice, e.g. for the
        chips of an uploaded photo), in that order; None without a presence head."""
        if not self.has_presence:
            return None
        names = self.category_choices if categories is None else categories
        if isinstance(names, str):
            raise QueryError(f"categories must be a list of names, got the str {names!r}")
        conds = list(dict.fromkeys(self.encoder.parse(category=c) for c in names))
        if not conds:
            return {}
        pixels = self._pixels([self._region(image, box)])  # type: ignore[attr-defined]
        probs = self.encoder.presence(pixels, conds)[0]  # (K,)
        t = self._threshold()
        return {c.value: Presence(float(p) >= t, float(p)) for c, p in zip(conds, probs)}

    def _threshold(self) -> float:
        return float(self.encoder.presence_head.threshold)
