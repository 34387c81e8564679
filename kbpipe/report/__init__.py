"""`kbpipe report`: one self-contained HTML page about a run folder, and card images.

The page reads every `*.stats.json` and a few columns of each table in
`outputs/<run>/` (see `collect.COLUMNS`), draws its charts with matplotlib and
embeds them as base64 PNG, with the stylesheet inline: one file that opens
offline and can be mailed or attached to an issue.

Why matplotlib PNG, measured on this 2-core machine for nine charts of
18,000-row data (three runs each, medians; imports from compiled bytecode):

| renderer                 | import  | draw 9 charts | bytes (9 charts) |
|--------------------------|---------|---------------|------------------|
| matplotlib, PNG 110 dpi  | 0.43 s  | 0.86 s        | 113 KB           |
| matplotlib, SVG          | 0.43 s  | 0.80 s        | 172-238 KB       |
| vl-convert, SVG          | 0.21 s  | 0.79 s        | 177 KB           |
| vl-convert, PNG (1.5x)   | 0.21 s  | 1.07 s        | 980 KB           |

Drawing costs the same; vl-convert's import is 0.2 s faster, but it is an
84 MB wheel (a bundled JavaScript engine) that kbpipe would add only for this,
while matplotlib is already the `plot` extra that `seqlen --plot` uses. PNG is
the smallest output and the one format a dataset card can show everywhere, so
the page and the cards share the same files (`card_images`).
"""

from kbpipe.report.build import CardImage, ReportResult, build_report, card_images

__all__ = ["CardImage", "ReportResult", "build_report", "card_images"]
