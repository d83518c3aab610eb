// The leaderboard page: the table from window.LEADERBOARD (data.js), sortable by any column;
// a click on a row shows its cells' settings and every problem with its candidates.
"use strict";
(function () {
  const data = window.LEADERBOARD;
  const fmt = (v, d) => (v === null || v === undefined ? "—" : Number(v).toFixed(d));
  const columns = [
    ["strategy", "strategy", r => r.strategy, r => r.strategy, true],
    ["budget", "budget", r => (r.budget === null ? Infinity : r.budget), r => (r.budget === null ? "—" : r.budget.toLocaleString("en"))],
    ["seeds", "seeds", r => r.seeds.length, r => r.seeds.join(",")],
    ["problems", "problems", r => r.problems, r => r.problems],
    ["accuracy", "accuracy", r => r.accuracy, r => fmt(r.accuracy, 3)],
    ["ci", "95% CI", r => r.accuracy_ci95[0], r => "[" + fmt(r.accuracy_ci95[0], 3) + ", " + fmt(r.accuracy_ci95[1], 3) + "]"],
    ["spread", "seed sd", r => r.seed_spread.std, r => (r.seeds.length > 1 ? fmt(r.seed_spread.std, 3) : "—")],
    ["coverage", "coverage", r => r.coverage, r => fmt(r.coverage, 2)],
    ["tokens", "generated tokens", r => r.generated_tokens, r => fmt(r.generated_tokens, 0)],
    ["flops", "FLOPs", r => r.flops, r => Number(r.flops).toExponential(2)],
    ["verifier", "verifier calls", r => r.verifier_calls, r => fmt(r.verifier_calls, 1)],
    ["seconds", "wall s", r => r.seconds, r => fmt(r.seconds, 1)],
    ["exhausted", "budget ran out", r => r.budget_exhausted, r => fmt(r.budget_exhausted, 2)],
    ["vs", "vs " + (data.baseline || "baseline") + ": won / lost (p)", r => (r.vs_baseline ? r.vs_baseline.won - r.vs_baseline.lost : -Infinity),
      r => (r.vs_baseline ? r.vs_baseline.won + " / " + r.vs_baseline.lost + " (" + Number(r.vs_baseline.p).toPrecision(2) + ")" : "—")],
    ["frontier", "frontier", r => (r.frontier ? 1 : 0), r => (r.frontier ? "★" : "")],
  ];
  const el = (tag, attrs, text) => {
    const e = document.createElement(tag);
    Object.entries(attrs || {}).forEach(([k, v]) => e.setAttribute(k, v));
    if (text !== undefined) e.textContent = String(text);
    return e;
  };
  const board = document.getElementById("board");
  let order = { key: null, dir: 1 };

  function renderHead() {
    const tr = el("tr");
    columns.forEach(([key, label, , , text]) => {
      const th = el("th", { "data-key": key, class: text ? "text" : "" }, label);
      th.addEventListener("click", () => sortBy(key));
      tr.appendChild(th);
    });
    board.querySelector("thead").replaceChildren(tr);
  }

  function renderBody(rows) {
    const body = board.querySelector("tbody");
    body.replaceChildren();
    rows.forEach(r => {
      const tr = el("tr", { "data-row": r.index, class: r.frontier ? "frontier" : "" });
      columns.forEach(([key, , , show, text]) => tr.appendChild(el("td", { "data-key": key, class: text ? "text" : "" }, show(r))));
      tr.addEventListener("click", () => showRow(r, tr));
      body.appendChild(tr);
    });
  }

  function sortBy(key) {
    order = { key, dir: order.key === key ? -order.dir : 1 };
    const value = columns.find(c => c[0] === key)[2];
    const rows = data.rows.slice().sort((a, b) => {
      const x = value(a), y = value(b);
      return (x < y ? -1 : x > y ? 1 : a.index - b.index) * order.dir;
    });
    board.querySelectorAll("th").forEach(th => {
      th.classList.remove("sorted-asc", "sorted-desc");
      if (th.dataset.key === key) th.classList.add(order.dir > 0 ? "sorted-asc" : "sorted-desc");
    });
    renderBody(rows);
  }

  function candidateList(p) {
    if (!p.candidates || !p.candidates.length) return el("span", {}, "(not recorded)");
    const ul = el("ul");
    (p.candidates || []).forEach(c => {
      const scores = Object.entries(c.scores || {}).map(([k, v]) => k + " " + Number(v).toFixed(3)).join(", ");
      const li = el("li", { class: c.correct ? "right" : "wrong" }, (c.answer === null ? "(no answer)" : c.answer) + (scores ? "  [" + scores + "]" : "") + (c.finish_reason ? " · " + c.finish_reason : ""));
      ul.appendChild(li);
    });
    return ul;
  }

  function showRow(r, tr) {
    board.querySelectorAll("tbody tr").forEach(t => t.classList.remove("selected"));
    tr.classList.add("selected");
    const box = document.getElementById("detail");
    box.replaceChildren(el("h2", {}, r.strategy + (r.budget === null ? "" : " at budget " + r.budget.toLocaleString("en"))));
    r.cells.forEach(cellIndex => {
      const cell = data.cells[cellIndex];
      box.appendChild(el("h3", {}, "seed " + cell.seed + " · " + cell.path));
      const settings = el("details");
      settings.appendChild(el("summary", {}, "settings and identity (config " + (cell.identity.config_hash || "?") + ")"));
      settings.appendChild(el("pre", { class: "settings" }, JSON.stringify({ identity: cell.identity, settings: cell.settings }, null, 1)));
      box.appendChild(settings);
      const t = el("table", { id: "problems" });
      const head = el("tr");
      ["problem", "question", "reference", "chosen answer", "right", "candidates (scores)"].forEach(h => head.appendChild(el("th", { class: "text" }, h)));
      t.appendChild(el("thead")).appendChild(head);
      const body = t.appendChild(el("tbody"));
      cell.problems.forEach(p => {
        const row = el("tr", { class: "problem" });
        row.appendChild(el("td", { class: "text" }, p.id));
        const q = el("td", { class: "text" });
        const more = el("details");
        more.appendChild(el("summary", {}, (p.question || "(question not recorded)").slice(0, 90)));
        more.appendChild(el("pre", {}, (p.question || "") + (p.text ? "\n\n--- chosen solution ---\n" + p.text : "")));
        q.appendChild(more);
        row.appendChild(q);
        row.appendChild(el("td", { class: "text" }, p.reference === null || p.reference === undefined ? "—" : p.reference));
        row.appendChild(el("td", { class: "text" }, p.error ? "error: " + p.error : p.answer === null ? "(none)" : p.answer));
        row.appendChild(el("td", { class: p.correct ? "right" : "wrong" }, p.error ? "—" : p.correct ? "yes" : "no"));
        const c = el("td", { class: "text" });
        c.appendChild(candidateList(p));
        row.appendChild(c);
        body.appendChild(row);
      });
      box.appendChild(t);
    });
  }

  document.getElementById("title").textContent = data.title;
  document.getElementById("meta").textContent = data.rows.length + " rows from " + data.cells.length + " cells; baseline " + (data.baseline || "none") + "; made " + data.made;
  const warn = document.getElementById("warnings");
  data.warnings.forEach(w => warn.appendChild(el("p", { class: "warning" }, "warning: " + w)));
  data.rows.forEach((r, i) => (r.index = i));
  renderHead();
  renderBody(data.rows);
})();
