"""Rollout rows into Arrow record batches, typed directly where the rows allow.

Open-ended objects (`info`, and extra keys on messages) keep every key seen: a
chunk that brings a new key, or an int where floats were, widens the schema it
is given. A row whose values no schema can hold is a bad row naming its line.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from kbpipe.io.arrays import NotExact, typed_array
from kbpipe.io.rollouts import SCHEMA, BadRow, Chunk

# What pyarrow raises for a value that does not fit: a clash of types, an
# integer beyond int64, a string with a lone surrogate (not valid UTF-8).
_ARROW_ERRORS = (
    pa.ArrowInvalid,
    pa.ArrowTypeError,
    pa.ArrowNotImplementedError,
    OverflowError,
    UnicodeEncodeError,
)


def to_batch(chunk: Chunk, schema: pa.Schema) -> pa.RecordBatch | None:
    """Arrow batch of the chunk's rows in `schema`, widened where the rows bring more.

    Types are inferred from the values, never imposed: a typed conversion would
    silently truncate 4.5 to 4 in an int column and drop unknown nested keys.
    New keys and int -> float promotions widen the schema; a row whose types
    clash with the rest (a string where numbers were) moves to the bad rows.
    None when no row is left. Where every value already is of the type inference
    would give (the usual chunk), the columns are built from buffers instead
    (`_typed_batch`): the same batch, without pa.array's inference pass.
    """
    if chunk.rows:
        # A row that passes here nests 3 levels at most (the evals schema's depth).
        fast = _typed_batch(chunk.rows, schema)
        if fast is not None:
            return fast
    chunk.reject_too_deep()
    while chunk.rows:
        try:
            array = pa.array(chunk.rows)
            target = pa.struct(_widen(schema, array.type))
            return pa.RecordBatch.from_struct_array(
                array if array.type == target else array.cast(target)
            )
        except _ARROW_ERRORS:
            index, error = _first_clash(chunk.rows, schema)
            chunk.reject(index, error)
    return None


def _typed_batch(rows: list[dict[str, Any]], schema: pa.Schema) -> pa.RecordBatch | None:
    """The batch `to_batch`'s inferring path gives, built column by column without
    inference when the rows hold only the types it would infer anyway (the common
    case: every row's fields of the evals schema's types; string-valued info keys
    and message keys, such as 0.3.x's null `tool_calls`). None when a value is of
    another type: the inferring path decides.
    """
    info = _strings_struct([row["info"] for row in rows])
    prompt = _strings_struct([m for row in rows for m in row["prompt"]])
    completion = _strings_struct([m for row in rows for m in row["completion"]])
    if info is None or prompt is None or completion is None:
        return None
    inferred = {"info": info, "prompt": pa.list_(prompt), "completion": pa.list_(completion)}
    row_type = pa.struct([(f.name, inferred.get(f.name, f.type)) for f in SCHEMA])
    try:
        target = _widen(schema, row_type)
        columns = [typed_array([row[f.name] for row in rows], f.type) for f in target]
    except (NotExact, *_ARROW_ERRORS):
        return None
    return pa.RecordBatch.from_arrays(columns, schema=target)


def _strings_struct(objects: list[dict[str, Any]]) -> pa.StructType | None:
    """The struct pa.array infers for these dicts when every value is a string or null:
    keys in order of first appearance, null where a key is only ever null. None
    when some value is of another type (or there are no keys: pa.array would infer
    null, which the evals schema's own type absorbs)."""
    shapes = dict.fromkeys(tuple(o) for o in objects)  # in order of first appearance
    keys = next(iter(shapes)) if len(shapes) == 1 else dict.fromkeys(k for s in shapes for k in s)
    fields = []
    for key in keys:
        kinds = {type(o.get(key)) for o in objects}
        if not kinds <= {str, type(None)}:
            return None
        fields.append((key, pa.string() if str in kinds else pa.null()))
    return pa.struct(fields) if fields else None


def _widen(schema: pa.Schema, row_type: pa.StructType) -> pa.Schema:
    """`schema` plus the struct fields and wider number types `row_type` brings."""
    return pa.unify_schemas([schema, pa.schema(list(row_type))], promote_options="permissive")


def _first_clash(rows: list[dict[str, Any]], schema: pa.Schema) -> tuple[int, BadRow]:
    """Index of the first row that cannot join the ones before it, and why (slow path)."""
    merged = schema
    for i, row in enumerate(rows):
        try:
            array = pa.array([row])
        except _ARROW_ERRORS as exc:
            return i, BadRow("bad value", f"a value cannot be stored ({exc})")
        where = _clash(pa.struct(merged), array.type, "")
        if where:
            return i, BadRow("wrong type", where)
        try:
            merged = _widen(merged, array.type)
            array.cast(pa.struct(merged))
        except _ARROW_ERRORS as exc:
            detail = f"a value does not fit the column types of earlier rows ({exc})"
            return i, BadRow("wrong type", detail)
    raise AssertionError("a chunk failed to convert but every row converts on its own")


def _clash(old: pa.DataType, new: pa.DataType, path: str) -> str | None:
    """The first field whose type in this row cannot be reconciled with earlier rows."""
    if pa.types.is_struct(old) and pa.types.is_struct(new):
        for field in new:
            if old.get_field_index(field.name) >= 0:
                name = f"{path}.{field.name}" if path else field.name
                found = _clash(old.field(field.name).type, field.type, name)
                if found:
                    return found
        return None
    if pa.types.is_list(old) and pa.types.is_list(new):
        return _clash(old.value_type, new.value_type, f"{path}[]")
    try:
        pa.unify_schemas(
            [pa.schema([("x", old)]), pa.schema([("x", new)])], promote_options="permissive"
        )
    except _ARROW_ERRORS:
        return f"{path} is {new} here but {old} in earlier rows"
    return None
