"""structla's benchmark registry, runner and plotter (run with ``python -m structla bench``)."""
