"""Broadcasting of leading (batch) dimensions from a gufunc-style signature.

Every routine states its core dimensions the way ``numpy.vectorize(signature=...)``
does, e.g. ``"(n),(n,d),(n,d),(n,m)"``. Whatever precedes the core dimensions is
batch, and batch shapes broadcast between operands exactly as in ``numpy.linalg``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

__all__ = ["Batch", "broadcast_batch", "parse_signature"]

_CORE = re.compile(r"\(([^()]*)\)")


def parse_signature(signature: str) -> list[tuple[str, ...]]:
    """Core dimension names of each operand: ``"(n),(n,d)"`` → ``[("n",), ("n", "d")]``."""
    cores = [tuple(d.strip() for d in c.split(",") if d.strip()) for c in _CORE.findall(signature)]
    if not cores:
        raise ValueError(f"malformed signature {signature!r}")
    return cores


@dataclass(frozen=True)
class Batch:
    """The broadcast batch shape of a call and the sizes of its named core dimensions."""

    shape: tuple[int, ...]
    sizes: dict[str, int]

    @property
    def count(self) -> int:
        """Number of problems in the batch (product of ``shape``; 1 for no batch)."""
        return math.prod(self.shape)

    def flatten(self, x: Any, core_ndim: int, xp: ModuleType = np) -> Any:
        """Broadcast ``x`` to the batch shape and merge its batch axes into one.

        The result has shape ``(count, *core)``. It is a view when the layout
        allows (an operand shared by the whole batch gets stride 0), else a copy.
        """
        core = tuple(x.shape[x.ndim - core_ndim :])
        x = xp.broadcast_to(x, self.shape + core)
        return x.reshape((self.count, *core))

    def unflatten(self, x: Any) -> Any:
        """Split the leading axis of ``x`` back into the batch shape."""
        return x.reshape(self.shape + tuple(x.shape[1:]))


def broadcast_batch(signature: str, **operands: Any) -> Batch:
    """Check core dimensions against ``signature`` and broadcast the batch shapes.

    Parameters
    ----------
    signature : str
        Core dimensions of each operand in keyword order, e.g. ``"(n),(n,d)"``.
        ``None`` operands are skipped (optional arguments).
    **operands : array
        The arrays, by argument name (used in error messages).

    Returns
    -------
    Batch
        The broadcast batch shape and the size of each named core dimension.

    Raises
    ------
    ValueError
        If an operand has too few dimensions, a named core dimension has two
        different sizes, or the batch shapes do not broadcast.

    Examples
    --------
    >>> import numpy as np
    >>> b = broadcast_batch("(n),(n,d)", diag=np.ones((5, 1, 4)), q=np.ones((3, 4, 2)))
    >>> b.shape, b.sizes
    ((5, 3), {'n': 4, 'd': 2})
    """
    cores = parse_signature(signature)
    if len(cores) != len(operands):
        raise ValueError(f"signature {signature!r} has {len(cores)} operands, got {len(operands)}")
    sizes: dict[str, int] = {}
    origin: dict[str, str] = {}
    batch_shapes = []
    for (name, x), core in zip(operands.items(), cores, strict=True):
        if x is None:
            continue
        if x.ndim < len(core):
            raise ValueError(
                f"argument {name!r} must have shape (..., {', '.join(core)}); "
                f"got shape {tuple(x.shape)}"
            )
        for dim, size in zip(core, x.shape[x.ndim - len(core) :], strict=True):
            if dim.isdigit():
                if size != int(dim):
                    raise ValueError(
                        f"argument {name!r} must have size {dim} in its core dimension; "
                        f"got shape {tuple(x.shape)}"
                    )
                continue
            if dim in sizes and sizes[dim] != size:
                raise ValueError(
                    f"core dimension {dim!r} is {sizes[dim]} in {origin[dim]!r} but {size} in "
                    f"{name!r} (shapes must agree in the core dimensions {', '.join(core)})"
                )
            sizes.setdefault(dim, size)
            origin.setdefault(dim, name)
        batch_shapes.append((name, tuple(x.shape[: x.ndim - len(core)])))
    try:
        shape = np.broadcast_shapes(*(s for _, s in batch_shapes))
    except ValueError:
        listing = ", ".join(f"{n}: {s}" for n, s in batch_shapes)
        raise ValueError(f"batch dimensions do not broadcast ({listing})") from None
    return Batch(shape=tuple(shape), sizes=sizes)
