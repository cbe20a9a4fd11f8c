"""Command line: ``python -m structla {info, demo, check, bench}``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _bench(args: argparse.Namespace) -> int:
    repo = Path(__file__).resolve().parent.parent
    if not (repo / "benchmarks" / "runner.py").exists():
        print("structla bench needs the source checkout: the benchmarks/ folder is not installed "
              "with the wheel. Run it from a clone (pip install -e .).", file=sys.stderr)
        return 2
    sys.path.insert(0, str(repo))
    from benchmarks.runner import run

    return run(family=args.family, device=args.device, quick=args.quick, out=sys.stdout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m structla", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("info", help="versions, devices and the routine x backend table")
    demo = commands.add_parser("demo", help="run every family on built-in problems vs SciPy")
    demo.add_argument("--quick", action="store_true", help="small problems only")
    commands.add_parser("check", help="quick self-test of every backend (exit code 1 on failure)")
    bench = commands.add_parser("bench", help="run the benchmark registry, write CSV and plots")
    bench.add_argument("family", nargs="?", default=None, help="one family (default: all)")
    bench.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    bench.add_argument("--quick", action="store_true", help="two smallest sizes, fewer repeats")
    args = parser.parse_args(argv)

    if args.command == "info":
        from ._cli.info import print_info

        print_info(sys.stdout)
        return 0
    if args.command == "demo":
        from ._cli.demo import run_demo

        return run_demo(sys.stdout, quick=args.quick)
    if args.command == "check":
        from ._cli.demo import run_check

        return run_check(sys.stdout)
    return _bench(args)


if __name__ == "__main__":
    sys.exit(main())
