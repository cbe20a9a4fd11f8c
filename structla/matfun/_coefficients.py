"""Coefficient tables of the odd-polynomial (Newton–Schulz type) iterations (MATH D2).

Every step maps each singular value by ``p(σ) = a σ + b σ³ + c σ⁵``; a table is a
``(steps, 3)`` float64 array of rows ``(a, b, c)`` (``c = 0`` for cubic steps).
The Polar Express table is built here by the greedy minimax (Remez) construction of
Amsel, Persson, Musco and Gower (2025); the other tables are the published constants.
"""

from __future__ import annotations

import functools
import itertools

import numpy as np

__all__ = ["NAMED", "POLISH", "image", "named_table", "polar_express_table", "scalar_map",
           "tailored_table"]

#: The maximally flat odd quintic at 1 (the limit of the minimax polynomials as the
#: interval shrinks to a point): p(1) = 1, p'(1) = p''(1) = 0, cubic convergence.
POLISH = (15 / 8, -10 / 8, 3 / 8)
_POLISH_CUBIC = (3 / 2, -1 / 2, 0.0)
#: The published Polar Express settings (MATH D2): safety factor and cushion.
SAFETY = 1.01
CUSHION = 0.02407327424182761

_MUON = (3.4445, -4.7750, 2.0315)
_CUBIC = (1.5, -0.5, 0.0)
_SU = ((4.6182, -12.9582, 9.3299), (3.8496, -7.9585, 4.3052), (3.5204, -7.2918, 4.0606),
       (3.2067, -6.8243, 4.2802), (3.2978, -5.7848, 3.8917))
_JIACHENG = tuple(tuple(v / 1024 for v in row) for row in (
    (3955, -8306, 5008), (3735, -6681, 3463), (3799, -6499, 3211),
    (4019, -6385, 2906), (2677, -3029, 1162), (2172, -1833, 682)))

#: Named families: (rows, whether the rows repeat cyclically as one constant triple).
NAMED = {
    "muon": ((_MUON,), True),
    "cubic": ((_CUBIC,), True),
    "su": (_SU, False),
    "jiacheng": (_JIACHENG, False),
}


def scalar_map(table: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Apply the scalar maps of ``table``'s rows in order to ``x`` (float64)."""
    x = np.asarray(x, dtype=np.float64)
    for a, b, c in np.asarray(table, dtype=np.float64):
        x2 = x * x
        x = x * (a + x2 * (b + c * x2))
    return x


def _poly(coef: np.ndarray, x: np.ndarray) -> np.ndarray:
    # odd polynomial Σ coef[k] x^(2k+1)
    x = np.asarray(x, dtype=np.float64)
    return sum(c * x ** (2 * k + 1) for k, c in enumerate(coef))


def _critical_points(coef: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Interior extrema of the odd polynomial: positive roots of p' in (lo, hi), sorted."""
    # p'(x) = Σ (2k+1) coef[k] y^k with y = x²
    deriv = [(2 * k + 1) * c for k, c in enumerate(coef)]
    roots = np.roots(deriv[::-1])
    roots = roots[np.abs(roots.imag) <= 1e-12 * np.maximum(1.0, np.abs(roots))].real
    x = np.sqrt(roots[roots > 0])
    return np.sort(x[(x > lo) & (x < hi)])


def _minimax(lo: float, hi: float, degree: int) -> np.ndarray:
    """Odd polynomial of ``degree`` minimising ``max_{[lo, hi]} |p(x) − 1|`` (Remez).

    The optimum equioscillates at ``k + 2`` points (``k + 1`` coefficients): ``lo``,
    the ``k`` interior extrema and ``hi``, alternating ``1 − E, 1 + E, …``.
    """
    k = (degree - 1) // 2
    interior = lo + (hi - lo) * (2 * np.arange(1, k + 1) - 1) / (2 * k)
    points = np.concatenate(([lo], interior, [hi]))
    sign = np.where(np.arange(k + 2) % 2 == 0, -1.0, 1.0)
    error = np.inf
    for _ in range(100):
        system = np.column_stack([points ** (2 * j + 1) for j in range(k + 1)] + [-sign])
        solution = np.linalg.solve(system, np.ones(k + 2))
        coef, new_error = solution[:-1], solution[-1]
        interior = _critical_points(coef, lo, hi)
        if interior.size != k:
            raise ArithmeticError("Remez iteration lost an extremum")
        points = np.concatenate(([lo], interior, [hi]))
        if abs(new_error - error) < 1e-15:
            break
        error = new_error
    return coef


@functools.lru_cache(maxsize=64)
def _raw_table(steps: int, lower: float, degree: int, cushion: float) -> tuple:
    return tuple(itertools.islice(_greedy_rows(lower, degree, cushion), steps))


def _greedy_rows(lower: float, degree: int, cushion: float):
    """The raw Polar Express rows ``((a, b, c), maximally_flat)`` one by one, without end."""
    lo, hi = float(lower), 1.0
    flat = np.array(POLISH if degree == 5 else _POLISH_CUBIC[:2])
    while True:
        left = max(lo, cushion * hi)
        collapsed = left / hi > 1 - 5e-6
        if not collapsed:
            try:
                coef = _minimax(left, hi, degree)
            except ArithmeticError:
                # on a nearly collapsed interval (seen at 1 − ℓ/u = 7·10⁻⁶) the exchange
                # can lose an extremum to rounding; the maximally flat row is the limit
                # of the minimax ones there
                if left / hi < 1 - 1e-3:
                    raise
                collapsed = True
        if collapsed:
            coef = flat / hi ** (2 * np.arange(flat.size) + 1)
        # recentre so that the image of [lo, hi] is symmetric about 1; the image is
        # then the next interval
        image = _poly(coef, np.concatenate(([lo, hi], _critical_points(coef, lo, hi))))
        coef = coef * (2 / (image.min() + image.max()))
        lo = float(image.min() * 2 / (image.min() + image.max()))
        hi = 2 - lo
        yield tuple(coef) + (0.0,) * (3 - coef.size), collapsed


def polar_express_table(steps: int, lower: float, degree: int, safety: float,
                        cushion: float) -> np.ndarray:
    """The (validated) Polar Express table as a fresh ``(steps, 3)`` float64 array."""
    return _with_safety(_raw_table(steps, lower, degree, cushion), safety)


def _with_safety(raw: tuple, safety: float) -> np.ndarray:
    table = np.array([row for row, _ in raw], dtype=np.float64).reshape(len(raw), 3)
    # Minimax rows (all but the last) leave slack for round-off that puts σ above
    # the interval, where p grows without bound. Maximally flat rows contract
    # around 1 (p'(1) = p''(1) = 0) and need none; scaling them would move the
    # fixed point off 1.
    scaled = np.array([not flat for _, flat in raw[:-1]] + [False], dtype=bool)[:len(raw)]
    table[scaled] /= np.array([safety, safety**3, safety**5])
    return table


def image(row: np.ndarray, lo: float, hi: float) -> tuple[float, float]:
    """Exact image ``[min p, max p]`` of ``[lo, hi]`` (``0 ≤ lo ≤ hi``) under one row's
    ``p(x) = a x + b x³ + c x⁵``: the extrema lie at the ends or where ``p' = 0``."""
    coef = np.asarray(row, dtype=np.float64)
    points = np.concatenate(([lo, hi], _critical_points(coef, lo, hi)))
    values = _poly(coef, points)
    return float(values.min()), float(values.max())


#: Longest table :func:`tailored_table` considers (from ℓ = 10⁻⁶, 10 rows reach 10⁻¹⁵).
TAILORED_MAX = 16


@functools.lru_cache(maxsize=128)
def tailored_table(lower: float, tol: float) -> tuple[np.ndarray, float] | None:
    """Fewest Polar Express rows (safety 1.01) that map all of ``[lower, 1]`` within ``tol`` of 1.

    Returns ``(table, band)`` with ``band = max |p_T(σ) − 1|`` over ``σ ∈ [lower, 1]``
    (exact interval images, step by step), or None if :data:`TAILORED_MAX` rows do
    not suffice. A table built for ``lower`` covers every interval ``[ℓ, 1]`` with
    ``ℓ ≥ lower``, so callers may round ``lower`` down (this cache is keyed by it).
    """
    raw = []
    rows = _greedy_rows(lower, 5, CUSHION)
    for _ in range(TAILORED_MAX):
        # rows are built only as far as needed: the Remez exchange can fail on the
        # nearly collapsed intervals of rows far past any useful tolerance
        try:
            raw.append(next(rows))
        except ArithmeticError:
            return None
        table = _with_safety(tuple(raw), SAFETY)
        lo, hi = lower, 1.0
        for row in table:
            lo, hi = image(row, lo, hi)
        band = max(1.0 - lo, hi - 1.0)
        if band <= tol:
            return table, band
    return None


def named_table(name: str, steps: int) -> np.ndarray:
    """Rows of a published family; fixed-length tables continue with :data:`POLISH`."""
    rows, constant = NAMED[name]
    if constant:
        return np.tile(np.array(rows[0], dtype=np.float64), (steps, 1))
    rows = list(rows[:steps]) + [POLISH] * max(0, steps - len(rows))
    return np.array(rows, dtype=np.float64).reshape(steps, 3)
