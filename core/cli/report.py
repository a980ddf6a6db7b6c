"""The `report` command: write a training run's self-contained HTML report (core.reports.run_report).

Imports nothing of core.cli at module level, so core.cli.parser can import its parser adder.
"""

from __future__ import annotations

from pathlib import Path


def add_report_parser(commands) -> None:
    """The `report` command's options."""
    p = commands.add_parser("report", help="write a run's report: one HTML file that opens offline")
    p.add_argument("--run", type=int, required=True, metavar="ID")
    p.add_argument(
        "--out", metavar="FILE", help="where to write it (default: report.html in the run's folder)"
    )


def cmd_report(args) -> int:
    """Write the report of run --run to --out (or the run's folder) and print its path."""
    from core.cli.commands import store_of
    from core.cli.parser import EXIT_OK
    from core.reports.run_report import write_run_report

    path = write_run_report(store_of(args), args.run, Path(args.out) if args.out else None)
    print(path)
    return EXIT_OK
