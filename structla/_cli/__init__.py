"""The ``python -m structla`` commands: info, demo, check, bench."""
