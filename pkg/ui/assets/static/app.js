// errnowatch web UI: live alerts over Server-Sent Events, and filter
// selects that apply on change. No inline script (the CSP forbids it), no
// innerHTML: every value goes into the page as text.
"use strict";

(function () {
  const severities = ["info", "low", "medium", "high", "critical"];
  const maxRows = 500;

  function link(path, query, key, value) {
    const p = new URLSearchParams(query);
    p.set(key, value);
    p.delete("before");
    return path + "?" + p.toString();
  }

  function cell(tr, text, href, cls) {
    const td = document.createElement("td");
    if (cls) td.className = cls;
    if (href) {
      const a = document.createElement("a");
      a.href = href;
      a.textContent = text;
      td.appendChild(a);
      tr.appendChild(td);
      return a;
    }
    td.textContent = text;
    tr.appendChild(td);
    return td;
  }

  function row(table, a) {
    const path = table.dataset.path, q = table.dataset.query;
    const tr = document.createElement("tr");
    tr.dataset.id = a.id;
    tr.className = "fresh";
    cell(tr, a.last_seen, null, "num");
    const sev = cell(tr, a.severity, link(path, q, "severity", a.severity));
    if (severities.includes(a.severity)) sev.className = "sev sev-" + a.severity;
    cell(tr, a.rule, link(path, q, "rule", a.rule));
    if (a.namespace) cell(tr, a.namespace, link(path, q, "namespace", a.namespace));
    else cell(tr, "host", null, "muted");
    if (a.pod) cell(tr, a.pod, link(path, q, "pod", a.pod)); else cell(tr, "");
    cell(tr, a.node, link(path, q, "node", a.node));
    cell(tr, String(a.total), null, "num");
    cell(tr, a.message, "/alerts/" + encodeURIComponent(a.id));
    return tr;
  }

  function live(table) {
    if (!window.EventSource || !table.dataset.live) return;
    const state = document.getElementById("live-state");
    const tbody = table.tBodies[0];
    const es = new EventSource(table.dataset.live);
    es.onopen = function () { if (state) state.hidden = false; };
    es.onerror = function () { if (state) state.hidden = true; };
    es.addEventListener("ended", function () { es.close(); if (state) state.hidden = true; });
    es.addEventListener("alert", function (ev) {
      let a;
      try { a = JSON.parse(ev.data); } catch (e) { return; }
      // A new revision replaces the alert's row.
      for (const old of tbody.querySelectorAll("tr")) {
        if (old.dataset.id === a.id || old.classList.contains("empty")) old.remove();
      }
      tbody.insertBefore(row(table, a), tbody.firstChild);
      while (tbody.rows.length > maxRows) tbody.deleteRow(tbody.rows.length - 1);
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    const table = document.getElementById("alerts");
    if (table) live(table);
    const form = document.getElementById("filters");
    if (form) {
      for (const sel of form.querySelectorAll("select")) {
        sel.addEventListener("change", function () { form.requestSubmit(); });
      }
      // Empty fields stay out of the URL.
      form.addEventListener("submit", function () {
        for (const el of form.elements) {
          if (el.name && el.value === "") el.disabled = true;
        }
      });
    }
  });
})();
