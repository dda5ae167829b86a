"""The paper's tables and figures from results CSVs, with the paper's reported numbers beside ours.

    python -m sinktop_eval.tables results/runs [more dirs or results.csv ...] [--out results/tables]

Writes Markdown and LaTeX for every paper table the results can fill (1 fine-grained, 2 MCQA, 3
LLaVA-Video, 4 STSP/STTP ablation, 6 FlashVID, 7 Argus, 8 Qwen2.5-VL), plus the plots and the paper's
figures the results hold the runs for (`sinktop_eval.report`). A cell we have no result for is shown
as missing; nothing is interpolated.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from .files import atomic_write_text
from .report.build import build_tables, canonical_rows, load_paper_reference, to_latex, to_markdown
from .report.layout import PROTOCOLS
from .results import results_files
from .resources import PAPER_REFERENCE


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sinktop_eval.tables", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", nargs="+", help="run directories or results.csv files (searched recursively)")
    parser.add_argument("--out", default="results/tables", help="where to write the tables and plots")
    parser.add_argument("--paper", default=str(PAPER_REFERENCE), help="the paper's reported numbers (CSV)")
    parser.add_argument("--ratio", type=float, action="append", help="only these ratios (repeatable)")
    parser.add_argument("--protocol", choices=PROTOCOLS, default="official",
                        help="official: each benchmark's own protocol (default); release: the SToP release's way "
                             "where it differs (EH desc/overall, VCGBench over judged items, MLVU pooled)")
    parser.add_argument("--no-plots", action="store_true")
    args = parser.parse_args(argv)

    try:
        files = results_files(args.results)
        results = pd.concat([pd.read_csv(f) for f in files], ignore_index=True)
        paper = load_paper_reference(Path(args.paper))
        tables = build_tables(results, paper, args.ratio, args.protocol)
    except (FileNotFoundError, ValueError) as err:
        parser.exit(2, f"sinktop-eval tables: {err}\n")
    if not tables:
        parser.exit(1, "sinktop-eval tables: no rows of any paper benchmark in these results\n")
    out = Path(args.out)
    markdown = "\n".join(to_markdown(t) for t in tables)
    atomic_write_text(out / "tables.md", markdown)
    atomic_write_text(out / "tables.tex", "\n".join(to_latex(t) for t in tables))
    print(markdown)
    print(f"wrote {out / 'tables.md'} and {out / 'tables.tex'}")
    if not args.no_plots:
        from .report.figures import paper_figures
        from .report.plots import results_plots

        rows = canonical_rows(results)
        for path in results_plots(rows, out) + paper_figures(rows, files, out):
            print(f"wrote {path}")


if __name__ == "__main__":
    main()
