// The deliveries page (README "Deliveries page"). Everything it shows comes
// from the JSON API and is sender-controlled, so it only ever becomes text:
// textContent and DOM nodes, never markup. Links are built from fixed paths
// and encodeURIComponent, so no value can become a javascript: URL.
"use strict";

const POLL_MS = 4000;
const $ = (id) => document.getElementById(id);
let pollTimer = null;
let cursors = [];     // the cursors of the pages before the one shown
let current = null;   // the cursor of the page shown (null: the newest)
let canWrite = false;
let liveSource = null; // the EventSource of a running delivery's output

// A new element with text, or with children (nodes or strings, as text).
function el(tag, opts, ...children) {
  const e = document.createElement(tag);
  if (opts && opts.cls) e.className = opts.cls;
  if (opts && opts.href) e.setAttribute("href", opts.href);
  if (opts && opts.title) e.title = opts.title;
  for (const c of children) {
    if (c === null || c === undefined) continue;
    e.appendChild(typeof c === "object" ? c : document.createTextNode(String(c)));
  }
  return e;
}

function clear(node) {
  while (node.firstChild) node.removeChild(node.firstChild);
}

// "." and ".." cannot be path segments: browsers resolve them, even as
// %2E, before the request leaves. Such a delivery goes by query instead.
const dots = (s) => s === "." || s === "..";
function byQuery(ep, id) {
  return "?endpoint=" + encodeURIComponent(ep) + "&id=" + encodeURIComponent(id);
}

function deliveryPath(ep, id) {
  if (dots(ep) || dots(id)) return "/delivery" + byQuery(ep, id);
  return "/deliveries/" + encodeURIComponent(ep) + "/" + encodeURIComponent(id);
}

// The API's URL of a delivery, with "/output" or "/replay" as tail.
function apiPath(ep, id, tail) {
  if (dots(ep) || dots(id)) return "/api/v1/delivery" + tail + byQuery(ep, id);
  return "/api/v1/deliveries/" + encodeURIComponent(ep) + "/" + encodeURIComponent(id) + tail;
}

function fmtTime(t) {
  if (!t) return "";
  const d = new Date(t);
  return isNaN(d) ? String(t) : d.toLocaleString();
}

function fmtMs(ms) {
  if (ms === null || ms === undefined) return "";
  return ms < 1000 ? ms + " ms" : (ms / 1000).toFixed(ms < 10000 ? 2 : 1) + " s";
}

class AuthError extends Error {}

async function api(path, opts) {
  const r = await fetch(path, Object.assign({credentials: "same-origin",
                                             headers: {"Accept": "application/json"}}, opts));
  if (r.status === 401) throw new AuthError("log in");
  let body = null;
  try { body = await r.json(); } catch (e) { body = null; }
  if (!r.ok) throw new Error((body && body.error) || ("HTTP " + r.status));
  return body;
}

function show(section) {
  for (const s of ["login", "list", "detail", "rejections"]) $(s).hidden = s !== section;
}

function needLogin() {
  stopPolling();
  show("login");
  $("logout").hidden = true;
  $("token").focus();
}

// ---- the list ----

function filterQuery(cursor) {
  const p = new URLSearchParams();
  const f = $("filters");
  for (const name of ["state", "event", "endpoint", "since", "q", "limit"]) {
    const v = f.elements[name].value.trim();
    if (v) p.set(name, v);
  }
  if (cursor) p.set("cursor", cursor);
  return p;
}

function stateCell(state) {
  return el("td", {cls: "state-" + state}, state);
}

function renderList(body) {
  const tb = $("deliveries").tBodies[0];
  clear(tb);
  for (const d of body.deliveries) {
    const link = el("a", {href: deliveryPath(d.endpoint, d.id)}, d.id);
    link.addEventListener("click", (ev) => { ev.preventDefault(); navigate(link.getAttribute("href")); });
    tb.appendChild(el("tr", null,
      el("td", {title: d.received_at || ""}, fmtTime(d.received_at)),
      el("td", null, d.endpoint), el("td", null, d.event), el("td", null, link),
      stateCell(d.state), el("td", null, httpOf(d)),
      el("td", null, d.attempts), el("td", null, fmtMs(d.duration_ms)),
      el("td", null, fmtTime(d.next_retry_at))));
  }
  if (!body.deliveries.length)
    tb.appendChild(el("tr", null, el("td", null, "No deliveries match.")));
  $("more").hidden = !body.next;
  $("more").dataset.next = body.next || "";
  $("first").hidden = current === null;
  const note = $("journal-note");
  note.hidden = body.journal;
  note.textContent = body.journal ? "" :
    "The journal is off (no state_dir): the last 1,000 deliveries, from memory; no replay.";
}

async function loadList() {
  try {
    const body = await api("/api/v1/deliveries?" + filterQuery(current));
    $("list-error").textContent = "";
    renderList(body);
  } catch (e) {
    if (e instanceof AuthError) return needLogin();
    $("list-error").textContent = e.message;
  }
}

function stopPolling() {
  if (pollTimer) clearInterval(pollTimer);
  pollTimer = null;
  stopLive();
}

function stopLive() {
  if (liveSource) liveSource.close();
  liveSource = null;
}

// A running delivery's output as its hooks print it; the outcome ends it.
function watchLive(ep, id) {
  stopLive();
  const pre = $("live-output");
  pre.textContent = "";
  $("live").hidden = false;
  let hook = null;
  const src = new EventSource(apiPath(ep, id, "/output"));
  liveSource = src;
  src.addEventListener("line", (ev) => {
    const d = JSON.parse(ev.data);
    if (d.hook !== hook) { hook = d.hook; pre.appendChild(el("strong", null, "[" + hook + "]\n")); }
    pre.appendChild(document.createTextNode(d.line + "\n"));
  });
  src.addEventListener("outcome", () => {
    stopLive();
    setTimeout(() => { if (!$("detail").hidden) loadDetail(ep, id, true); }, 300);
  });
}

function startPolling() {
  stopPolling();
  // Only the newest page follows new deliveries; an older page stays put.
  pollTimer = setInterval(() => {
    if ($("auto").checked && current === null && !$("list").hidden && !document.hidden)
      loadList();
  }, POLL_MS);
}

// ---- one delivery ----

function kvRows(table, pairs) {
  const tb = table.tBodies[0];
  clear(tb);
  for (const [k, v] of pairs) tb.appendChild(el("tr", null, el("td", null, k), el("td", null, v)));
  if (!pairs.length) tb.appendChild(el("tr", null, el("td", null, "none")));
}

function prettyBody(d) {
  if (d.body === null || d.body === undefined)
    return "(binary, base64)\n" + (d.body_base64 || "");
  let text = d.body;
  try { text = JSON.stringify(JSON.parse(d.body), null, 2); } catch (e) { /* not JSON */ }
  if (d.body_cut) text += "\n\n(cut: " + d.body_kept + " of " + d.body_bytes + " bytes kept)";
  return text;
}

// The delivery's http is its last attempt's: the list says whether that
// attempt's sender hung up before its answer, the detail each attempt.
function httpOf(d) {
  if (d.http === null) return "";
  const list = d.attempt_list || [];
  const gone = list.length ? list[list.length - 1].client_gone : d.client_gone;
  return gone ? d.http + " (sender gone before the answer)" : d.http;
}

function renderAttempts(list) {
  const ol = $("d-attempts");
  clear(ol);
  for (const a of list) {
    const li = el("li", null,
      el("strong", null, "Attempt " + a.attempt), " · ", fmtTime(a.started_at),
      a.ms !== null ? " · " + fmtMs(a.ms) : " · unfinished",
      a.http !== null ? " · HTTP " + a.http : "",
      a.client_gone ? " (sender gone before the answer)" : "", " · ", a.status || "",
      a.instance ? " · on " + a.instance : "",
      a.error ? el("div", {cls: "error"}, a.error) : null);
    for (const h of a.hooks) {
      const what = [];
      if (h.exit !== null) what.push("exit " + h.exit);
      if (h.signal) what.push(h.signal);
      what.push(fmtMs(h.ms));
      const div = el("div", {cls: "hook"}, el("code", null, h.hook), " ", what.join(" · "),
                     h.error ? el("div", {cls: "error"}, h.error) : null);
      if (h.output) div.appendChild(el("pre", null, h.output));
      li.appendChild(div);
    }
    ol.appendChild(li);
  }
  if (!list.length) ol.appendChild(el("li", null, "No attempt yet."));
}

async function loadDetail(ep, id, after_live) {
  stopPolling();
  if (!after_live) $("live").hidden = true;
  show("detail");
  $("d-title").textContent = id;
  $("detail-error").textContent = "";
  $("replay-result").textContent = "";
  // "--": an id may start with '-'.
  const cmd = "hookd replay --endpoint " + shellQuote(ep) + " -- " + shellQuote(id);
  $("replay-cmd").textContent = cmd;
  $("replay").dataset.ep = ep;
  $("replay").dataset.id = id;
  try {
    const d = await api(apiPath(ep, id, ""));
    const dl = $("d-summary");
    clear(dl);
    const rows = [["Endpoint", d.endpoint], ["Event", d.event], ["State", d.state],
                  ["HTTP", httpOf(d)], ["Attempts", d.attempts],
                  ["Received", fmtTime(d.received_at)], ["Updated", fmtTime(d.updated_at)],
                  ["Next retry", fmtTime(d.next_retry_at)], ["Mode", d.mode],
                  ["Client", d.remote_addr], ["Error", d.error || ""]];
    for (const [k, v] of rows) { dl.appendChild(el("dt", null, k)); dl.appendChild(el("dd", null, v)); }
    renderAttempts(d.attempt_list || []);
    kvRows($("d-headers"), (d.headers || []).map((h) => [h.name, h.value]));
    $("d-body").textContent = prettyBody(d);
    kvRows($("d-env"), d.environment_unknown ? [["(not known)", d.environment_unknown]]
      : (d.environment || []).map((v) => [v.name, v.value]));
    $("replay").hidden = !canWrite;
    if (["queued", "running", "retry_wait"].includes(d.state)) watchLive(ep, id);
  } catch (e) {
    if (e instanceof AuthError) return needLogin();
    $("detail-error").textContent = e.message;
  }
}

function shellQuote(s) {
  return /^[A-Za-z0-9_.:@%+=,\/-]+$/.test(s) ? s : "'" + s.replace(/'/g, "'\\''") + "'";
}

async function replay() {
  const ep = $("replay").dataset.ep, id = $("replay").dataset.id;
  // The id isolated (U+2068 ... U+2069): a bidi override in it must not
  // turn the words after it around.
  if (!window.confirm("Run delivery \u2068" + id + "\u2069 again?")) return;
  try {
    const r = await api(apiPath(ep, id, "/replay"), {method: "POST"});
    $("replay-result").textContent = r.status;
    watchLive(ep, id);
  } catch (e) {
    if (e instanceof AuthError) return needLogin();
    $("replay-result").textContent = e.message;
  }
}

// ---- rejections ----

async function loadRejections() {
  stopPolling();
  show("rejections");
  try {
    const body = await api("/api/v1/rejections");
    const tb = $("rejections-table").tBodies[0];
    clear(tb);
    for (const r of body.rejections)
      tb.appendChild(el("tr", null, el("td", null, fmtTime(r.time)), el("td", null, r.client || ""),
                        el("td", null, r.endpoint || r.path || ""), el("td", null, r.http),
                        el("td", null, r.reason || "")));
    if (!body.rejections.length) tb.appendChild(el("tr", null, el("td", null, "None yet.")));
  } catch (e) {
    if (e instanceof AuthError) return needLogin();
  }
}

// ---- routing and start ----

async function route() {
  const p = location.pathname;
  const m = p.match(/^\/deliveries\/([^/]+)\/([^/]+)$/);
  if (m) return loadDetail(decodeURIComponent(m[1]), decodeURIComponent(m[2]));
  if (p === "/delivery") {
    const q = new URLSearchParams(location.search);
    return loadDetail(q.get("endpoint") || "", q.get("id") || "");
  }
  if (p === "/rejections") return loadRejections();
  show("list");
  startPolling();
  return loadList();
}

function navigate(path) {
  history.pushState(null, "", path);
  route();
}

async function start() {
  try {
    const st = await api("/api/v1/status");
    canWrite = st.access === "write";
    $("logout").hidden = !st.auth;
  } catch (e) {
    if (e instanceof AuthError) return needLogin();
  }
  route();
}

document.addEventListener("DOMContentLoaded", () => {
  for (const id of ["nav-deliveries", "nav-rejections", "back"])
    $(id).addEventListener("click", (ev) => { ev.preventDefault(); navigate(ev.currentTarget.getAttribute("href")); });
  window.addEventListener("popstate", route);
  $("filters").addEventListener("submit", (ev) => {
    ev.preventDefault(); cursors = []; current = null; loadList();
  });
  $("more").addEventListener("click", () => {
    cursors.push(current); current = $("more").dataset.next; loadList();
  });
  $("first").addEventListener("click", () => { cursors = []; current = null; loadList(); });
  $("replay").addEventListener("click", replay);
  $("copy").addEventListener("click", () => {
    if (navigator.clipboard) navigator.clipboard.writeText($("replay-cmd").textContent);
  });
  $("login-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      await api("/api/v1/login", {method: "POST", headers: {"Content-Type": "application/json"},
                                  body: JSON.stringify({token: $("token").value})});
      $("token").value = "";
      $("login-error").textContent = "";
      start();
    } catch (e) {
      $("login-error").textContent = e instanceof AuthError ? "Wrong token." : e.message;
    }
  });
  $("logout").addEventListener("click", async () => {
    try { await api("/api/v1/logout", {method: "POST"}); } catch (e) { /* gone already */ }
    needLogin();
  });
  start();
});
