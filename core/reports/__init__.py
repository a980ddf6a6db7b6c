"""Run reports: one self-contained HTML file per run that opens offline in any browser."""
