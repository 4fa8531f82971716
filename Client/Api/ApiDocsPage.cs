namespace OrleansFlashSale.Client.Api;

/// <summary>
/// A self-contained page that renders <c>/openapi/v1.json</c>: no CDN, no script from elsewhere, so it works on an
/// operator's laptop with no internet and under a strict content security policy.
/// </summary>
internal static class ApiDocsPage
{
    public const string Html = """
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>OrleansFlashSale API</title>
<style>
body { font: 14px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 64rem; color: #222; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.1rem; margin: 1.5rem 0 .3rem; }
.m { display: inline-block; min-width: 4.5rem; font-weight: 700; }
.GET { color: #1565c0; } .POST { color: #2e7d32; } .PUT { color: #ef6c00; } .DELETE { color: #c62828; }
table { border-collapse: collapse; margin: .3rem 0 .8rem; } td, th { border: 1px solid #ddd; padding: .2rem .5rem; text-align: left; vertical-align: top; }
code, pre { font: 12px ui-monospace, monospace; } pre { background: #f6f6f6; padding: .5rem; overflow: auto; margin: 0; }
details { margin: .2rem 0; } .err { color: #c62828; }
</style>
</head>
<body>
<h1 id="title">OrleansFlashSale API</h1>
<p id="intro"></p>
<p>Raw document: <a href="/openapi/v1.json">/openapi/v1.json</a></p>
<div id="ops">Loading…</div>
<script>
const esc = s => String(s ?? "").replace(/[&<>"]/g, c => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"})[c]);
function resolve(doc, schema) {
  if (schema && schema.$ref) { return doc.components.schemas[schema.$ref.split("/").pop()]; }
  return schema;
}
function schemaText(doc, schema, depth) {
  schema = resolve(doc, schema);
  if (!schema || depth > 4) { return ""; }
  if (schema.properties) {
    const lines = Object.entries(schema.properties).map(([name, p]) => {
      const r = resolve(doc, p) || {};
      const type = Array.isArray(r.type) ? r.type.join("|") : (r.type || (r.properties ? "object" : ""));
      const values = r.enum ? " one of " + r.enum.join(", ") : "";
      return "  ".repeat(depth) + name + ": " + type + values + (r.properties || (r.items && resolve(doc, r.items)?.properties) ? "\n" + schemaText(doc, r.items || r, depth + 1) : "");
    });
    return lines.join("\n");
  }
  return "  ".repeat(depth) + (schema.type || "");
}
fetch("/openapi/v1.json").then(r => r.json()).then(doc => {
  document.getElementById("title").textContent = doc.info.title + " " + doc.info.version;
  document.getElementById("intro").textContent = doc.info.description || "";
  let html = "";
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(item)) {
      const m = method.toUpperCase();
      html += `<h2><span class="m ${m}">${m}</span><code>${esc(path)}</code></h2><div>${esc(op.summary)} ${esc(op.description)}</div>`;
      if (op.requestBody) {
        const media = Object.entries(op.requestBody.content)[0];
        html += `<details open><summary>Body (${esc(media[0])})</summary><pre>${esc(schemaText(doc, media[1].schema, 0))}</pre></details>`;
      }
      html += "<table><tr><th>status</th><th>meaning</th><th>body</th></tr>";
      for (const [status, resp] of Object.entries(op.responses || {})) {
        const media = Object.entries(resp.content || {})[0];
        const cls = status >= 400 ? "err" : "";
        html += `<tr><td class="${cls}">${esc(status)}</td><td>${esc(resp.description)}</td><td>${media ? `<code>${esc(media[0])}</code><pre>${esc(schemaText(doc, media[1].schema, 0))}</pre>` : ""}</td></tr>`;
      }
      html += "</table>";
    }
  }
  document.getElementById("ops").innerHTML = html;
}).catch(e => { document.getElementById("ops").textContent = "Could not load /openapi/v1.json: " + e; });
</script>
</body>
</html>
""";
}
