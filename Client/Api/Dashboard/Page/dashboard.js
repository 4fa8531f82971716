// Live dashboard of one sale. Polls GET /api/admin/dashboard with the admin token; draws with the DOM and a canvas,
// so the page needs nothing but this gateway.
"use strict";

const POLL_MS = 1000;
const TOKEN_KEY = "flashsale.adminToken";
const COLORS = {
  created: "#2f6fb2", replayed: "#7a5af8", sold_out: "#f79009", limit_exceeded: "#b42318", not_started: "#667085",
  ended: "#344054", invalid_request: "#e04f16", unavailable: "#c11574", other: "#98a2b3",
};
const PURCHASES = ["created"];
const REJECTIONS = ["sold_out", "limit_exceeded", "not_started", "ended", "invalid_request", "unavailable", "other"];

const $ = (id) => document.getElementById(id);
let sku = new URLSearchParams(location.search).get("sku") || "";
let timer = null;

// A token in the fragment (#token=...) is taken once and removed from the address bar; the fragment never reaches
// the server or its logs.
(function takeTokenFromFragment() {
  const match = /(?:^#|&)token=([^&]+)/.exec(location.hash);
  if (match) {
    sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(match[1]));
    history.replaceState(null, "", location.pathname + location.search);
  }
})();

function token() { return sessionStorage.getItem(TOKEN_KEY) || ""; }

function showLogin(message) {
  $("login").hidden = false;
  $("main").hidden = true;
  $("login-error").textContent = message || "";
  setConnection("not connected", "bad");
}

function setConnection(text, kind) {
  const pill = $("connection");
  pill.textContent = text;
  pill.className = "pill " + (kind || "");
}

async function api(method, path, body) {
  const headers = { Authorization: "Bearer " + token() };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: "no-store" });
  const text = await response.text();
  let parsed = null;
  try { parsed = text ? JSON.parse(text) : null; } catch { parsed = null; }  // a proxy's HTML error page, say
  return { status: response.status, body: parsed };
}

async function poll() {
  clearTimeout(timer);
  if (!token()) { showLogin(); return; }
  try {
    const { status, body } = await api("GET", "/api/admin/dashboard" + (sku ? "?sku=" + encodeURIComponent(sku) : ""));
    if (status === 401 || status === 403) { showLogin(status === 403 ? "That token is not the admin token." : ""); return; }
    if (status === 404 && sku) { sku = ""; setConnection("sale not found", "bad"); }
    else if (status !== 200) { setConnection("gateway answered " + status + (body && body.code ? " " + body.code : ""), "bad"); }
    else { render(body); setConnection("live", "ok"); }
  } catch (error) {
    setConnection("gateway unreachable", "bad");
  }
  timer = setTimeout(poll, POLL_MS);
}

function text(id, value) { $(id).textContent = value === null || value === undefined ? "–" : String(value); }

function fillTable(id, rows) {
  const body = $(id).tBodies[0];
  body.replaceChildren(...rows.map((cells) => {
    const tr = document.createElement("tr");
    for (const cell of cells) {
      const td = document.createElement("td");
      if (cell instanceof Node) td.append(cell); else td.textContent = String(cell);
      tr.append(td);
    }
    return tr;
  }));
}

function render(view) {
  $("login").hidden = true;
  $("main").hidden = false;
  text("updated", "updated " + new Date(view.generatedAt).toLocaleTimeString());
  renderSales(view.sales, view.sku);
  $("empty").hidden = !!view.sale;
  $("sale-card").hidden = !view.sale;
  if (view.sale) renderSale(view.sale);
  renderRates(view.rates);
  renderBooks(view.books, view.booksError);
  renderSilos(view.silos, view.silosError);
  document.body.dataset.sku = view.sku || "";
  document.body.dataset.polls = String(Number(document.body.dataset.polls || 0) + 1);
}

function renderSales(sales, current) {
  const select = $("sale-select");
  const wanted = [...sales];
  if (current && !wanted.includes(current)) wanted.push(current);
  const have = [...select.options].map((o) => o.value);
  if (have.join("\n") !== wanted.join("\n")) {
    select.replaceChildren(...wanted.map((s) => new Option(s, s)));
  }
  select.value = current || "";
  if (current && current !== sku) sku = current;
}

function renderSale(sale) {
  text("sale-sku", sale.sku);
  const state = $("sale-state");
  state.textContent = sale.state + (sale.mode === "database" ? " · database mode" : "");
  state.className = "pill " + (sale.state === "active" ? "ok" : sale.state === "sold_out" ? "bad" : "");
  text("stock", sale.stock);
  text("sold", sale.sold);
  text("remaining", sale.remaining);
  text("layout", `${sale.buckets.length} buckets, layout v${sale.layoutVersion}` + (sale.inTransfer ? `, ${sale.inTransfer} units in transfer` : ""));
  const max = Math.max(1, ...sale.buckets.map((b) => b.remaining));
  $("buckets").replaceChildren(...sale.buckets.map((b) => {
    const row = document.createElement("div");
    row.className = "bar";
    row.dataset.bucket = String(b.index);
    const label = document.createElement("span");
    label.textContent = "#" + b.index;
    const track = document.createElement("div");
    track.className = "track";
    const fill = document.createElement("div");
    fill.className = "fill";
    fill.style.width = (100 * b.remaining / max).toFixed(1) + "%";
    track.append(fill);
    const value = document.createElement("span");
    value.className = "value";
    value.textContent = String(b.remaining);
    row.append(label, track, value);
    return row;
  }));
}

function sum(map, keys) { return keys.reduce((n, k) => n + (map[k] || 0), 0); }

function renderRates(rates) {
  if (!rates) {
    text("purchase-rate", null); text("rejection-rate", null);
    fillTable("rates-table", []);
    drawChart(null);
    return;
  }
  text("purchase-rate", (sum(rates.lastMinute, PURCHASES) / 60).toFixed(1));
  text("rejection-rate", (sum(rates.lastMinute, REJECTIONS) / 60).toFixed(1));
  const shown = Object.keys(rates.total).filter((k) => rates.total[k] > 0);
  fillTable("rates-table", shown.map((k) => {
    const name = document.createElement("span");
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = COLORS[k] || COLORS.other;
    name.append(swatch, k);
    name.dataset.outcome = k;
    return [name, rates.lastMinute[k], rates.total[k]];
  }));
  drawChart(rates, shown);
}

function drawChart(rates, shown) {
  const canvas = $("rates-chart");
  const ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height, left = 48, bottom = 20;
  ctx.clearRect(0, 0, w, h);
  ctx.font = "11px system-ui, sans-serif";
  ctx.fillStyle = "#667085";
  if (!rates || shown.length === 0) { ctx.fillText("no purchase answers in the last 5 minutes", left, h / 2); return; }
  const n = rates.windowSeconds;
  const max = Math.max(1, ...shown.flatMap((k) => rates.perSecond[k]));
  const x = (i) => left + (w - left - 8) * i / (n - 1);
  const y = (v) => 8 + (h - bottom - 8) * (1 - v / max);
  ctx.strokeStyle = "#e4e7ec";
  ctx.beginPath(); ctx.moveTo(left, y(0)); ctx.lineTo(w - 8, y(0)); ctx.moveTo(left, y(max)); ctx.lineTo(w - 8, y(max)); ctx.stroke();
  ctx.fillText(max + "/s", 4, y(max) + 4);
  ctx.fillText("0", 4, y(0) + 4);
  ctx.fillText("−5 min", left, h - 4);
  ctx.fillText("now", w - 30, h - 4);
  for (const k of shown) {
    const series = rates.perSecond[k];
    ctx.strokeStyle = COLORS[k] || COLORS.other;
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    series.forEach((v, i) => (i === 0 ? ctx.moveTo(x(i), y(v)) : ctx.lineTo(x(i), y(v))));
    ctx.stroke();
  }
}

function ageText(ms) {
  if (ms === null || ms === undefined) return "none";
  return ms < 1000 ? ms + " ms" : (ms / 1000).toFixed(1) + " s";
}

function renderBooks(books, error) {
  text("books-error", error || "");
  if (!books) {
    for (const id of ["acknowledged", "persisted", "in-flight", "oldest", "writer-pending", "half", "dead-letters", "check-max", "drift"]) text(id, null);
    fillTable("orders-table", []);
    $("problems").replaceChildren();
    return;
  }
  text("books-checked", "checked " + new Date(books.checkedAt).toLocaleTimeString() + (books.atRest ? ", at rest" : ", orders in flight"));
  text("acknowledged", books.acknowledgedUnits);
  text("persisted", books.persistedUnits);
  text("in-flight", books.inFlightUnits);
  text("oldest", ageText(books.oldestUnpersistedAgeMs));
  text("writer-pending", books.writerPending);
  text("half", books.halfMessages);
  text("dead-letters", books.deadLetters);
  text("check-max", books.checkMax);
  const drift = $("drift");
  drift.textContent = books.drift ? "drift" : books.atRest ? "balanced" : "settling";
  drift.className = "figure " + (books.drift ? "error" : "");
  $("problems").replaceChildren(...books.problems.map((p) => { const li = document.createElement("li"); li.textContent = p; return li; }));
  fillTable("orders-table", books.ordersByStatus.map((s) => [s.status, s.orders, s.units]));
}

function renderSilos(silos, error) {
  text("silos-error", error || "");
  fillTable("silos-table", silos.map((s) => [s.address, s.name, s.hostName, s.status,
    new Date(s.startedAt).toLocaleString(), new Date(s.lastAlive).toLocaleTimeString()]));
}

function formNumbers(form, names) {
  const data = Object.fromEntries(new FormData(form));
  for (const n of names) data[n] = Number(data[n]);
  return data;
}

async function admin(method, path, body, done) {
  const result = $("admin-result");
  try {
    const { status, body: answer } = await api(method, path, body);
    if (status >= 200 && status < 300) { result.className = ""; result.textContent = done(answer); }
    else { result.className = "error"; result.textContent = `${status} ${answer && answer.code ? answer.code : ""}: ${answer && (answer.detail || answer.title) || ""}`; }
  } catch (error) {
    result.className = "error";
    result.textContent = "gateway unreachable";
  }
  poll();
}

document.addEventListener("DOMContentLoaded", () => {
  $("login-form").addEventListener("submit", (e) => {
    e.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $("token").value.trim());
    $("token").value = "";
    poll();
  });
  $("forget-token").addEventListener("click", () => { sessionStorage.removeItem(TOKEN_KEY); showLogin(); });
  $("sale-select").addEventListener("change", (e) => {
    sku = e.target.value;
    history.replaceState(null, "", "?sku=" + encodeURIComponent(sku));
    poll();
  });
  $("create-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const body = formNumbers(e.target, ["stock", "buckets", "perUserLimit"]);
    admin("POST", "/api/sales", body, (sale) => { sku = sale.sku; history.replaceState(null, "", "?sku=" + encodeURIComponent(sku)); return "created " + sale.sku; });
  });
  $("rebucket-form").addEventListener("submit", (e) => {
    e.preventDefault();
    if (!sku) return;
    const body = formNumbers(e.target, ["buckets"]);
    admin("PUT", "/api/sales/" + encodeURIComponent(sku) + "/buckets", body, (s) => `${s.sku} now has ${s.buckets.length} buckets`);
  });
  poll();
});
