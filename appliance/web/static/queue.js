// The review queue: redraws the table when /api/queue says something changed (polled every few
// seconds), and moves through the rows with j/k (Enter opens). Data only ever goes into the page
// through textContent and attributes, never as HTML.
"use strict";

(function () {
  const POLL_MS = 4000;
  const table = document.getElementById("crossings");
  if (!table) return;
  const tbody = table.tBodies[0];
  let selected = -1;
  let busy = false;

  // Control, bidi and zero-width characters show as visible stand-ins (as the server's pages do).
  function shown(text) {
    return String(text).replace(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]/g,
      (ch) => "\u27e8U+" + ch.charCodeAt(0).toString(16).toUpperCase().padStart(4, "0") + "\u27e9");
  }

  function cell(row, text) {
    const td = document.createElement("td");
    td.textContent = text ? shown(text) : "-";
    row.appendChild(td);
    return td;
  }

  function drawRow(c) {
    const lang = table.dataset.lang;
    const tr = document.createElement("tr");
    tr.dataset.id = c.id;
    tr.className = c.pending ? "pending" : "decided";
    const link = document.createElement("a");
    link.href = "/crossings/" + encodeURIComponent(c.id) + "?lang=" + encodeURIComponent(lang);
    link.textContent = shown(c.when);
    cell(tr, "").replaceChildren(link);
    cell(tr, c.lane_id);
    const badge = document.createElement("span");
    badge.className = "badge " + (["CLEAR", "REVIEW", "HOLD"].includes(c.decision) ? c.decision : "");
    badge.textContent = shown(c.decision_label);
    cell(tr, "").replaceChildren(badge);
    const state = cell(tr, c.state || " ");
    for (const x of c.xray_reasons || []) {  // an X-ray alarm revised the verdict: say which
      const tag = document.createElement("span");
      tag.className = "reason-tag xray-reason";
      tag.dataset.code = String(x.code);
      tag.textContent = shown(x.label);
      state.append(" ", tag);
    }
    cell(tr, c.plate);
    cell(tr, c.containers);
    cell(tr, c.declaration);
    return tr;
  }

  function draw(body) {
    const keep = selected >= 0 && tbody.rows[selected] ? tbody.rows[selected].dataset.id : null;
    tbody.replaceChildren(...body.rows.map(drawRow));
    table.hidden = body.rows.length === 0;
    const empty = document.getElementById("empty");
    if (empty) empty.hidden = body.rows.length > 0;
    document.getElementById("pending").textContent = String(body.pending);
    for (const span of document.querySelectorAll("[data-count]")) {
      span.textContent = String(body.counts[span.dataset.count] || 0);
    }
    selected = keep ? Array.from(tbody.rows).findIndex((r) => r.dataset.id === keep) : -1;
    mark();
  }

  async function poll() {
    if (busy || document.hidden) return;
    busy = true;
    const params = new URLSearchParams({page: table.dataset.page, lang: table.dataset.lang,
                                        since: table.dataset.stamp});
    if (table.dataset.decision) params.set("decision", table.dataset.decision);
    try {
      const resp = await fetch("/api/queue?" + params.toString(), {credentials: "same-origin",
                                                                    headers: {Accept: "application/json"}});
      if (resp.status === 401) {
        window.location.reload();  // the session ended: the login page
        return;
      }
      if (!resp.ok) return;
      const body = await resp.json();
      table.dataset.stamp = body.stamp;
      if (body.changed) draw(body);
      document.getElementById("live").hidden = false;
    } catch (err) {
      document.getElementById("live").hidden = true;
    } finally {
      busy = false;
    }
  }

  function mark() {
    Array.from(tbody.rows).forEach((r, i) => r.classList.toggle("selected", i === selected));
    const row = tbody.rows[selected];
    if (row) row.querySelector("a").focus();
  }

  document.addEventListener("keydown", (ev) => {
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    const tag = ev.target && ev.target.tagName;
    if (tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT") return;
    const rows = tbody.rows.length;
    if ((ev.key === "j" || ev.key === "n") && rows) {
      selected = Math.min(rows - 1, selected + 1);
      mark();
      ev.preventDefault();
    } else if (ev.key === "k" && rows) {
      selected = Math.max(0, selected - 1);
      mark();
      ev.preventDefault();
    } else if (ev.key === "/") {
      window.location.href = "/search?lang=" + encodeURIComponent(table.dataset.lang);
      ev.preventDefault();
    }
  });

  setInterval(poll, POLL_MS);
  document.addEventListener("visibilitychange", poll);
})();
