"""The simulator report as one self-contained HTML page: inline CSS, charts drawn as inline SVG.

The page loads nothing from anywhere, so it opens offline and can be attached to a ticket. Every
string taken from the report is escaped: node ids, reasons and messages are user data.

`page` puts together the `charts`, drawn on a `plot`, and the `tables`; `text` is how a value reads
in any of them.
"""

from navarch.sim.html.page import render_html

__all__ = ["render_html"]
