"""One input path: arrays, lists, tensors, a :class:`~hybridml.Dataset` or a pandas
DataFrame become validated float arrays with their names, units, groups and measured mask.

Every estimator, cross-validation, the fine-tuning helpers and :class:`~hybridml.DataLoss`
read their ``X``/``y`` through :func:`as_inputs`, so the same input is accepted (and the
same mistake reported, naming the argument, the row and the column) everywhere.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ..exceptions import DataError, InvalidArgumentError, MissingColumnError, did_you_mean

__all__ = ["InputData", "as_inputs"]


@dataclass(frozen=True, eq=False)
class InputData:
    """Validated inputs (and targets) with their metadata, as returned by :func:`as_inputs`.

    Attributes:
        X: the inputs as float64, shape ``(n, d)``; every value finite.
        y: the targets as float64, shape ``(n, k)`` (NaN: not measured), or None.
        input_names: the ``d`` input names (given, read from the data, or ``x0, x1, ...``).
        output_names: the ``k`` output names (``y0, y1, ...`` when none were given; empty
            without targets).
        units: name -> unit (``""`` when none) for every input and output name.
        groups: one group label per row (cell, experiment), or None.
        measured: per-row flags, True for measured rows, False for synthetic (simulated)
            ones; all True unless a :class:`~hybridml.Dataset` says otherwise.
        named: whether the input names came from the caller or the data (not generated).
        source: where the data came from (a Dataset's source, or the kind of object).
    """

    X: np.ndarray
    y: np.ndarray | None
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]
    units: Mapping[str, str]
    groups: np.ndarray | None
    measured: np.ndarray
    named: bool = False
    source: str = "<arrays>"

    @property
    def n_rows(self) -> int:
        """Number of rows."""
        return int(self.X.shape[0])

    def select(self, index: Any) -> InputData:
        """The rows ``index`` (integer indices or a boolean mask), metadata kept."""
        return replace(
            self,
            X=self.X[index],
            y=None if self.y is None else self.y[index],
            groups=None if self.groups is None else self.groups[index],
            measured=self.measured[index],
        )


# ----------------------------------------------------------------------------- kinds


def _is_dataset(obj: Any) -> bool:
    from . import Dataset

    return isinstance(obj, Dataset)


def _is_frame(obj: Any) -> bool:
    """A pandas DataFrame (duck-typed: pandas is never imported here)."""
    return hasattr(obj, "columns") and hasattr(obj, "iloc") and hasattr(obj, "dtypes")


def _is_series(obj: Any) -> bool:
    return hasattr(obj, "iloc") and hasattr(obj, "to_numpy") and not hasattr(obj, "columns")


def _is_tensor(obj: Any) -> bool:
    return hasattr(obj, "detach") and hasattr(obj, "cpu") and hasattr(obj, "numpy")


def _unit(name: str) -> str:
    from . import parse_unit

    return parse_unit(name)


# ----------------------------------------------------------------------------- numbers


def _first_bad(raw: np.ndarray) -> tuple[int, int, Any]:
    """Row, column and value of the first entry of a 2-d array that is not a number."""
    for i in range(raw.shape[0]):
        for j in range(raw.shape[1]):
            v = raw[i, j]
            v = v.item() if isinstance(v, np.generic) else v
            if isinstance(v, str | bytes):
                try:
                    float(v)
                except ValueError:
                    return i, j, v
                continue
            try:
                float(v)
            except (TypeError, ValueError):
                return i, j, v
    return -1, -1, None


def _floats(raw: Any, arg: str, what: str, names: Sequence[str] | None) -> np.ndarray:
    """``raw`` as a 2-d float64 array; strings and other non-numbers are a DataError."""
    if _is_tensor(raw):
        raw = raw.detach().cpu().numpy()
    elif _is_series(raw):
        raw = raw.to_numpy()
    arr = np.asarray(raw)
    if arr.ndim == 0:
        raise DataError(f"{what}: {arg} must be an array of rows, shape (n, d); got a scalar.")
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise DataError(f"{what}: {arg} must be 1-d or 2-d (n, d); got shape {arr.shape}.")
    if arr.dtype.kind == "c":
        raise DataError(f"{what}: {arg} holds complex numbers; pass real values.")
    if arr.dtype.kind in "OUSV":
        i, j, v = _first_bad(arr)
        if i >= 0:
            col = f"column {j}" + (f" ({names[j]!r})" if names and j < len(names) else "")
            raise DataError(
                f"{what}: {arg} holds a value that is not a number, {v!r}, at row {i}, {col}; "
                "pass numbers only (labels such as a cell name belong in groups=)."
            )
    try:
        out = np.asarray(arr, dtype=float)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{what}: {arg} cannot be read as numbers: {exc}.") from None
    # a read-only view (pandas copy-on-write, a frozen Dataset column) is copied, so that
    # torch.as_tensor and the caller may use the result freely
    return out if out.flags.writeable else out.copy()


def _where_bad(arr: np.ndarray, bad: np.ndarray) -> tuple[int, int]:
    i, j = np.argwhere(bad)[0]
    return int(i), int(j)


def _check_finite(
    arr: np.ndarray, arg: str, what: str, names: Sequence[str], *, allow_nan: bool
) -> None:
    bad = ~np.isfinite(arr) if not allow_nan else np.isinf(arr)
    if bad.any():
        i, j = _where_bad(arr, bad)
        hint = (
            "NaN marks a target that was not measured; infinity is not a value"
            if allow_nan
            else "inputs must be finite: drop or fill that row"
        )
        raise DataError(
            f"{what}: {arg} has the value {arr[i, j]} at row {i}, column {j} ({names[j]!r}); "
            f"{hint}."
        )


# ----------------------------------------------------------------------------- columns


def _missing(name: str, available: Sequence[str], arg: str, what: str, via: str) -> DataError:
    return MissingColumnError(
        f"{what}: {arg} has no column {name!r} (named in {via}).{did_you_mean(name, available)} "
        f"Its columns are {', '.join(map(repr, available)) or 'none'}; check the spelling, "
        "including the unit in square brackets."
    )


def _frame_labels(frame: Any) -> dict[str, Any]:
    """Column name (as a string) -> the frame's own column label."""
    return {str(c): c for c in frame.columns}


def _columns(
    X: Any, names: Sequence[str], arg: str, what: str, via: str
) -> tuple[np.ndarray, dict[str, str]]:
    """The columns ``names`` of a Dataset or DataFrame as (n, len(names)) floats, and units."""
    if _is_dataset(X):
        available = list(X.columns)
        for name in names:
            if name not in X:
                raise _missing(name, available, arg, what, via)
            if name == X.group:
                raise DataError(
                    f"{what}: column {name!r} of {arg} is its group column and holds labels, "
                    "not numbers; leave it out of the inputs (it is read as the groups)."
                )
        units = X.units
        return np.asarray(X.array(list(names)), dtype=float), {n: units[n] for n in names}
    labels = _frame_labels(X)
    for name in names:
        if name not in labels:
            raise _missing(name, list(labels), arg, what, via)
    raw = X[[labels[n] for n in names]].to_numpy()
    return _floats(raw, arg, what, names), {n: _unit(n) for n in names}


def _names(X: Any) -> list[str]:
    """Numeric-column candidates of a Dataset or DataFrame, in order (the group left out)."""
    if _is_dataset(X):
        return [c for c in X.columns if c != X.group]
    return list(_frame_labels(X))


def _name_list(names: Any, param: str, what: str) -> list[str] | None:
    if names is None:
        return None
    if isinstance(names, str):
        return [names]
    out = list(names)
    if not out or not all(isinstance(n, str) for n in out):
        raise InvalidArgumentError(
            f"{what}: {param}= must be a non-empty sequence of column names, got {names!r}."
        )
    return out


# ----------------------------------------------------------------------------- the function


def as_inputs(
    X: Any,
    y: Any = None,
    *,
    inputs: Sequence[str] | None = None,
    outputs: Sequence[str] | None = None,
    groups: Any = None,
    what: str = "as_inputs",
    x_name: str = "X",
    y_name: str = "y",
    require_y: bool = False,
) -> InputData:
    """Validate inputs ``X`` (and targets ``y``) and return them as arrays with metadata.

    Accepts NumPy arrays, nested lists, torch tensors, a :class:`~hybridml.Dataset` and a
    pandas DataFrame (pandas is not needed otherwise). A Dataset or a DataFrame is read by
    column name: ``inputs`` names the input columns (default: every column that is not an
    output or the group column) and, when ``y`` is None, ``outputs`` names the target
    columns (a named output that the data lacks is all NaN: learned from physics alone). A
    Dataset's units, group labels and ``measured`` mask are kept. With arrays, ``inputs`` and
    ``outputs`` name the columns (their number must match) and carry units in the names
    (``"Voltage [V]"``).

    Args:
        X: the inputs, shape ``(n, d)`` (1-d: one input), or a Dataset / DataFrame.
        y: the targets, shape ``(n, k)`` (1-d: one output); NaN marks a value that was not
            measured. A DataFrame or Series gives its column names as output names.
        inputs: the input column names.
        outputs: the output names (the target columns of a Dataset or DataFrame).
        groups: one group label per row, or the name of a column of ``X`` holding them
            (default: a Dataset's group column).
        what: who is asking, for error messages (e.g. ``"HybridRegressor.fit"``).
        x_name: what the caller calls ``X``, for error messages.
        y_name: what the caller calls ``y``, for error messages.
        require_y: raise if no targets can be found.

    Returns:
        An :class:`InputData`.

    Raises:
        DataError: for an empty ``X``, a value that is not a number, NaN or infinity in
            ``X``, infinity in ``y``, the wrong number of columns, or row counts that differ.
        MissingColumnError: for a named column that ``X`` lacks (with close names).
        InvalidArgumentError: for ``inputs``/``outputs`` that are not lists of names.
    """
    in_names = _name_list(inputs, "inputs", what)
    out_names = _name_list(outputs, "outputs", what)
    tabular = _is_dataset(X) or _is_frame(X)
    units: dict[str, str] = {}
    label_col: str | None = None
    if tabular:
        if isinstance(groups, str):
            label_col, groups = groups, None
        elif _is_dataset(X) and groups is None:
            label_col = X.group
        if in_names is None:
            skip = set(out_names or ()) | {label_col}
            in_names = [c for c in _names(X) if c not in skip]
            if not in_names:
                raise DataError(
                    f"{what}: {x_name} has no input columns (its columns are "
                    f"{list(_names(X))}); pass inputs= (column names)."
                )
        x, u = _columns(X, in_names, x_name, what, "inputs=")
        units.update(u)
        named = True
    else:
        x = _floats(X, x_name, what, in_names)
        named = in_names is not None
        if in_names is not None and len(in_names) != x.shape[1]:
            raise DataError(
                f"{what}: {x_name} has {x.shape[1]} column(s) but inputs= names "
                f"{len(in_names)} ({', '.join(map(repr, in_names))}); give one name per column."
            )
        in_names = in_names or [f"x{i}" for i in range(x.shape[1])]
        units.update({n: _unit(n) for n in in_names})
    n = x.shape[0]
    if n == 0 or x.shape[1] == 0:
        raise DataError(
            f"{what}: {x_name} is empty (shape {x.shape}); there is nothing to learn from or "
            "predict. Pass at least one row and one column."
        )
    _check_finite(x, x_name, what, in_names, allow_nan=False)

    # ------------------------------------------------------------------ targets
    yy: np.ndarray | None = None
    if y is not None:
        if _is_frame(y):
            labels = _frame_labels(y)
            if out_names is None:
                out_names = list(labels)
                yy = _floats(y.to_numpy(), y_name, what, out_names)
            else:
                yy, _ = _columns(y, out_names, y_name, what, "outputs=")
        else:
            if out_names is None and _is_series(y) and isinstance(getattr(y, "name", None), str):
                out_names = [y.name]
            yy = _floats(y, y_name, what, out_names)
        if yy.shape[0] != n:
            raise DataError(
                f"{what}: {x_name} has {n} rows but {y_name} has {yy.shape[0]}; "
                "give one target row per input row."
            )
        if out_names is not None and len(out_names) != yy.shape[1]:
            raise DataError(
                f"{what}: {y_name} has {yy.shape[1]} column(s) but outputs= names "
                f"{len(out_names)} ({', '.join(map(repr, out_names))})."
            )
    elif tabular and out_names is not None:
        available = _names(X)
        present = [name for name in out_names if name in available]
        if not present and require_y:
            first = out_names[0]
            raise MissingColumnError(
                f"{what}: {x_name} has none of the outputs {out_names}."
                f"{did_you_mean(first, available)} Its columns are "
                f"{', '.join(map(repr, available))}; pass y= or check outputs=."
            )
        yy = np.full((n, len(out_names)), np.nan)
        if present:
            cols, _ = _columns(X, present, x_name, what, "outputs=")
            for k, name in enumerate(present):
                yy[:, out_names.index(name)] = cols[:, k]
        if _is_dataset(X):
            units.update({m: X.units[m] for m in present})
    elif require_y:
        raise DataError(
            f"{what}: pass targets `{y_name}` (or a Dataset or DataFrame as `{x_name}` with "
            "outputs= naming the target columns)."
        )
    if yy is not None:
        out_names = out_names or [f"y{j}" for j in range(yy.shape[1])]
        _check_finite(yy, y_name, what, out_names, allow_nan=True)
        for m in out_names:
            units.setdefault(m, _unit(m))
    out_t = tuple(out_names) if yy is not None and out_names is not None else ()

    # ------------------------------------------------------------------ groups, measured
    g: np.ndarray | None = None
    if label_col is not None:
        if _is_dataset(X):
            g = np.asarray(X[label_col])
        else:
            labels = _frame_labels(X)
            if label_col not in labels:
                raise _missing(label_col, list(labels), x_name, what, "groups=")
            g = np.asarray(X[labels[label_col]].to_numpy())
    elif groups is not None:
        g = np.asarray(groups.detach().cpu().numpy() if _is_tensor(groups) else groups)
        if g.ndim != 1:
            raise DataError(f"{what}: groups must be 1-d (one label per row); got shape {g.shape}.")
        if g.shape[0] != n:
            raise DataError(f"{what}: groups has {g.shape[0]} labels but {x_name} has {n} rows.")
    measured = X.measured if _is_dataset(X) else np.ones(n, dtype=bool)
    source = X.source if _is_dataset(X) else f"<{type(X).__name__}>"
    return InputData(x, yy, tuple(in_names), out_t, units, g, measured, named=named, source=source)
