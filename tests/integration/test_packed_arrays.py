"""Arrays packed for PostgreSQL arrive as the numbers they were made of."""

from __future__ import annotations

import math

import pytest
from sqlalchemy import Engine

from lantern.db.arrays import BoolArray, Float8Array, Int4Array, Int8Array, packed
from lantern.db.dialect import fetch_all


def test_packed_arrays_arrive_as_the_same_numbers_in_the_same_order(engine: Engine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("only PostgreSQL takes arrays")
    int4 = [0, -1, 2**31 - 1, -(2**31), 498_902]
    int8 = [2**63 - 1, -(2**63), 0, -7_631_583_436_742_382_383]
    float8 = [0.1, -2.5e300, 2.0**53, math.nan, 1 / 3]
    flags = [True, False, True]
    with engine.connect() as connection:
        [row] = fetch_all(
            connection,
            "SELECT %(a)b::int[], %(b)b::bigint[], %(c)b::float8[], %(d)b::bool[], "
            "cardinality(%(e)b::bigint[])",
            {
                "a": packed(Int4Array, int4),
                "b": packed(Int8Array, int8),
                "c": packed(Float8Array, float8),
                "d": packed(BoolArray, flags),
                "e": packed(Int8Array, []),
            },
        )
    assert row[0] == int4
    assert row[1] == int8
    assert row[2][:3] == float8[:3] and math.isnan(row[2][3]) and row[2][4] == float8[4]
    assert row[3] == flags
    assert row[4] == 0
