//! The HTML report: one self-contained file for a person and the ticket it
//! goes into (`--format html`, also `vouch report --run N --format html`).
//!
//! No network: the page carries its data as the same JSON document
//! `--format json` prints (in a `<script type="application/json">`, with
//! every `<` escaped so no path can close the element) and a small inline
//! script renders it — the verdict, counts by kind, a sortable and
//! filterable findings table, a treemap of where in the tree the findings
//! are (by top-level directory, coloured by kind), and how much of the
//! backup was proven within 1/7/30 days. Because the numbers are rendered
//! from the JSON itself, they cannot disagree with it; the test loads the
//! page in headless Chromium and checks exactly that.

use std::io::Write;

use anyhow::Result;
use serde_json::{Map, Value, json};

/// Escapes text for HTML element content and attribute values.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Writes the page: `findings` are the JSON findings in report order,
/// written as they come (the page never holds them all: see
/// [`crate::out::sorted`]).
pub fn write_page(
    out: &mut dyn Write,
    verdict_line: &str,
    status: &str,
    findings: &mut dyn Iterator<Item = Result<String>>,
    summary: &Map<String, Value>,
    error: Option<&str>,
) -> Result<()> {
    let title = match (
        summary.get("command").and_then(Value::as_str),
        summary.get("root").and_then(Value::as_str),
    ) {
        (Some(c), Some(r)) => format!("vouch {c} {r}"),
        (Some(c), None) => format!("vouch {c}"),
        _ => "vouch report".to_string(),
    };
    write!(
        out,
        r##"<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }}
h1 {{ font-size: 1.25em; padding: .6em .8em; border-radius: 6px; }}
h1.damaged, h1.failed {{ background: #fde2e1; }}
h1.unproven {{ background: #fff3cd; }}
h1.proven, h1.clean {{ background: #e1f5e4; }}
h2 {{ font-size: 1.05em; margin-top: 1.5em; }}
table {{ border-collapse: collapse; }}
th, td {{ text-align: left; padding: .2em .6em; border-bottom: 1px solid #ddd; vertical-align: top; }}
th {{ cursor: pointer; user-select: none; background: #f4f4f4; }}
td.path {{ font-family: ui-monospace, monospace; word-break: break-all; }}
.swatch {{ display: inline-block; width: .8em; height: .8em; margin-right: .3em; border-radius: 2px; }}
#treemap {{ display: flex; height: 220px; width: 100%; max-width: 1100px; border: 1px solid #ccc; }}
.dir {{ display: flex; flex-direction: column; border-right: 2px solid #fff; min-width: 2px; overflow: hidden; }}
.dir > .label {{ font-size: 11px; padding: 2px 4px; background: #333; color: #fff; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }}
.dir > .cell {{ min-height: 2px; }}
.bar {{ background: #eee; width: 320px; height: 1em; display: inline-block; vertical-align: middle; }}
.bar > div {{ background: #2e7d32; height: 100%; }}
</style></head>
<body data-rendered="no">
<h1 class="{status}" id="verdict">{verdict}</h1>
<p id="what"></p>
<h2>Counts by kind</h2><table id="counts"><tbody></tbody></table>
<h2>Where in the tree</h2><div id="treemap"></div>
<h2>Proven within</h2><table id="within"><tbody></tbody></table>
<h2>Findings (<span id="n-findings">0</span>)</h2>
<p><input id="filter" placeholder="filter by path or detail" size="40">
<select id="kind"><option value="">every kind</option></select></p>
<table id="findings"><thead><tr><th data-key="kind">kind</th><th data-key="path">path</th>
<th data-key="detail">detail</th><th data-key="first_seen">since</th></tr></thead><tbody></tbody></table>
<script type="application/json" id="vouch-data">"##,
        title = escape(&title),
        status = escape(status),
        verdict = escape(verdict_line),
    )?;
    // The data: the JSON document, where `<` only occurs inside strings,
    // where `\u003c` means the same.
    let mut data = |text: &str| out.write_all(text.replace('<', "\\u003c").as_bytes());
    data("{\"findings\":[")?;
    let mut first = true;
    for text in findings {
        if !first {
            data(",")?;
        }
        data(&text?)?;
        first = false;
    }
    data("],\"summary\":")?;
    data(&Value::Object(summary.clone()).to_string())?;
    if let Some(e) = error {
        data(",\"error\":")?;
        data(&json!(e).to_string())?;
    }
    data("}")?;
    write!(
        out,
        r##"</script>
<script>
window.addEventListener("error", function (e) {{
  document.body.dataset.errors = (document.body.dataset.errors || "") + e.message + ";";
}});
(function () {{
  var d = JSON.parse(document.getElementById("vouch-data").textContent);
  var s = d.summary || {{}};
  var colors = {{missing: "#c62828", extra: "#6a1b9a", size_mismatch: "#ef6c00",
    corrupt: "#b71c1c", moved: "#5d4037", unreadable: "#37474f", remote_empty: "#880e4f",
    low_coverage: "#ad1457", shrunk: "#e65100", stale: "#827717", damaged: "#d84315",
    added: "#90caf9",
    modified: "#64b5f6", deleted: "#b0bec5", unverified: "#fbc02d"}};
  function el(tag, text, cls) {{
    var e = document.createElement(tag);
    if (text !== undefined) e.textContent = text;
    if (cls) e.className = cls;
    return e;
  }}
  document.getElementById("what").textContent = [s.command, s.root || "",
    s.remote ? "against " + s.remote : "", s.mode ? "(" + s.mode + ")" : "",
    s.run !== undefined ? "run " + s.run : ""].join(" ");
  var counts = {{}};
  d.findings.forEach(function (f) {{ counts[f.kind] = (counts[f.kind] || 0) + 1; }});
  var countBody = document.querySelector("#counts tbody");
  var total = el("tr");
  total.appendChild(el("td", "discrepancies"));
  var n = el("td", String(s.discrepancies === undefined ? "" : s.discrepancies));
  n.id = "n-discrepancies";
  total.appendChild(n);
  countBody.appendChild(total);
  Object.keys(colors).forEach(function (k) {{
    var c = s[k] !== undefined ? s[k] : counts[k];
    if (!c) return;
    var tr = el("tr"), td = el("td");
    var sw = el("span", "", "swatch"); sw.style.background = colors[k];
    td.appendChild(sw); td.appendChild(document.createTextNode(k));
    tr.appendChild(td);
    var v = el("td", String(c)); v.id = "n-" + k;
    tr.appendChild(v);
    countBody.appendChild(tr);
    var o = el("option", k); o.value = k;
    document.getElementById("kind").appendChild(o);
  }});
  // Treemap: one column per top-level directory, as wide as its share of
  // the findings, stacked by kind.
  var dirs = {{}};
  d.findings.forEach(function (f) {{
    var top = f.path.indexOf("/") >= 0 ? f.path.split("/")[0] + "/" : (f.path || "(whole backup)");
    dirs[top] = dirs[top] || {{}};
    dirs[top][f.kind] = (dirs[top][f.kind] || 0) + 1;
  }});
  var map = document.getElementById("treemap");
  Object.keys(dirs).sort().forEach(function (name) {{
    var kinds = dirs[name], sum = 0;
    Object.keys(kinds).forEach(function (k) {{ sum += kinds[k]; }});
    var col = el("div", undefined, "dir");
    col.style.flexGrow = sum;
    col.title = name + ": " + sum;
    col.appendChild(el("div", name, "label"));
    Object.keys(kinds).forEach(function (k) {{
      var cell = el("div", undefined, "cell");
      cell.style.flexGrow = kinds[k];
      cell.style.background = colors[k] || "#999";
      cell.title = name + " " + k + ": " + kinds[k];
      col.appendChild(cell);
    }});
    map.appendChild(col);
  }});
  var within = s.verified_within || {{}};
  var wBody = document.querySelector("#within tbody");
  Object.keys(within).sort(function (a, b) {{ return parseInt(a) - parseInt(b); }}).forEach(function (k) {{
    var f = within[k].fraction_of_local_bytes;
    var tr = el("tr");
    tr.appendChild(el("td", k));
    var bar = el("div", undefined, "bar"), fill = el("div");
    fill.style.width = (100 * f) + "%";
    bar.appendChild(fill);
    var td = el("td"); td.appendChild(bar); tr.appendChild(td);
    var p = el("td", (100 * f).toFixed(1) + "% of the bytes"); p.id = "within-" + k;
    tr.appendChild(p);
    wBody.appendChild(tr);
  }});
  if (!Object.keys(within).length) wBody.appendChild(el("tr", "(not an audit)"));
  var rows = d.findings.slice(), sortKey = null, asc = true;
  function render() {{
    var q = document.getElementById("filter").value.toLowerCase();
    var kind = document.getElementById("kind").value;
    var body = document.querySelector("#findings tbody");
    body.textContent = "";
    var shown = 0;
    rows.forEach(function (f) {{
      if (kind && f.kind !== kind) return;
      if (q && (f.path + " " + (f.detail || "")).toLowerCase().indexOf(q) < 0) return;
      var tr = el("tr");
      var k = el("td"), sw = el("span", "", "swatch");
      sw.style.background = colors[f.kind] || "#999";
      k.appendChild(sw); k.appendChild(document.createTextNode(f.kind));
      tr.appendChild(k);
      tr.appendChild(el("td", f.path, "path"));
      tr.appendChild(el("td", f.detail || ""));
      tr.appendChild(el("td", f.first_seen || ""));
      body.appendChild(tr);
      shown++;
    }});
    document.getElementById("n-findings").textContent = String(shown);
  }}
  document.querySelectorAll("#findings th").forEach(function (th) {{
    th.addEventListener("click", function () {{
      var key = th.dataset.key;
      asc = sortKey === key ? !asc : true;
      sortKey = key;
      rows.sort(function (a, b) {{
        var x = String(a[key] || ""), y = String(b[key] || "");
        return (x < y ? -1 : x > y ? 1 : 0) * (asc ? 1 : -1);
      }});
      render();
    }});
  }});
  document.getElementById("filter").addEventListener("input", render);
  document.getElementById("kind").addEventListener("change", render);
  render();
  document.body.dataset.rendered = "yes";
}})();
</script>
</body></html>
"##
    )?;
    Ok(())
}
