"""The compact id table under the catalogue: lookups, collisions, the tail, folding, memory."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from referred.index import idtable
from referred.index.catalog import Catalog
from referred.index.idtable import IdTable


def alive_of(table: IdTable, dead=()) -> np.ndarray:
    mask = np.ones(len(table) + 8, dtype=bool)
    mask[list(dead)] = False
    return mask


def test_rows_and_ids_round_trip_with_dropped_rows():
    ids = ["a", "bags/tote_12", None, "ünïcode-✓", ""]
    table = IdTable(ids)
    alive = alive_of(table, dead=[2])
    assert [table.row(i, alive) for i in ids if i is not None] == [0, 1, 3, 4]
    assert table.to_list() == ids and table.ids_at([3, 0]) == ["ünïcode-✓", "a"]
    assert table.row("missing", alive) == -1 and table.row(3, alive) == -1  # type: ignore[arg-type]


def test_ids_sharing_a_hash_are_told_apart_by_their_bytes(monkeypatch):
    monkeypatch.setattr(idtable, "_hash", lambda s: 7)  # every id collides
    ids = [f"p{i}" for i in range(50)]
    table = IdTable(ids)
    alive = alive_of(table, dead=[10])
    assert [table.row(i, alive) for i in ids] == [-1 if r == 10 else r for r in range(50)]
    assert table.row("p50", alive) == -1


def test_the_tail_folds_and_deleted_ids_come_back_as_new_rows(monkeypatch):
    monkeypatch.setattr(idtable, "MAX_TAIL", 4)
    table = IdTable(["a", "b"])
    alive = np.ones(64, dtype=bool)
    table.append(["c", "d", "e"], alive)
    assert table._n_base == 2 and [table.row(i, alive) for i in "cde"] == [2, 3, 4]
    table.drop(np.array([1, 3]))  # "b" in the base, "d" in the tail
    alive[[1, 3]] = False
    assert table.row("b", alive) == table.row("d", alive) == -1
    table.append(["b", "f", "g"], alive)  # the tail passes 4: folded into the base
    assert table._n_base == 8 and not table._tail
    assert [table.row(i, alive) for i in "abcdefg"] == [0, 5, 2, -1, 4, 6, 7]
    assert table.to_list() == ["a", None, "c", None, "e", "b", "f", "g"]
    table.truncate(6)  # an append undone, across the fold
    assert table.to_list() == ["a", None, "c", None, "e", "b"] and table.row("f", alive) == -1


def test_sliced_and_chunked_arrays_are_read_as_they_are():
    whole = pa.array(["x0", "x1", None, "x3", "x4"], type=pa.string())
    chunked = pa.chunked_array([whole[1:3], whole[3:]])
    table = IdTable.from_arrow(chunked)
    assert table.to_list() == ["x1", None, "x3", "x4"]
    assert table.row("x3", alive_of(table)) == 2 and table.row("x0", alive_of(table)) == -1


def test_a_million_ids_take_tens_of_bytes_each():
    n = 1_000_000
    table = IdTable.from_arrow(pa.array([f"v{i}" for i in range(n)], type=pa.string()))
    assert table.nbytes() / n < 32  # a dict of str takes ~160 bytes an id
    assert table.row("v765432", np.ones(n, dtype=bool)) == 765432


def test_the_catalogue_keeps_rows_through_deletes_rollbacks_and_compaction():
    cat = Catalog()
    empty = pa.table({"_": pa.nulls(3)}).drop_columns(["_"])
    cat.append(["a", "b", "c"], empty)
    mark = cat.mark()
    cat.append(["d", "e", "f"], empty)
    cat.rollback(mark)
    assert cat.n_alive == 3 and "d" not in cat and cat.n_rows == 3
    cat.kill(cat.rows_of(["b"]))
    assert "b" not in cat and cat.n_alive == 2 and cat.n_dead == 1
    assert list(cat.ids_of(np.array([[0, 1, -1]]))[0]) == ["a", None, ""]
    back = Catalog.from_arrow(cat.to_arrow())
    assert back.rows_of(["a", "c"]).tolist() == [0, 2] and back.n_alive == 2
    kept = back.compact()
    assert kept.tolist() == [True, False, True] and back.rows_of(["c"]).tolist() == [1]
    with pytest.raises(Exception, match="'b'"):
        back.rows_of(["b"])
