"""Batches sent as Apache Arrow: one typed column per feature, checked a column at a time.

A JSON batch is text: 1,000 rows are parsed into 1,000 objects and every field of
every row is validated on its own. An Arrow IPC stream
(https://arrow.apache.org/docs/format/Columnar.html#ipc-streaming-format) carries
each feature as one column of typed values, which a client writes straight from a
pandas or Polars DataFrame, and which is read here without copying and checked with
one NumPy operation per column: modelship's README, "Performance", has the figures.

The checks are the JSON schema's (``app.schemas.Features``): the same types, bounds
and categories, and an error for each offending value with the same ``type`` as
pydantic gives its JSON counterpart, at ``rows[3].age``. What concerns a whole column
(missing, unknown, of the wrong Arrow type) is reported at ``rows.age``.

pyarrow is imported by the first Arrow request: importing it takes about 0.14 s, which
a service whose callers only send JSON never spends at start-up.
"""

import struct
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, overload

import annotated_types
import numpy as np
import numpy.typing as npt
from fastapi.exceptions import RequestValidationError

from app.errors import BatchTooLarge, InvalidArrow
from app.features import FeatureSpec
from app.schemas import FEATURES, Features

if TYPE_CHECKING:
    import pyarrow as pa

ARROW_STREAM: Final = "application/vnd.apache.arrow.stream"
"""The media type of an Arrow IPC stream (IANA)."""

# Message headers of the IPC format's flatbuffers schema (format/Message.fbs).
_RECORD_BATCH: Final = 3
_DICTIONARY_BATCH: Final = 2

_TYPE_ERRORS: Final = {
    "float": ("float_type", "Input should be a valid number"),
    "integer": ("int_type", "Input should be a valid integer"),
    "boolean": ("bool_type", "Input should be a valid boolean"),
}
_COLUMN_TYPES: Final = {
    "float": "numbers (an integer or floating-point type)",
    "integer": "integers (an integer type; 1.0 is refused, as in JSON)",
    "boolean": "booleans",
    "categorical": "strings (string, large_string, string_view or a dictionary of strings)",
}


def is_arrow(content_type: str | None) -> bool:
    """Whether a Content-Type header names an Arrow IPC stream."""
    return content_type is not None and content_type.split(";")[0].strip().lower() == ARROW_STREAM


@dataclass(frozen=True, slots=True)
class Bounds:
    lowest: float | None
    highest: float | None


def _bounds(name: str) -> Bounds:
    """The ``ge`` and ``le`` of a feature, as ``Features`` declares them for JSON."""
    lowest = highest = None
    for constraint in Features.model_fields[name].metadata:
        if isinstance(constraint, annotated_types.Ge):
            lowest = float(constraint.ge)  # type: ignore[arg-type]
        elif isinstance(constraint, annotated_types.Le):
            highest = float(constraint.le)  # type: ignore[arg-type]
    return Bounds(lowest, highest)


BOUNDS: Final = {feature.name: _bounds(feature.name) for feature in FEATURES}


def _field(metadata: bytes, table: int, index: int) -> int | None:
    """Where field ``index`` of the flatbuffers table at ``table`` is; None if absent."""
    vtable = table - struct.unpack_from("<i", metadata, table)[0]
    vtable_size = struct.unpack_from("<H", metadata, vtable)[0]
    if 4 + 2 * index >= vtable_size:
        return None
    offset: int = struct.unpack_from("<H", metadata, vtable + 4 + 2 * index)[0]
    return table + offset if offset else None


def _table(metadata: bytes, position: int) -> int:
    """The table a flatbuffers offset at ``position`` points to."""
    return position + int(struct.unpack_from("<I", metadata, position)[0])


def declared_rows(body: bytes) -> int:
    """The rows a stream's record batches declare, read from their headers alone.

    Refuses what would let a small body take far more memory than the body limit
    lets through, before any of it is decoded:
    - buffer compression: constant columns compress a thousandfold;
    - a dictionary sent more than once, as a delta or a replacement: pyarrow keeps a
      copy of the dictionary so far for each, and 2,500 deltas of one word in a
      2 MB body took 2 GB.
    An uncompressed stream with each dictionary once is read in place, so the body
    limit bounds it.
    """
    import pyarrow as pa

    rows = 0
    dictionaries: set[int] = set()
    source = pa.BufferReader(body)
    reader = pa.ipc.MessageReader.open_stream(source)
    # pyarrow verifies each message's flatbuffers before handing it over: the offsets
    # read here point inside the metadata.
    for message in reader:
        metadata = message.metadata.to_pybytes()
        root = _table(metadata, 0)
        kind_at = _field(metadata, root, 1)
        header_at = _field(metadata, root, 2)
        kind = metadata[kind_at] if kind_at is not None else 0
        if kind not in (_RECORD_BATCH, _DICTIONARY_BATCH) or header_at is None:
            continue
        header = _table(metadata, header_at)
        if kind == _DICTIONARY_BATCH:
            # DictionaryBatch: id (0), data (1), isDelta (2).
            id_at, data_at, delta_at = (_field(metadata, header, field) for field in (0, 1, 2))
            dictionary = int(struct.unpack_from("<q", metadata, id_at)[0]) if id_at else 0
            if (delta_at is not None and metadata[delta_at]) or dictionary in dictionaries:
                raise InvalidArrow(
                    "the Arrow stream sends a column's dictionary more than once (a delta "
                    "or a replacement); send each dictionary once, as pyarrow does for a "
                    "column whose chunks share one"
                )
            dictionaries.add(dictionary)
            if data_at is None:
                continue
            header = _table(metadata, data_at)
        if _field(metadata, header, 3) is not None:
            raise InvalidArrow(
                "the Arrow stream's buffers are compressed; send it uncompressed "
                "(pyarrow: IpcWriteOptions(compression=None), the default)"
            )
        length_at = _field(metadata, header, 0)
        if kind == _RECORD_BATCH and length_at is not None:
            rows += int(struct.unpack_from("<q", metadata, length_at)[0])
    # The reader stops at the stream's end marker: what follows it, a second stream
    # or anything else, would be left unread, and its rows unanswered.
    left = len(body) - source.tell()
    if left:
        raise InvalidArrow(
            f"the request body goes on for {left} bytes after the Arrow stream's end "
            "marker; send one stream, every record batch before its end"
        )
    return rows


def _error(
    row: int | None, name: str | None, kind: str, message: str, **ctx: Any
) -> dict[str, Any]:
    """A validation error as pydantic gives one: at ``rows[row].name``, or at ``rows.name``
    for a whole column, or at ``rows`` for the whole batch."""
    location: tuple[int | str, ...] = ("body", "rows")
    if row is not None:
        location += (row,)
    if name is not None:
        location += (name,)
    error: dict[str, Any] = {"loc": location, "msg": message, "type": kind}
    if ctx:
        error["ctx"] = ctx
    return error


def _literal(values: Sequence[str]) -> str:
    """The allowed values as pydantic lists them: 'a', 'b' or 'c'."""
    quoted = [repr(value) for value in values]
    return quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} or {quoted[-1]}"


def _accepts(feature: FeatureSpec, kind: "pa.DataType") -> bool:
    import pyarrow as pa

    if pa.types.is_null(kind):
        return True
    if feature.type == "float":
        return bool(pa.types.is_floating(kind) or pa.types.is_integer(kind))
    if feature.type == "integer":
        return bool(pa.types.is_integer(kind))
    if feature.type == "boolean":
        return bool(pa.types.is_boolean(kind))
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    return bool(
        pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind)
    )


def _positions(mask: npt.NDArray[np.bool_]) -> list[int]:
    """The rows ``mask`` marks; most columns have none, found by ``any`` alone."""
    return np.flatnonzero(mask).tolist() if mask.any() else []


def _check_numbers(
    feature: FeatureSpec,
    values: npt.NDArray[np.float64],
    present: npt.NDArray[np.bool_],
    narrow: type[np.floating[Any]] | None = None,
) -> list[tuple[int, dict[str, Any]]]:
    """Errors of a number column's present values: not finite, or out of bounds.

    A column of ``narrow`` floats (float32, float16) is held to its bounds in its own
    precision: float32 holds 0.3 as 0.30000001, which a bound of 0.3 would refuse.
    """
    name = feature.name
    declared = bounds = BOUNDS[name]
    if narrow is not None:
        bounds = Bounds(
            None if bounds.lowest is None else float(narrow(bounds.lowest)),
            None if bounds.highest is None else float(narrow(bounds.highest)),
        )
    given = values if present.all() else values[present]
    # Three reductions tell a valid column, as most are; the rows are sought only if not.
    if given.size == 0 or (
        np.isfinite(given).all()
        and (bounds.lowest is None or given.min() >= bounds.lowest)
        and (bounds.highest is None or given.max() <= bounds.highest)
    ):
        return []
    not_finite = present & ~np.isfinite(values)
    errors = [
        (row, _error(row, name, "finite_number", "Input should be a finite number"))
        for row in _positions(not_finite)
    ]
    present = present & ~not_finite
    if bounds.lowest is not None and declared.lowest is not None:
        message = f"Input should be greater than or equal to {declared.lowest:g}"
        errors += [
            (row, _error(row, name, "greater_than_equal", message, ge=declared.lowest))
            for row in _positions(present & (values < bounds.lowest))
        ]
    if bounds.highest is not None and declared.highest is not None:
        message = f"Input should be less than or equal to {declared.highest:g}"
        errors += [
            (row, _error(row, name, "less_than_equal", message, le=declared.highest))
            for row in _positions(present & (values > bounds.highest))
        ]
    return errors


def _lengths(strings: Any) -> npt.NDArray[np.int64]:
    """Each string's length in bytes, for an array of strings (any of Arrow's three
    types), read without making the strings; any where null."""
    import pyarrow as pa
    import pyarrow.compute as pc

    views = strings.buffers()[1] if len(strings) else None
    if views is None:
        return np.zeros(len(strings), dtype=np.int64)
    if pa.types.is_string_view(strings.type):
        # No kernel reads string_view's lengths: a view is 16 bytes, its length the
        # first 4 (https://arrow.apache.org/docs/format/Columnar.html).
        lengths = np.frombuffer(memoryview(views), dtype="<i4").reshape(-1, 4)[:, 0]
        return np.asarray(lengths[strings.offset : strings.offset + len(strings)], dtype=np.int64)
    counted = pc.binary_length(strings).fill_null(0)
    return np.asarray(counted.to_numpy(zero_copy_only=False), dtype=np.int64)


def _strings(strings: Any, longest: int) -> tuple[list[Any], list[bool]]:
    """The values of an array of strings, and which are longer than ``longest`` bytes:
    those are left None, never made."""
    present = np.asarray(strings.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    too_long = present & (_lengths(strings) > longest)
    if not too_long.any():
        return strings.to_pylist(), [False] * len(strings)
    # Row by row (no kernel takes from string_view): this is the path of a refusal.
    values: list[Any] = [None] * len(strings)
    for row in np.flatnonzero(~too_long).tolist():
        values[row] = strings[row].as_py()
    return values, too_long.tolist()


def _read_categories(
    feature: FeatureSpec, column: "pa.ChunkedArray[Any]"
) -> tuple[list[Any], list[tuple[int, dict[str, Any]]]]:
    """A categorical column's values, row by row, and the errors of its values.

    A string is made only once it is known to be short enough to be one of the
    feature's values. Rows may all point at one long string, a dictionary's entry or
    a string_view's bytes: made once a row, 1,000 rows of a 100 KB body took 195 MB.
    A dictionary's entries are made once each, and its rows share them.
    """
    import pyarrow as pa

    longest = max(len(value.encode()) for value in feature.values)
    values: list[Any] = []
    too_long: list[bool] = []
    chunk: Any  # a DictionaryArray's parts are not in pyarrow-stubs' Array
    for chunk in column.chunks:
        if pa.types.is_null(chunk.type):
            values += [None] * len(chunk)
            too_long += [False] * len(chunk)
        elif pa.types.is_dictionary(chunk.type):
            # Read through the dictionary: its null entries are not in the null count.
            entries, long_entries = _strings(chunk.dictionary, longest)
            for at in chunk.indices.to_pylist():
                values.append(None if at is None else entries[at])
                too_long.append(at is not None and long_entries[at])
        else:
            chunk_values, chunk_too_long = _strings(chunk, longest)
            values += chunk_values
            too_long += chunk_too_long
    acceptable = {*feature.values, None}
    expected = _literal(feature.values)
    message = f"Input should be {expected}"
    errors = [
        (row, _error(row, feature.name, "literal_error", message, expected=expected))
        for row, (value, long) in enumerate(zip(values, too_long, strict=True))
        if long or value not in acceptable or (value is None and not feature.optional)
    ]
    return values, errors


Column = list[Any] | npt.NDArray[np.float64]
"""A feature's values in row order: Python objects, or for a float feature that no row
leaves out, the float64 array itself."""


def read_column(
    feature: FeatureSpec, column: "pa.ChunkedArray[Any]"
) -> tuple[Column, npt.NDArray[np.float64] | None, list[tuple[int, dict[str, Any]]]]:
    """A column's values: Python objects, row by row, or the float64 array of a float
    feature without nulls; for a number or boolean feature, as float64 too (NaN where
    missing), as ``encode_rows`` gives them to the model; and the errors of its values."""
    import pyarrow as pa

    name = feature.name
    rows = len(column)
    if feature.type == "categorical":
        categories, found = _read_categories(feature, column)
        return categories, None, found
    if column.null_count:
        nulls = np.asarray(column.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    else:
        nulls = np.zeros(rows, dtype=bool)
    errors: list[tuple[int, dict[str, Any]]] = []
    if not feature.optional and column.null_count:
        kind, message = _TYPE_ERRORS[feature.type]
        errors += [(row, _error(row, name, kind, message)) for row in _positions(nulls)]
    if pa.types.is_null(column.type):
        return [None] * rows, np.full(rows, np.nan), errors
    arrow_type = column.type
    # Unsafe: an integer past 2**53 would refuse to cast; it is out of bounds anyway.
    as_float = column if arrow_type == pa.float64() else column.cast(pa.float64(), safe=False)
    numbers = np.asarray(as_float.to_numpy(zero_copy_only=False), dtype=np.float64)
    if feature.type != "boolean":
        narrow = (
            np.float32
            if pa.types.is_float32(arrow_type)
            else np.float16
            if pa.types.is_float16(arrow_type)
            else None
        )
        errors += _check_numbers(feature, numbers, ~nulls, narrow)
    if column.null_count:
        return (as_float if feature.type == "float" else column).to_pylist(), numbers, errors
    if feature.type == "float":
        # Kept as the array: the log writes it with orjson as it is, and a row reads it
        # only if something reads rows one by one. Making 1,000 rows of 30 Python floats
        # was a tenth of a batch's time in the service.
        return numbers, numbers, errors
    return np.asarray(column.to_numpy(zero_copy_only=False)).tolist(), numbers, errors


class ColumnRows(Sequence[dict[str, Any]]):
    """Rows kept as the columns they came in: a row's dict is made when it is read.

    Making a dict for each of 1,000 rows of 30 features took longer than reading and
    checking the whole stream; the model, the prediction log and the drift tally take
    the columns, so only what reads rows one by one (a shadow model, payload logging,
    a model that takes a DataFrame) pays for them.
    """

    def __init__(self, columns: Mapping[str, Column], length: int) -> None:
        self._names = tuple(columns)
        self._given = tuple(columns.values())
        self._length = length
        self._lists: tuple[list[Any], ...] | None = None

    @property
    def _columns(self) -> tuple[list[Any], ...]:
        """The columns as lists, made once, when a row is first read: a row holds
        Python numbers, as a validated JSON row does, not NumPy's."""
        if self._lists is None:
            self._lists = tuple(
                column.tolist() if isinstance(column, np.ndarray) else column
                for column in self._given
            )
        return self._lists

    def __len__(self) -> int:
        return self._length

    @overload
    def __getitem__(self, index: int) -> dict[str, Any]: ...

    @overload
    def __getitem__(self, index: slice) -> list[dict[str, Any]]: ...

    def __getitem__(self, index: int | slice) -> dict[str, Any] | list[dict[str, Any]]:
        if isinstance(index, slice):
            return [self[position] for position in range(*index.indices(self._length))]
        if not -self._length <= index < self._length:
            raise IndexError(index)
        return {
            name: column[index] for name, column in zip(self._names, self._columns, strict=True)
        }

    def __iter__(self) -> Iterator[dict[str, Any]]:
        names = self._names
        return (dict(zip(names, row, strict=True)) for row in zip(*self._columns, strict=True))


@dataclass(frozen=True)
class ArrowBatch:
    columns: dict[str, Column]
    """The values of each feature, in the schema's order, None where an optional one is
    missing."""
    rows: ColumnRows
    """The same values a dict per row, as validated JSON rows are, made when read."""
    encoded: npt.NDArray[np.float64] | None
    """The rows as ``encode_rows`` gives them to a model that takes a matrix, made from
    the columns at once: for a schema of numbers and booleans only, else None."""


def read_batch(body: bytes, max_rows: int) -> ArrowBatch:
    """The rows of an Arrow IPC stream, once every column and value is valid.

    Raises ``InvalidArrow`` for a body that is not an uncompressed Arrow stream,
    ``BatchTooLarge`` past ``max_rows`` (before a value is read), and
    ``RequestValidationError`` for columns and values the schema refuses.
    """
    import pyarrow as pa

    try:
        declared = declared_rows(body)
        if declared > max_rows:
            raise BatchTooLarge(
                f"the batch holds {declared} rows; the limit is {max_rows} "
                "(APP_MAX_BATCH_SIZE): split it into smaller batches",
                details=[
                    {"field": "rows", "message": f"at most {max_rows} rows", "type": "too_long"}
                ],
            )
        table = pa.ipc.open_stream(body).read_all()
        # The reader trusts what it reads: offsets that point outside their buffers, or
        # text that is not UTF-8, are found only by a full validation.
        table.validate(full=True)
        names = table.column_names
    except (pa.ArrowException, OSError, UnicodeDecodeError, struct.error, IndexError) as exc:
        # pyarrow raises OSError for a stream cut short; the others come from headers
        # that are not what the format says.
        raise InvalidArrow(f"the request body is not an Arrow IPC stream: {exc}") from None
    errors: list[tuple[int, dict[str, Any]]] = []
    known = {feature.name for feature in FEATURES}
    seen: set[str] = set()
    for name in names:
        if name not in known:
            errors.append(
                (-1, _error(None, name, "extra_forbidden", "Extra inputs are not permitted"))
            )
        elif name in seen:
            errors.append(
                (-1, _error(None, name, "duplicate_column", "the column appears more than once"))
            )
        seen.add(name)
    if table.num_rows == 0:
        errors.append(
            (
                -1,
                _error(
                    None,
                    None,
                    "too_short",
                    "List should have at least 1 item after validation, not 0",
                ),
            )
        )
    columns: list[Column] = []
    numbers: list[npt.NDArray[np.float64] | None] = []
    for feature in FEATURES:
        if feature.name not in seen:
            if not feature.optional:
                errors.append((-1, _error(None, feature.name, "missing", "Field required")))
            columns.append([None] * table.num_rows)
            numbers.append(np.full(table.num_rows, np.nan))
            continue
        column = table.column(names.index(feature.name))  # the first, if repeated
        if not _accepts(feature, column.type):
            kind = _TYPE_ERRORS.get(feature.type, ("string_type", ""))[0]
            errors.append(
                (
                    -1,
                    _error(
                        None,
                        feature.name,
                        kind,
                        f"the column is of type {column.type}; send {_COLUMN_TYPES[feature.type]}",
                    ),
                )
            )
            continue
        values, as_numbers, found = read_column(feature, column)
        errors += found
        columns.append(values)
        numbers.append(as_numbers)
    if errors:
        # In the order JSON's validation gives them: the whole batch's, then row by row.
        errors.sort(key=lambda error: error[0])
        raise RequestValidationError([error for _, error in errors])
    by_name = {feature.name: values for feature, values in zip(FEATURES, columns, strict=True)}
    arrays = [array for array in numbers if array is not None]
    encoded = np.column_stack(arrays) if len(arrays) == len(FEATURES) else None
    return ArrowBatch(by_name, ColumnRows(by_name, table.num_rows), encoded)
