"""`seppo report`: one self-contained HTML page (every picture a data URI), in reading order:
results first, then the side-by-side grid, curves, the pool's snapshots and the resolved
config. Four callers: `seppo report RUN…`, `seppo demo` (and `--video`), and the ablation
and benchmark (`seppo.benchmark_tables`).

| module        | one job                                                              |
|---------------|----------------------------------------------------------------------|
| `html.py`     | escaping, pictures as data URIs (nearest-neighbour upscaling, GIFs), tables, the page shell |
| `headline.py` | the headline table and the computed sentence (evaluation or benchmark) |
| `grid.py`     | side-by-side grids: prompts × models or snapshots, same noise per row |
| `figures.py`  | training curves: only what each method logs, axes shared per quantity |
| `page.py`     | the five sections in order; `write_report`, `write_page`            |
"""

from seppo.report.figures import plot_curves, read_metrics
from seppo.report.grid import Comparison, from_eval
from seppo.report.page import write_page, write_report

__all__ = ["Comparison", "from_eval", "plot_curves", "read_metrics", "write_page", "write_report"]
