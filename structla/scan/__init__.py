"""Linear recurrences: ``linear_scan``, Mamba's ``selective_scan`` and ``deer`` (MATH E, F5)."""

from ._api import deer as deer
from ._api import linear_scan as linear_scan
from ._api import selective_scan as selective_scan

__all__ = ["deer", "linear_scan", "selective_scan"]
