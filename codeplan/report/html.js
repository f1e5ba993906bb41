"use strict";
// The report page's behaviour (built into report.html by codeplan/report_html.py).
// Data arrives as JSON blocks; every string from it reaches the page through text() (a text node,
// never markup). A problem's block is parsed the first time the problem is opened.
(function () {
  const $ = (id) => document.getElementById(id);
  const readJSON = (id) => JSON.parse($(id).textContent);
  const SUMMARY = readJSON("summary-data");
  const INDEX = readJSON("index-data").problems; // [id, difficulty, title, per arm [c, n, verdicts] | null]
  const CLASSES = readJSON("token-classes");
  const ARMS = SUMMARY.arms;
  const byId = new Map(INDEX.map((row, i) => [row[0], i]));
  const parsed = new Map();
  const rawLower = [];
  let shown = INDEX.map((_, i) => i); // indices passing the filters, in order
  let current = null;

  function text(node, value) {
    node.textContent = value == null ? "" : String(value);
    return node;
  }

  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (key === "text") text(node, value);
      else if (key === "class") node.className = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value);
    }
    for (const child of children) {
      if (child == null) continue;
      node.append(typeof child === "string" ? text(document.createElement("span"), child) : child);
    }
    return node;
  }

  const problemLink = (id) => "#problem=" + encodeURIComponent(id);
  const verdictClass = (v) => "verdict v-" + String(v).replace(/[^a-z_]/g, "");
  const badge = (v) => el("span", { class: verdictClass(v), text: String(v).replace(/_/g, " ") });

  function problem(i) {
    if (!parsed.has(i)) parsed.set(i, readJSON("p" + i));
    return parsed.get(i);
  }

  // ---- summary -----------------------------------------------------------------------------------
  function renderSummary() {
    const view = $("summary-view");
    view.append(el("p", { class: "lede" },
      `${INDEX.length} problems, ${ARMS.length} arm${ARMS.length === 1 ? "" : "s"}: ` + ARMS.join(", ") +
      `. Reference: ${SUMMARY.reference}. Open "Problems" to read plans, programs and verdicts problem by problem.`));
    for (const note of SUMMARY.notes) view.append(el("p", { class: "note", text: note }));
    for (const table of SUMMARY.tables) {
      const block = el("section", { class: "table-block", "data-table": table.id }, el("h2", { text: table.title }));
      if (table.note) block.append(el("p", { class: "note", text: table.note }));
      const head = el("tr", null, ...table.header.map((h) => el("th", { text: h })));
      const body = table.rows.map((row) => el("tr", null, ...row.map((cell, j) => {
        const td = el(j === 0 ? "th" : "td", { class: cell.c || "" }, el("span", { class: "value", text: cell.t }));
        if (cell.s) td.append(el("span", { class: "interval", text: " " + cell.s }));
        return td;
      })));
      block.append(el("div", { class: "scroll" }, el("table", null, el("thead", null, head), el("tbody", null, ...body))));
      view.append(block);
    }
    if (SUMMARY.plots.length) {
      const plots = el("section", { class: "plots" }, el("h2", { text: "Plots" }));
      for (const plot of SUMMARY.plots) {
        plots.append(el("figure", null, el("img", { src: "data:image/png;base64," + plot.png, alt: plot.title }),
          el("figcaption", { text: plot.title })));
      }
      view.append(plots);
    }
  }

  // ---- finding problems --------------------------------------------------------------------------
  function options(select, entries) {
    for (const [value, label] of entries) select.append(el("option", { value, text: label }));
  }

  function setUpFilters() {
    const difficulties = [...new Set(INDEX.map((row) => row[1]))];
    options($("f-difficulty"), [["", "any"], ...difficulties.map((d) => [d, d])]);
    const seen = new Set(INDEX.flatMap((row) => row[3].flatMap((m) => (m ? m[2] : []))));
    const verdicts = [...SUMMARY.verdicts.filter((v) => seen.has(v)), ...[...seen].filter((v) => !SUMMARY.verdicts.includes(v))];
    options($("f-verdict"), [["", "any"], ...verdicts.map((v) => [v, v.replace(/_/g, " ")])]);
    const arms = ARMS.map((label, i) => [String(i), label]);
    options($("f-verdict-arm"), [["", "any arm"], ...arms]);
    options($("f-solved"), [["", "-"], ...arms]);
    options($("f-unsolved"), [["", "-"], ...arms]);
    for (const id of ["f-difficulty", "f-verdict", "f-verdict-arm", "f-solved", "f-unsolved"]) {
      $(id).addEventListener("change", applyFilters);
    }
    let timer = null;
    $("search").addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(applyFilters, 150); });
    $("f-clear").addEventListener("click", () => {
      for (const id of ["search", "f-difficulty", "f-verdict", "f-verdict-arm", "f-solved", "f-unsolved"]) $(id).value = "";
      applyFilters();
    });
  }

  // A query as it is written inside the JSON blocks (same escapes as embed_json), lowercased.
  function jsonForm(query) {
    return JSON.stringify(query).slice(1, -1).replace(/</g, "\\u003c").replace(/>/g, "\\u003e").replace(/&/g, "\\u0026");
  }

  function matches(i, query, encoded) {
    const row = INDEX[i];
    if (row[0].toLowerCase().includes(query) || row[2].toLowerCase().includes(query)) return true;
    if (query.length < 2) return false;
    if (rawLower[i] === undefined) rawLower[i] = $("p" + i).textContent.toLowerCase();
    return rawLower[i].includes(encoded);
  }

  function applyFilters() {
    const query = $("search").value.trim().toLowerCase();
    const encoded = jsonForm(query);
    const difficulty = $("f-difficulty").value;
    const verdict = $("f-verdict").value;
    const verdictArm = $("f-verdict-arm").value;
    const solved = $("f-solved").value;
    const unsolved = $("f-unsolved").value;
    shown = [];
    INDEX.forEach((row, i) => {
      const marks = row[3];
      let ok = !difficulty || row[1] === difficulty;
      if (ok && verdict) {
        const arms = verdictArm ? [marks[+verdictArm]] : marks;
        ok = arms.some((m) => m && m[2].includes(verdict));
      }
      if (ok && solved) ok = !!marks[+solved] && marks[+solved][0] > 0;
      if (ok && unsolved) ok = !marks[+unsolved] || marks[+unsolved][0] === 0;
      if (ok && query) ok = matches(i, query, encoded);
      if (ok) shown.push(i);
      listItems[i].hidden = !ok;
    });
    text($("count"), `${shown.length} of ${INDEX.length} problems`);
    if (current !== null) renderNav();
  }

  let listItems = [];
  function renderList() {
    const list = $("list");
    listItems = INDEX.map((row, i) => {
      const chips = row[3].map((m, a) => {
        if (!m) return el("span", { class: "chip missing", title: ARMS[a] + ": no programs", text: "-" });
        // (chips stand in arm order; the legend under the count names them)
        const kind = m[0] === 0 ? "none" : m[0] === m[1] ? "all" : "some";
        return el("span", { class: "chip " + kind, title: `${ARMS[a]}: ${m[0]} of ${m[1]} programs pass`, text: `${m[0]}/${m[1]}` });
      });
      return el("li", null, el("a", { href: problemLink(row[0]), "data-index": String(i) },
        el("span", { class: "pid", text: row[0] }), el("span", { class: "difficulty", text: row[1] }),
        el("span", { class: "chips" }, ...chips), el("span", { class: "title", text: row[2] })));
    });
    list.append(...listItems);
    $("legend").append("Chips: programs passing / sampled, per arm: ",
      ...ARMS.map((label, a) => el("span", null, el("span", { class: "chip missing", text: String(a + 1) }), label + " ")));
    text($("count"), `${INDEX.length} of ${INDEX.length} problems`);
  }

  // ---- one problem -------------------------------------------------------------------------------
  function code(source, runs) {
    const pre = el("pre", { class: "hl code" });
    if (!runs) return text(pre, source);
    let at = 0;
    for (let r = 0; r < runs.length; r += 2) {
      const piece = source.slice(at, at + runs[r + 1]);
      at += runs[r + 1];
      pre.append(runs[r] ? el("span", { class: CLASSES[runs[r]], text: piece }) : document.createTextNode(piece));
    }
    if (at < source.length) pre.append(document.createTextNode(source.slice(at)));
    return pre;
  }

  function block(title, value, cls) {
    return el("div", { class: "snippet " + (cls || "") }, el("div", { class: "label", text: title }),
      el("pre", { text: value === "" ? "(empty)" : value }));
  }

  function pct(x) { return x == null ? "n/a" : (100 * x).toFixed(0) + "%"; }

  function renderPlans(arm) {
    const sel = arm.selection;
    const wrap = el("div", { class: "plans" }, el("h4", { text: "Plans" }),
      el("p", { class: "note", text: `Chosen: plan ${sel.chosen} by rule "${sel.rule}": ${sel.reason}` }));
    const rows = [];
    for (const plan of arm.plans) {
      const s = plan.score || {};
      const chosen = plan.index === sel.chosen;
      const chips = (plan.verdicts || []).map((v) => el("span", { class: "dot " + verdictClass(v), title: v }));
      const row = el("tr", { class: chosen ? "chosen" : "" },
        el("td", { text: (chosen ? "\u2605 " : "") + plan.index }),
        el("td", { text: s.programs == null ? "n/a" : `${s.programs_passed}/${s.programs} (${pct(s.pass_share)})` }),
        el("td", { text: s.tests_total == null ? "n/a" : `${s.tests_passed}/${s.tests_total}` }),
        el("td", { text: s.logprob == null ? "n/a" : Number(s.logprob).toFixed(2) }),
        el("td", null, ...chips));
      rows.push(row);
      if (plan.text != null) {
        const details = el("details", chosen ? { open: "" } : null,
          el("summary", { text: chosen ? "chosen plan" : "plan text" }), el("pre", { class: "plan", text: plan.text }));
        rows.push(el("tr", { class: "plan-text" + (chosen ? " chosen" : "") }, el("td", { colspan: "5" }, details)));
      }
    }
    wrap.append(el("table", { class: "plan-table" }, el("thead", null, el("tr", null,
      ...["plan", "programs passing public tests", "public tests passed", "log-prob", "programs' verdicts"].map((h) => el("th", { text: h })))),
    el("tbody", null, ...rows)));
    return wrap;
  }

  function renderSample(sample, index, open) {
    const tests = sample.tt == null ? "" : `${sample.tp}/${sample.tt} hidden tests`;
    const head = el("summary", null, el("span", { class: "sample-name", text: `program ${index}` }), badge(sample.verdict),
      el("span", { class: "tests", text: tests }),
      sample.plan != null ? el("span", { class: "from-plan", text: `from plan ${sample.plan}` }) : null,
      sample.detail ? el("span", { class: "detail", text: sample.detail }) : null);
    const body = el("div", { class: "sample-body" });
    body.append(sample.code != null ? code(sample.code, sample.hl) : el("p", { class: "note", text: "program text not found (no samples file beside results.json)" }));
    const f = sample.failure;
    if (f) {
      const grid = el("div", { class: "failure" }, el("div", { class: "label wide", text: `first failing hidden test (test ${f.test})` }),
        block("input", f.input));
      if (f.expected != null) grid.append(block("expected", f.expected, "expected"));
      grid.append(block("output", f.output, "actual"));
      if (f.stderr) grid.append(block("stderr / error", f.stderr, "stderr wide"));
      body.append(grid);
    }
    return el("details", open ? { class: "sample", open: "" } : { class: "sample" }, head, body);
  }

  function renderArm(label, arm) {
    const counts = {};
    for (const s of arm.samples) counts[s.verdict] = (counts[s.verdict] || 0) + 1;
    const kind = arm.c === 0 ? "none" : arm.c === arm.n ? "all" : "some";
    const section = el("section", { class: "arm" }, el("h3", null, el("span", { text: label }),
      el("span", { class: "chip " + kind, text: `${arm.c}/${arm.n} pass` }),
      el("span", { class: "counts" }, ...Object.entries(counts).map(([v, n]) => el("span", null, badge(v), " \u00d7" + n)))));
    if (arm.selection && arm.plans) section.append(renderPlans(arm));
    const programs = el("div", { class: "programs" }, el("h4", { text: "Programs" }));
    const firstFailing = arm.samples.findIndex((s) => s.verdict !== "pass");
    arm.samples.forEach((s, i) => programs.append(renderSample(s, i, i === 0 || i === firstFailing)));
    section.append(programs);
    return section;
  }

  function renderNav() {
    const nav = $("problem-nav");
    if (!nav) return;
    const at = shown.indexOf(current);
    nav.replaceChildren(
      el("button", { type: "button", id: "prev", onclick: () => step(-1) }, "\u2190 previous"),
      el("span", { class: "position", text: at >= 0 ? `${at + 1} of ${shown.length} listed` : "not in the filtered list" }),
      el("button", { type: "button", id: "next", onclick: () => step(1) }, "next \u2192"),
      el("a", { class: "permalink", href: problemLink(INDEX[current][0]), text: "link to this problem" }));
  }

  function step(delta) {
    if (!shown.length) return;
    const at = shown.indexOf(current);
    const next = at < 0 ? shown[0] : shown[Math.min(shown.length - 1, Math.max(0, at + delta))];
    location.hash = problemLink(INDEX[next][0]);
  }

  function openProblem(i) {
    current = i;
    const data = problem(i);
    const view = $("problem");
    const meta = [data.difficulty, data.kind, data.source, data.entry_point ? "entry point " + data.entry_point : null].filter(Boolean);
    view.replaceChildren(el("nav", { id: "problem-nav" }),
      el("h2", null, el("span", { class: "pid", text: data.id }), el("span", { class: "meta", text: meta.join(" \u00b7 ") })));
    renderNav();
    if (data.statement != null) {
      view.append(el("h3", { text: "Statement" }), el("pre", { class: "statement", text: data.statement }));
      if (data.starter_code) view.append(el("h4", { text: "Starter code" }), code(data.starter_code, null));
      const tests = el("section", { class: "public" }, el("h3", { text: `Public tests (${data.public_total}; ${data.hidden_total} hidden tests)` }));
      data.public.forEach((pair) => tests.append(el("div", { class: "failure" }, block("input", pair[0]), block("expected output", pair[1], "expected"))));
      if (!data.public_total) tests.append(el("p", { class: "note", text: "none" }));
      if (data.public_total > data.public.length) tests.append(el("p", { class: "note", text: `first ${data.public.length} shown` }));
      view.append(tests);
    } else {
      view.append(el("p", { class: "note", text: "Statement not available (the data the run used could not be read)." }));
    }
    data.arms.forEach((arm, a) => {
      view.append(arm ? renderArm(ARMS[a], arm) : el("section", { class: "arm" }, el("h3", { text: ARMS[a] }),
        el("p", { class: "note", text: "no programs for this problem in this arm" })));
    });
    for (const item of document.querySelectorAll("#list a.active")) item.classList.remove("active");
    const link = listItems[i].querySelector("a");
    link.classList.add("active");
    link.scrollIntoView({ block: "nearest" });
    view.scrollTop = 0;
    window.scrollTo(0, 0);
  }

  // ---- routing: #summary, #problems, #problem=ID ----------------------------------------------------
  function show(which) {
    $("summary-view").hidden = which !== "summary";
    $("problems-view").hidden = which !== "problems";
    $("tab-summary").classList.toggle("active", which === "summary");
    $("tab-problems").classList.toggle("active", which === "problems");
  }

  function route() {
    const hash = location.hash.slice(1);
    if (hash.startsWith("problem=")) {
      const id = decodeURIComponent(hash.slice("problem=".length));
      show("problems");
      if (byId.has(id)) openProblem(byId.get(id));
      else $("problem").replaceChildren(el("p", { class: "note", text: `No problem with id "${id}" in this report.` }));
    } else {
      show(hash === "problems" ? "problems" : "summary");
    }
  }

  document.addEventListener("keydown", (event) => {
    if (event.target.closest("input, select, textarea") || $("problems-view").hidden || current === null) return;
    if (event.key === "j" || event.key === "ArrowRight") step(1);
    if (event.key === "k" || event.key === "ArrowLeft") step(-1);
  });

  text($("title"), SUMMARY.title);
  document.title = SUMMARY.title + " \u2013 codeplan report";
  text($("tab-problems"), `Problems (${INDEX.length})`);
  renderSummary();
  renderList();
  setUpFilters();
  window.addEventListener("hashchange", route);
  route();
  window.codeplanReportReady = performance.now();
})();
