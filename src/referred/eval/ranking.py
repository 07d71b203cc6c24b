"""Exact streamed ranking: one pass over the distractors answers a whole distractor sweep.

For every query we keep, while distractor blocks stream by in metadata order,

* the number of items scoring above its target (``counts``; rank = counts + 1) and the same
  count restricted to the target's category (filtered recall);
* the same two counts weighted by the multiplicities of each bootstrap subset
  (:class:`WeightSpec`), for any number of subsets at once;
* a running top-k (score, position, category), merged block after block.

The sweep's distractor counts are prefixes ("the first n distractors"), so the counts and the
top-k are copied out whenever the stream crosses one of them. The ``(n_q, n_dist)`` score
matrix never exists: each step scores one query chunk against one block with a float32 matmul.

Speed: after the first blocks the top-k threshold is high and most targets rank well, so only
a small share of a block scores above ``min(target score, k-th best score)``. Those candidates
are extracted sparsely; a chunk where too many qualify (bad targets) is counted densely. The
tie rule is the one of :mod:`referred.eval.metrics` (gallery first, then distractors; equal
scores rank by position).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from referred.eval.sources import BlockSource, Multiplicity, prefetch

MATMULS = ("numpy", "torch")
_GALLERY_CHUNK_ELEMS = 1 << 25  # score elements per gallery step (128 MiB of float32)


@dataclass(frozen=True)
class WeightSpec:
    """One weighted configuration (a bootstrap subset) of gallery items and distractors.

    ``gallery``: ``(n_g,)`` integer multiplicity of each gallery item (0 = absent);
    ``distractors``: multiplicities over the distractor stream.
    """

    gallery: np.ndarray
    distractors: Multiplicity


@dataclass(frozen=True)
class SweepResult:
    """Ranks and top-k for each distractor count of a sweep, plus weighted ranks.

    Positions are global: ``p < n_gallery`` is gallery item ``p``, otherwise distractor
    ``p - n_gallery`` (metadata order); empty top-k slots hold position -1 and category -1.
    """

    distractor_counts: tuple[int, ...]  # sorted, unique
    ranks: np.ndarray  # (n_counts, n_q) int64
    filtered_ranks: np.ndarray  # (n_counts, n_q) int64
    topk_positions: np.ndarray  # (n_counts, n_q, k) int64
    topk_scores: np.ndarray  # (n_counts, n_q, k) float32
    topk_categories: np.ndarray  # (n_counts, n_q, k) int64
    target_categories: np.ndarray  # (n_q,) int64
    weighted_ranks: np.ndarray  # (n_weights, n_q) int64, over the whole stream
    weighted_filtered_ranks: np.ndarray  # (n_weights, n_q) int64
    n_gallery: int
    n_streamed: int

    def index(self, n_distractors: int) -> int:
        """Row of ``n_distractors`` in the per-count arrays."""
        try:
            return self.distractor_counts.index(int(n_distractors))
        except ValueError:
            raise KeyError(
                f"{n_distractors} distractors not in the sweep {self.distractor_counts}"
            ) from None


Matmul = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def _matmul(name: str) -> Matmul:
    """``mm(a (c, d), b (n, d), out (c, n)) -> out = a @ b.T`` in float32, numpy or torch.

    Writing into a reused buffer avoids faulting in fresh pages for every block.
    """
    if name == "numpy":
        return lambda a, b, out: np.matmul(a, b.T, out=out)
    if name == "torch":
        import torch  # optional here: eval needs torch only when asked for

        def mm(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> np.ndarray:
            ta = torch.from_numpy(a if a.flags.writeable else a.copy())
            tb = torch.from_numpy(b if b.flags.writeable else b.copy())
            torch.mm(ta, tb.T, out=torch.from_numpy(out))
            return out

        return mm
    raise ValueError(f"unknown matmul {name!r}; expected one of {MATMULS}")


def _segment_sums(rows: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sum ``values`` (n, w) over runs of equal ``rows`` (sorted): (unique rows, (u, w) sums)."""
    starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
    return rows[starts], np.add.reduceat(values, starts, axis=0)


class _State:
    """Per-query running counts and top-k; every array covers all queries."""

    def __init__(self, n_q: int, k: int, n_w: int, tpos: np.ndarray, tcat: np.ndarray):
        self.k, self.tpos, self.tcat = k, tpos, tcat
        self.t = np.zeros(n_q, np.float32)  # target scores
        self.counts = np.zeros(n_q, np.int64)
        self.fcounts = np.zeros(n_q, np.int64)
        self.wcounts = np.zeros((n_q, n_w), np.int64)
        self.wfcounts = np.zeros((n_q, n_w), np.int64)
        self.top_v = np.full((n_q, k), -np.inf, np.float32)
        self.top_p = np.full((n_q, k), -1, np.int64)
        self.top_c = np.full((n_q, k), -1, np.int64)
        self._mask = np.empty(0, dtype=bool)  # reused candidate mask

    def snapshot(self) -> tuple[np.ndarray, ...]:
        """(ranks, filtered ranks, top-k positions, scores, categories), copied."""
        return (
            self.counts + 1,
            self.fcounts + 1,
            self.top_p.copy(),
            self.top_v.copy(),
            self.top_c.copy(),
        )

    def mask_buffer(self, shape: tuple[int, int]) -> np.ndarray:
        size = shape[0] * shape[1]
        if self._mask.size < size:
            self._mask = np.empty(size, dtype=bool)
        return self._mask[:size].reshape(shape)

    def merge_topk(self, rows: np.ndarray, vals: np.ndarray, pos: np.ndarray, cats: np.ndarray):
        """Merge candidates into the top-k of ``rows`` (order: score desc, position asc)."""
        if rows.size == 0:
            return
        k = self.k
        urows, inv = np.unique(rows, return_inverse=True)
        u = urows.size
        group = np.concatenate([np.repeat(np.arange(u), k), inv])
        v = np.concatenate([self.top_v[urows].ravel(), vals])
        p = np.concatenate([self.top_p[urows].ravel(), pos])
        c = np.concatenate([self.top_c[urows].ravel(), cats])
        order = np.lexsort((p, -v, group))  # every group holds >= k entries
        sizes = k + np.bincount(inv, minlength=u)
        take = order[((np.cumsum(sizes) - sizes)[:, None] + np.arange(k)).ravel()]
        self.top_v[urows] = v[take].reshape(u, k)
        self.top_p[urows] = p[take].reshape(u, k)
        self.top_c[urows] = c[take].reshape(u, k)

    def topk_dense(self, r0: int, scores: np.ndarray, pos0: int, cats: np.ndarray):
        """Top-k update from a full ``(c, b)`` block of scores."""
        c, b = scores.shape
        thr = self.top_v[r0 : r0 + c, -1]
        cand = scores > thr[:, None]
        if b > self.k and not np.all(np.isfinite(thr)):
            # Rows still filling up: only the block's own top-k (ties kept) can enter.
            kth = -np.partition(-scores, self.k - 1, axis=1)[:, self.k - 1]
            cand &= scores >= kth[:, None]
        flat = np.flatnonzero(cand)
        rows, cols = np.divmod(flat, b)
        self.merge_topk(r0 + rows, scores.ravel()[flat], pos0 + cols, cats[cols])

    def count_dense(self, r0: int, beat: np.ndarray, cats: np.ndarray, w: np.ndarray | None):
        """Add a ``(c, b)`` bool mask of items beating their target to every count."""
        c = beat.shape[0]
        rs_all = slice(r0, r0 + c)
        self.counts[rs_all] += np.count_nonzero(beat, axis=1)
        wf = None
        if w is not None:
            wf = w.astype(np.float32 if w.max(initial=0) * w.shape[0] < 2**24 else np.float64)
            self.wcounts[rs_all] += np.rint(beat.astype(wf.dtype) @ wf).astype(np.int64)
        tcat = self.tcat[rs_all]
        for v in np.intersect1d(np.unique(cats), np.unique(tcat)):
            rs, cs = np.flatnonzero(tcat == v), np.flatnonzero(cats == v)
            sub = beat[np.ix_(rs, cs)]  # (|rs|, |cs|) same-category block
            self.fcounts[r0 + rs] += np.count_nonzero(sub, axis=1)
            if wf is not None:
                self.wfcounts[r0 + rs] += np.rint(sub.astype(wf.dtype) @ wf[cs]).astype(np.int64)

    def distractor_chunk(
        self,
        r0: int,
        scores: np.ndarray,
        pos0: int,
        cats: np.ndarray,
        w: np.ndarray | None,
        dense_fraction: float,
    ):
        """Account a ``(c, b)`` block of distractor scores (positions after every target)."""
        c, b = scores.shape
        t = self.t[r0 : r0 + c]
        thr = self.top_v[r0 : r0 + c, -1]
        # Superset of the items beating their target and of the top-k entrants.
        cand = np.greater(scores, np.minimum(t, thr)[:, None], out=self.mask_buffer((c, b)))
        if np.count_nonzero(cand) > dense_fraction * cand.size:
            self.count_dense(r0, scores > t[:, None], cats, w)
            self.topk_dense(r0, scores, pos0, cats)
            return
        flat = np.flatnonzero(cand)
        rows, cols = np.divmod(flat, b)  # rows ascending
        vals = scores.ravel()[flat]
        beat = vals > t[rows]
        br, bc = rows[beat], cols[beat]
        same = cats[bc] == self.tcat[r0 + br]
        self.counts[r0 : r0 + c] += np.bincount(br, minlength=c)
        self.fcounts[r0 : r0 + c] += np.bincount(br[same], minlength=c)
        if w is not None and br.size:
            ur, sums = _segment_sums(br, w[bc])
            self.wcounts[r0 + ur] += sums
            if np.any(same):
                ur, sums = _segment_sums(br[same], w[bc[same]])
                self.wfcounts[r0 + ur] += sums
        top = vals > thr[rows]
        self.merge_topk(r0 + rows[top], vals[top], pos0 + cols[top], cats[cols[top]])


def _gallery_pass(
    state: _State,
    q: np.ndarray,
    g: np.ndarray,
    gcat: np.ndarray,
    wg: np.ndarray | None,
    mm: Matmul,
    query_chunk: int,
) -> None:
    """Score the gallery in full rows per query chunk: the target scores come from the same
    matmul as the other gallery scores, and equal scores of earlier items count (tie rule)."""
    n_q, n_g = q.shape[0], g.shape[0]
    chunk = max(1, min(query_chunk, _GALLERY_CHUNK_ELEMS // n_g))
    gpos = np.arange(n_g)
    for r0 in range(0, n_q, chunk):
        r1 = min(r0 + chunk, n_q)
        tpos = state.tpos[r0:r1]
        s = mm(q[r0:r1], g, np.empty((r1 - r0, n_g), np.float32))  # (c, n_g)
        t = s[np.arange(r1 - r0), tpos][:, None]  # (c, 1)
        state.t[r0:r1] = t[:, 0]
        beat = (s > t) | ((s == t) & (gpos[None, :] < tpos[:, None]))
        state.count_dense(r0, beat, gcat, wg)
        state.topk_dense(r0, s, 0, gcat)


def _segments(
    source: BlockSource, dim: int, cuts: Sequence[int], block_size: int
) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """Re-cut the source into ``(start, (b, d) float32, (b,) cats)`` pieces of at most
    ``block_size`` rows that never straddle a cut; stop at the last cut."""
    end, pos = cuts[-1], 0
    if end == 0:
        return
    for emb, cats in source:
        emb, cats = np.asarray(emb), np.asarray(cats)
        if emb.ndim != 2 or emb.shape[1] != dim or cats.shape != (emb.shape[0],):
            raise ValueError(
                f"distractor block must be (n, {dim}) with (n,) categories, got "
                f"{emb.shape} and {cats.shape}"
            )
        i = 0
        while i < emb.shape[0] and pos < end:
            next_cut = cuts[bisect.bisect_right(cuts, pos)]
            take = min(emb.shape[0] - i, block_size, next_cut - pos)
            piece = np.ascontiguousarray(emb[i : i + take], dtype=np.float32)
            yield pos, piece, cats[i : i + take].astype(np.int64, copy=False)
            pos, i = pos + take, i + take
        if pos >= end:
            return
    raise ValueError(f"the distractor source ended after {pos} vectors; {end} are needed")


def _check_inputs(queries, gallery, gallery_categories, target_index):
    q = np.ascontiguousarray(queries, dtype=np.float32)
    g = np.ascontiguousarray(gallery, dtype=np.float32)
    if q.ndim != 2 or g.ndim != 2 or q.shape[1] != g.shape[1]:
        raise ValueError(f"queries (n_q, d) and gallery (n_g, d) disagree: {q.shape} {g.shape}")
    if q.shape[0] == 0 or g.shape[0] == 0:
        raise ValueError("queries and gallery must not be empty")
    if not np.all(np.isfinite(q)):
        raise ValueError("queries contain NaN or infinite values")
    gcat = np.asarray(gallery_categories)
    if gcat.shape != (g.shape[0],) or gcat.dtype.kind not in "iu":
        raise ValueError(f"gallery_categories must be int ({g.shape[0]},), got {gcat.shape}")
    if target_index is None:
        if q.shape[0] != g.shape[0]:
            raise ValueError(
                "without target_index, query i's target is gallery row i: sizes differ"
            )
        target_index = np.arange(q.shape[0])
    tpos = np.asarray(target_index, dtype=np.int64)
    if tpos.shape != (q.shape[0],) or np.any((tpos < 0) | (tpos >= g.shape[0])):
        raise ValueError(f"target_index must be (n_q,) indices into the gallery [0, {g.shape[0]})")
    tcat = gcat[tpos].astype(np.int64)
    if np.any(tcat < 0):
        raise ValueError("every target needs a known (non-negative) category")
    return q, g, gcat.astype(np.int64), tpos, tcat


def sweep_ranks(
    queries: np.ndarray,
    gallery: np.ndarray,
    gallery_categories: np.ndarray,
    distractors: BlockSource,
    distractor_counts: Sequence[int],
    *,
    target_index: np.ndarray | None = None,
    k: int = 10,
    weights: Sequence[WeightSpec] = (),
    block_size: int = 16_384,
    query_chunk: int = 2_048,
    matmul: str = "numpy",
    dense_fraction: float = 0.02,
    read_ahead: int = 2,
    progress: Callable[[int], None] | None = None,
) -> SweepResult:
    """Rank every query's target among gallery + the first ``n`` distractors, for each ``n``.

    Args:
        queries: ``(n_q, d)`` float32 query embeddings (L2-normalised: scores are inner
            products).
        gallery: ``(n_g, d)`` target images of the test products, in order.
        gallery_categories: ``(n_g,)`` int category of each gallery item (``>= 0``).
        distractors: iterable of ``((n_b, d) embeddings, (n_b,) int categories)`` blocks in
            metadata order; negative categories never match a target. Read once, and only as
            far as the largest count or weight needs.
        distractor_counts: prefix sizes to report, e.g. ``(0, 10_000, 100_000)``.
        target_index: ``(n_q,)`` gallery row of each query's target; default ``arange(n_q)``.
        k: top-k kept per query (Cat@K needs ``K <= k``).
        weights: bootstrap subsets; their ranks cover the whole stream (weights are zero
            beyond a subset's support, so the stream runs to the furthest support).
        block_size: distractor rows scored per step; ``query_chunk``: query rows per step.
        matmul: ``"numpy"`` (BLAS) or ``"torch"`` (``torch.mm``; mind ``torch.set_num_threads``).
        dense_fraction: share of candidate scores above which a step is counted densely.
        read_ahead: source blocks read ahead in a background thread (0: none).
        progress: called with the number of distractors consumed after each block.
    """
    q, g, gcat, tpos, tcat = _check_inputs(queries, gallery, gallery_categories, target_index)
    if k < 1 or block_size < 1 or query_chunk < 1:
        raise ValueError(
            f"k, block_size, query_chunk must be >= 1: {k}, {block_size}, {query_chunk}"
        )
    counts = sorted({int(n) for n in distractor_counts})
    if not counts or counts[0] < 0:
        raise ValueError(f"distractor_counts must be non-negative and non-empty: {counts}")
    mm = _matmul(matmul)
    n_q, n_g, n_w = q.shape[0], g.shape[0], len(weights)
    for spec in weights:
        if np.shape(spec.gallery) != (n_g,):
            raise ValueError(f"WeightSpec.gallery must have shape ({n_g},)")
    end = max([counts[-1], *(spec.distractors.end for spec in weights)])
    cuts = sorted(set(counts) | {end})
    state = _State(n_q, k, n_w, tpos, tcat)

    wg = np.stack([np.asarray(s.gallery, np.int64) for s in weights], 1) if n_w else None
    _gallery_pass(state, q, g, gcat, wg, mm, query_chunk)
    snaps = [state.snapshot()] if counts[0] == 0 else []
    streamed = 0
    out = np.empty(min(query_chunk, n_q) * block_size, np.float32)  # reused score buffer
    blocks = prefetch(distractors, read_ahead)
    try:
        for start, emb, cats in _segments(blocks, q.shape[1], cuts, block_size):
            stop = start + emb.shape[0]
            w = None
            if n_w:
                w = np.stack([s.distractors.dense(start, stop) for s in weights], 1)  # (b, n_w)
                w = w if w.any() else None
            for r0 in range(0, n_q, query_chunk):
                r1 = min(r0 + query_chunk, n_q)
                scores = mm(q[r0:r1], emb, out[: (r1 - r0) * len(emb)].reshape(r1 - r0, -1))
                state.distractor_chunk(r0, scores, n_g + start, cats, w, dense_fraction)
            streamed = stop
            if stop in counts:
                snaps.append(state.snapshot())
            if progress is not None:
                progress(stop)
    finally:
        blocks.close()  # stops the reader thread, also when the stream ends early

    ranks, franks, top_p, top_v, top_c = (np.stack(a) for a in zip(*snaps))
    return SweepResult(
        distractor_counts=tuple(counts),
        ranks=ranks,
        filtered_ranks=franks,
        topk_positions=top_p,
        topk_scores=top_v,
        topk_categories=top_c,
        target_categories=tcat,
        weighted_ranks=(state.wcounts + 1).T.copy(),
        weighted_filtered_ranks=(state.wfcounts + 1).T.copy(),
        n_gallery=n_g,
        n_streamed=streamed,
    )
