"""Bulk inserts for a batch's rows: one statement, one parameter per column, rows in order.

SQLAlchemy's multi-row INSERT (insertmanyvalues) renders a parameter per value: a batch of
500 outbox rows is 5,000 bound values processed one by one in Python, and a statement text
PostgreSQL parses anew. On PostgreSQL `insert_rows` sends each column as one array instead
(`INSERT ... SELECT FROM unnest(arrays)`, the same shape as the decisions' UPDATE), and a
column whose value is the same in every row (the event, a status, the batch's timestamp) as
one scalar. Rows are inserted in the given order (WITH ORDINALITY ... ORDER BY): ids drawn
from the sequence follow it, and queues (the waitlist, the outbox) are in id order.
Elsewhere (SQLite) the ordinary multi-row INSERT. Nothing here commits.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

from sqlalchemy import Dialect, Executable, Row, Table, TextClause, insert, text
from sqlalchemy.dialects import sqlite

from atomicseats.services.unit_of_work import UnitOfWork


def insert_rows(
    work: UnitOfWork,
    table: Table,
    rows: Sequence[Mapping[str, object]],
    returning: Sequence[str] = (),
    skip_conflicts: bool = False,
) -> Sequence[Row[Any]]:
    """Insert `rows` (each with the same keys) in order; the `returning` columns of each new
    row, in no particular order (an empty list without `returning`). `skip_conflicts`: a row
    that would break a unique constraint is left out (ON CONFLICT DO NOTHING), and returns nothing."""
    if not rows:
        return []
    statement, parameters = insert_statement(work.session.get_bind().dialect, table, rows, returning, skip_conflicts)
    result = work.session.execute(statement, parameters)
    return result.all() if returning else []


def insert_statement(
    dialect: Dialect,
    table: Table,
    rows: Sequence[Mapping[str, object]],
    returning: Sequence[str] = (),
    skip_conflicts: bool = False,
) -> tuple[Executable, Any]:
    """`insert_rows`' statement and its parameters, to execute later (`rows` not empty)."""
    assert rows
    if dialect.name != "postgresql":
        statement = sqlite.insert(table).on_conflict_do_nothing() if skip_conflicts else insert(table)
        if returning:
            return statement.returning(*(table.c[name] for name in returning)), rows
        return statement, rows
    columns = list(rows[0])
    select_list: list[str] = []
    arrays: list[str] = []
    array_names: list[str] = []
    params: dict[str, object] = {}
    for index, name in enumerate(columns):
        values = [row[name] for row in rows]
        sql_type = _sql_type(dialect, table, name)
        first = values[0]
        if all(value == first for value in values):  # one scalar for the whole batch
            params[f"k{index}"] = first
            select_list.append(f"CAST(:k{index} AS {sql_type})")
        else:
            params[f"v{index}"] = values
            arrays.append(f"CAST(:v{index} AS {sql_type}[])")
            array_names.append(f"v{index}")
            select_list.append(f"batch.v{index}")
    source = (
        f"unnest({', '.join(arrays)}) WITH ORDINALITY AS batch ({', '.join(array_names)}, n)"
        if arrays
        else f"generate_series(1, {len(rows)}) AS batch (n)"
    )
    sql = (
        f"INSERT INTO {table.name} ({', '.join(columns)}) "  # nosec B608  # names from the table, values bound
        f"SELECT {', '.join(select_list)} FROM {source} ORDER BY batch.n"
    )
    if skip_conflicts:
        sql += " ON CONFLICT DO NOTHING"
    if returning:
        sql += f" RETURNING {', '.join(returning)}"
    return _text(sql), params


# A batch's statement is one of few shapes (which columns are arrays): built once each, not per
# batch (~60 us of a small batch's ~8 ms of worker CPU went to compiling types and parsing text).
@lru_cache(maxsize=256)
def _sql_type(dialect: Dialect, table: Table, name: str) -> str:
    return table.c[name].type.compile(dialect=dialect)


@lru_cache(maxsize=256)
def _text(sql: str) -> TextClause:
    return text(sql)
