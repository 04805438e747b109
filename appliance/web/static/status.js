// The status page: every few seconds, /api/status/view gives the tables' rows as display strings
// (already in the page's language and the gate's time zone); rows are matched by data-id and their
// cells rewritten. Data only ever goes into the page through textContent and attributes.
"use strict";

(function () {
  const POLL_MS = 3000;
  const root = document.getElementById("status");
  if (!root) return;
  let busy = false;

  // Control, bidi and zero-width characters show as visible stand-ins (as the server's pages do).
  function shown(text) {
    return String(text).replace(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]/g,
      (ch) => "\u27e8U+" + ch.charCodeAt(0).toString(16).toUpperCase().padStart(4, "0") + "\u27e9");
  }

  function setThumb(td, url, alt) {
    if (!url) {
      td.replaceChildren();
      return;
    }
    let img = td.querySelector("img");
    if (!img) {
      img = document.createElement("img");
      img.className = "frame-thumb";
      img.alt = alt || "";
      td.replaceChildren(img);
    }
    if (url.startsWith("/status/thumb/") && img.getAttribute("src") !== url) img.setAttribute("src", url);
  }

  function fill(table, rows) {
    const heads = Array.from(table.tHead.rows[0].cells);
    const tbody = table.tBodies[0];
    const existing = new Map(Array.from(tbody.rows, (tr) => [tr.dataset.id, tr]));
    const ordered = rows.map((row) => {
      let tr = existing.get(String(row.id));
      if (!tr) {
        tr = document.createElement("tr");
        tr.dataset.id = String(row.id);
        for (const th of heads) {
          const td = document.createElement("td");
          td.dataset.key = th.dataset.key;
          tr.appendChild(td);
        }
      }
      tr.className = "state-" + (/^[a-z_]+$/.test(row.state || "") ? row.state : "none");
      if (row.error) tr.title = shown(row.error);
      else tr.removeAttribute("title");
      heads.forEach((th, i) => {
        const key = th.dataset.key;
        const value = row[key];
        if (key === "thumb") setThumb(tr.cells[i], value, th.dataset.alt);
        else tr.cells[i].textContent = value === null || value === undefined || value === "" ? "-" : shown(value);
      });
      return tr;
    });
    tbody.replaceChildren(...ordered);
    table.hidden = rows.length === 0;
    const empty = document.querySelector('[data-empty-for="' + table.id + '"]');
    if (empty) empty.hidden = rows.length > 0;
  }

  function draw(body) {
    for (const table of root.querySelectorAll("table[data-rows]")) {
      const rows = body[table.dataset.rows];
      if (Array.isArray(rows)) fill(table, rows);
    }
    const inbound = document.getElementById("inbound");
    if (inbound) {
      inbound.hidden = !body.inbound;
      for (const dd of inbound.querySelectorAll("[data-inbound]")) {
        dd.textContent = body.inbound ? shown(body.inbound[dd.dataset.inbound] ?? "-") : "-";
      }
    }
    document.getElementById("updated").textContent = shown(body.updated || "");
    document.getElementById("timezone").textContent = shown(body.timezone || "");
  }

  async function poll() {
    if (busy || document.hidden) return;
    busy = true;
    const params = new URLSearchParams({lang: root.dataset.lang || "vi"});
    try {
      const resp = await fetch("/api/status/view?" + params.toString(), {credentials: "same-origin",
                                                                         headers: {Accept: "application/json"}});
      if (resp.status === 401) {
        window.location.reload();  // the session ended: the login page
        return;
      }
      if (!resp.ok) throw new Error("HTTP " + resp.status);
      draw(await resp.json());
      document.getElementById("live").hidden = false;
      document.getElementById("stale").hidden = true;
    } catch (err) {
      document.getElementById("live").hidden = true;
      document.getElementById("stale").hidden = false;
    } finally {
      busy = false;
    }
  }

  poll();
  setInterval(poll, POLL_MS);
  document.addEventListener("visibilitychange", poll);
})();
