"""A study report people can open: one self-contained HTML page (``--report PATH.html``).

Everything is inline (styles, a small sorting script, plots as base64 PNG), so the page
needs no network and can be mailed or attached as one file. Sections: the best
configurations (or the step-time summary), a table sortable by any column (click a header),
the plots, and the settings and cost model that produced the numbers.
"""
from __future__ import annotations

import base64
import html
from collections.abc import Sequence

_STYLE = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em;
color:#1b1f24;max-width:1400px}
h1{font-size:1.5em;margin:0 0 .2em}h2{font-size:1.15em;margin:1.6em 0 .5em;
border-bottom:1px solid #d0d7de;padding-bottom:.2em}
pre{background:#f6f8fa;padding:.8em;overflow-x:auto;font-size:12.5px}
table.data{border-collapse:collapse;font-size:12.5px}
table.data th,table.data td{border:1px solid #d0d7de;padding:3px 7px;text-align:right;
white-space:nowrap}
table.data th{background:#f0f3f6;cursor:pointer;user-select:none;position:sticky;top:0}
table.data th[aria-sort=ascending]::after{content:" \\25B2"}
table.data th[aria-sort=descending]::after{content:" \\25BC"}
table.data tr:nth-child(even) td{background:#fafbfc}
.scroll{max-height:70vh;overflow:auto;border:1px solid #d0d7de;display:inline-block;max-width:100%}
figure{margin:1em 0}figure img{max-width:100%;border:1px solid #d0d7de}
figcaption{color:#57606a;font-size:12.5px}
dl.settings{display:grid;grid-template-columns:max-content auto;gap:.2em 1em}
dl.settings dt{font-weight:600}dl.settings dd{margin:0;font-family:monospace;white-space:pre-wrap}
.muted{color:#57606a}
"""

# sort the table by a clicked header: numbers numerically, text alphabetically, blanks last
_SCRIPT = """
(function(){
  function key(cell){var t=cell.textContent.trim();var n=parseFloat(t);
    return (t!==''&&isFinite(n)&&/^[-+]?[0-9.eE+-]+%?$/.test(t))?[0,n]:[t===''?2:1,t];}
  function cmp(a,b){if(a[0]!==b[0])return a[0]-b[0];return a[1]<b[1]?-1:a[1]>b[1]?1:0;}
  document.querySelectorAll('table.data').forEach(function(table){
    var heads=table.tHead.rows[0].cells;
    Array.prototype.forEach.call(heads,function(th,col){
      th.addEventListener('click',function(){
        var asc=th.getAttribute('aria-sort')!=='ascending';
        Array.prototype.forEach.call(heads,function(h){h.removeAttribute('aria-sort');});
        th.setAttribute('aria-sort',asc?'ascending':'descending');
        var body=table.tBodies[0];var rows=Array.prototype.slice.call(body.rows);
        rows.sort(function(r1,r2){var c=cmp(key(r1.cells[col]),key(r2.cells[col]));
          return asc?c:-c;});
        rows.forEach(function(r){body.appendChild(r);});
      });
    });
  });
  // '#sort=N' (or '#sort=N-' for descending) sorts by column N on load: a link to a view
  var m=location.hash.match(/sort=([0-9]+)(-?)/);
  if(m){var th=document.querySelectorAll('table.data thead th')[+m[1]];
    if(th){th.click();if(m[2])th.click();}}
  document.body.setAttribute('data-ready','1');
})();
"""


def _table(columns: list[str], rows: list[list], table_id: str) -> str:
    esc = html.escape
    head = "".join(f"<th scope=col>{esc(str(c))}</th>" for c in columns)
    body = "\n".join("<tr>" + "".join(f"<td>{esc('' if v is None else str(v))}</td>"
                                      for v in row) + "</tr>" for row in rows)
    return (f'<div class=scroll><table class=data id="{esc(table_id)}"><thead><tr>{head}'
            f"</tr></thead>\n<tbody>\n{body}\n</tbody></table></div>")


def render_report(title: str, subtitle: str, headline: str, columns: list[str],
                  rows: list[list], images: list[tuple[str, bytes]],
                  settings: list[tuple[str, str]], notes: Sequence[str] = (),
                  table_title: str = "All results") -> str:
    """The page as a string; ``images`` are (caption, PNG bytes)."""
    from .. import __version__

    esc = html.escape
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             f"<title>{esc(title)}</title><style>{_STYLE}</style></head><body>",
             f"<h1>{esc(title)}</h1>", f'<p class=muted>{esc(subtitle)}</p>',
             "<h2>Summary</h2>", f"<pre>{esc(headline)}</pre>"]
    if notes:
        parts.append("<ul>" + "".join(f"<li>{esc(n)}</li>" for n in notes) + "</ul>")
    parts += [f"<h2>{esc(table_title)}</h2>",
              f'<p class=muted>{len(rows)} rows; click a column header to sort.</p>',
              _table(columns, rows, "results")]
    if images:
        parts.append("<h2>Plots</h2>")
        for caption, png in images:
            data = base64.b64encode(png).decode("ascii")
            parts.append(f'<figure><img alt="{esc(caption)}" src="data:image/png;base64,'
                         f'{data}"><figcaption>{esc(caption)}</figcaption></figure>')
    parts.append("<h2>Settings</h2><dl class=settings>")
    for k, v in list(settings) + [("collsim", __version__)]:
        parts.append(f"<dt>{esc(str(k))}</dt><dd>{esc(str(v))}</dd>")
    parts += ["</dl>", f"<script>{_SCRIPT}</script>", "</body></html>"]
    return "\n".join(parts) + "\n"
