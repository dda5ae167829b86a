"""Reporting: the paper's tables and figures from results CSVs (it reads results files only).

    layout.py   what the paper's tables are: columns, methods, the paper's names for our benchmarks/metrics
    build.py    results rows -> tables (pandas), with the paper's reported values and PDR beside ours
    plots.py    accuracy vs retention, cost vs accuracy, sink heat maps
The command line is `python -m sinktop_eval.tables` (sinktop_eval/tables.py).
"""
