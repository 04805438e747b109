// The crossing review page: keyboard shortcuts (j/n next, k previous, a approve, h hold,
// c correct, ? help, Esc closes) and click-to-zoom on the evidence crops. No data is written
// into the page from here.
"use strict";

(function () {
  const help = document.getElementById("help");

  function typing(el) {
    if (!el) return false;
    const tag = el.tagName;
    return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || el.isContentEditable;
  }

  function follow(id) {
    const link = document.getElementById(id);
    if (link) window.location.href = link.href;
  }

  function focus(id) {
    const el = document.getElementById(id);
    if (!el) return;
    el.scrollIntoView({block: "center"});
    el.focus();
  }

  function unzoom() {
    let any = false;
    for (const fig of document.querySelectorAll("figure.crop.zoomed")) {
      fig.classList.remove("zoomed");
      any = true;
    }
    return any;
  }

  function toggleZoom(fig) {
    const was = fig.classList.contains("zoomed");
    unzoom();
    if (!was) fig.classList.add("zoomed");
  }

  for (const fig of document.querySelectorAll("figure.crop")) {
    fig.addEventListener("click", () => toggleZoom(fig));
    fig.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter" || ev.key === " ") {
        toggleZoom(fig);
        ev.preventDefault();
      }
    });
  }

  const keys = {
    j: () => follow("next"),
    n: () => follow("next"),
    k: () => follow("prev"),
    a: () => focus("approve-reason"),
    h: () => focus("hold-reason"),
    c: () => focus("correct-target"),
    "?": () => { if (help) help.hidden = !help.hidden; },
  };

  document.addEventListener("keydown", (ev) => {
    if (ev.key === "Escape") {
      const closed = unzoom();
      if (help && !help.hidden) help.hidden = true;
      else if (!closed && typing(document.activeElement)) document.activeElement.blur();
      return;
    }
    if (ev.ctrlKey || ev.metaKey || ev.altKey || typing(ev.target)) return;
    const action = keys[ev.key];
    if (action) {
      ev.preventDefault();  // the key itself is not typed into the field it focuses
      action();
    }
  });
})();
