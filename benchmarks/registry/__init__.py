"""One module per family, each defining ``CASES: list[BenchCase]``."""
