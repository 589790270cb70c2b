"""Arrays of numbers sent to PostgreSQL already packed in its binary array format.

psycopg turns a list into an array parameter element by element, in Python: for ingest's
one statement a group (`lantern.ingest.postgres`), which sends several numbers an event,
that took more of the writer's time than building the lists. `packed` packs a list with
numpy in one piece instead, and the dumpers that `register_packed` gives a connection
(every PostgreSQL connection of `make_engine`) hand those bytes over as they are. Arrays
without NULLs only: a missing value must travel as a number the statement reads as none.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any, ClassVar, TypeVar

import numpy as np
from psycopg.adapt import AdaptersMap, Dumper
from psycopg.pq import Format


class PackedArray(bytes):
    """A one-dimensional PostgreSQL array in its binary format; a subclass per element type
    (a dumper is chosen by the parameter's class)."""

    array_oid: ClassVar[int]
    element_oid: ClassVar[int]
    dtype: ClassVar[str]  # numpy's, big-endian as PostgreSQL's binary values are


P = TypeVar("P", bound=PackedArray)


class Int4Array(PackedArray):
    array_oid, element_oid, dtype = 1007, 23, ">i4"


class Int8Array(PackedArray):
    array_oid, element_oid, dtype = 1016, 20, ">i8"


class Float8Array(PackedArray):
    array_oid, element_oid, dtype = 1022, 701, ">f8"


class BoolArray(PackedArray):
    array_oid, element_oid, dtype = 1000, 16, "u1"


def packed(kind: type[P], values: Sequence[Any]) -> P:
    """The values as a PostgreSQL array of `kind`'s element type (no NULLs)."""
    if not values:
        return kind(struct.pack(">iiI", 0, 0, kind.element_oid))
    body = np.empty(len(values), dtype=[("size", ">i4"), ("value", kind.dtype)])
    body["size"] = body.dtype["value"].itemsize
    body["value"] = values
    # one dimension, no NULLs, the element type; the dimension's length, from index 1
    head = struct.pack(">iiIii", 1, 0, kind.element_oid, len(values), 1)
    return kind(head + body.tobytes())


def _dumper_of(kind: type[PackedArray]) -> type[Dumper]:
    class PackedDumper(Dumper):
        format = Format.BINARY
        oid = kind.array_oid

        def dump(self, obj: Any) -> bytes:
            return obj

    return PackedDumper


_DUMPERS = {kind: _dumper_of(kind) for kind in (Int4Array, Int8Array, Float8Array, BoolArray)}


def register_packed(adapters: AdaptersMap) -> None:
    """Let a psycopg connection (its `adapters`) send `PackedArray` parameters."""
    for kind, dumper in _DUMPERS.items():
        adapters.register_dumper(kind, dumper)
