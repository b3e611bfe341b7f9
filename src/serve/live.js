// simdb dashboard: live updates by polling the JSON API (no reload).
// Everything that comes from the database is written with textContent.
"use strict";
(function () {
  const body = document.body;
  const page = body.dataset.page;
  const text = (el, value) => { if (el) { el.textContent = value; } };
  const num = (v, digits) => (v === null || v === undefined) ? "" : Number(v).toFixed(digits);
  const steps = (p) => (p.latest_step === null || p.latest_step === undefined) ? "0" : String(p.latest_step + 1);
  // As the server writes it (pages.rs, liveness): when the run ended, else
  // the heartbeat's age.
  const ended = (at) => "ended " + at.slice(0, 19).replace("T", " ") + " UTC";
  const age = (p) => p.ended_at ? ended(p.ended_at)
    : (p.heartbeat_age_secs === null || p.heartbeat_age_secs === undefined) ? "" : num(p.heartbeat_age_secs, 1) + " s";

  async function json(url) {
    const answer = await fetch(url, { cache: "no-store" });
    if (!answer.ok) { throw new Error(url + ": " + answer.status); }
    return answer.json();
  }

  function cell(row, value) {
    const td = document.createElement("td");
    td.textContent = value;
    row.appendChild(td);
    return td;
  }

  // rows/s of each listed simulation, from this poll and the previous one.
  const seen = new Map();
  function rate(id, progress) {
    const at = Date.parse(progress.cursor.at);
    const before = seen.get(id);
    seen.set(id, { rows: progress.rows, at: at });
    if (!before || !(at > before.at)) { return ""; }
    return num((progress.rows - before.rows) * 1000 / (at - before.at), 0);
  }

  async function pollList() {
    const list = await json("/api/simulations" + (body.dataset.query || ""));
    const tbody = document.getElementById("simulations");
    if (!tbody) { return; }
    // Runs ticked for comparison stay ticked across refreshes.
    const ticked = new Set(Array.from(tbody.querySelectorAll("input[name=sim]:checked")).map((i) => i.value));
    const rows = [];
    for (const item of list) {
      const sim = item.simulation;
      const tr = document.createElement("tr");
      tr.dataset.id = sim.id;
      const box = document.createElement("input");
      box.type = "checkbox";
      box.name = "sim";
      box.value = sim.id;
      box.setAttribute("form", "compare-form");
      box.checked = ticked.has(sim.id);
      const pick = document.createElement("td");
      pick.appendChild(box);
      tr.appendChild(pick);
      const link = document.createElement("a");
      link.href = "/simulations/" + encodeURIComponent(sim.id);
      link.textContent = sim.name || sim.id;
      const first = document.createElement("td");
      first.appendChild(link);
      tr.appendChild(first);
      cell(tr, sim.status).className = "status-" + sim.status;
      cell(tr, steps(item.progress));
      cell(tr, String(item.progress.rows));
      cell(tr, rate(sim.id, item.progress));
      cell(tr, age(item.progress));
      cell(tr, item.tags.join(", "));
      cell(tr, JSON.stringify(sim.parameters));
      rows.push(tr);
    }
    tbody.replaceChildren(...rows);
  }

  let cursor = null;
  async function pollSimulation() {
    const id = body.dataset.sim;
    let url = "/api/simulations/" + encodeURIComponent(id) + "/progress";
    if (cursor) {
      url += "?step=" + cursor.step + "&rows=" + cursor.rows + "&at=" + encodeURIComponent(cursor.at);
    }
    const p = await json(url);
    const moved = !cursor || p.cursor.step !== cursor.step;
    cursor = p.cursor;
    text(document.getElementById("status"), p.status);
    text(document.getElementById("steps"), steps(p));
    text(document.getElementById("rows"), String(p.rows));
    text(document.getElementById("rate"), num(p.rows_per_sec, 0));
    text(document.getElementById("heartbeat"), age(p));
    if (!moved) { return; }
    body.dataset.committedStep = String(p.cursor.step);
    const agents = document.getElementById("agents");
    if (agents) {
      const totals = await json("/api/simulations/" + encodeURIComponent(id) + "/agents");
      agents.replaceChildren(...totals.map((a) => {
        const tr = document.createElement("tr");
        const link = document.createElement("a");
        link.href = "/simulations/" + encodeURIComponent(id) + "/agents/" + a.agent;
        link.textContent = String(a.agent);
        cell(tr, "").appendChild(link);
        cell(tr, a.kind || "");
        cell(tr, String(a.rows));
        cell(tr, num(a.total_reward, 4));
        cell(tr, num(a.mean_reward, 4));
        return tr;
      }));
    }
    for (const figure of document.querySelectorAll("figure[data-field]")) {
      const field = figure.dataset.field;
      const img = figure.querySelector("img");
      // One request per chart: the image, and its point count in a header.
      const answer = await fetch(figure.dataset.src, { cache: "no-store" });
      if (!answer.ok) { throw new Error(field + ": " + answer.status); }
      const points = answer.headers.get("x-simdb-points") || "0";
      const old = img.src;
      img.src = URL.createObjectURL(await answer.blob());
      if (old.startsWith("blob:")) { URL.revokeObjectURL(old); }
      figure.dataset.points = points;
      text(figure.querySelector(".points"), points + " points");
      chartData.delete(figure);
    }
  }

  // Every chart: the step and values under the mouse (from the chart's
  // JSON twin, which says where the plot sits in the image), and a drag
  // across it zooms to those steps (?from=&to=, so the view can be shared).
  const chartData = new Map();
  async function dataOf(figure) {
    if (!chartData.has(figure)) {
      const src = figure.dataset.src;
      chartData.set(figure, json(src + (src.includes("?") ? "&" : "?") + "format=json"));
    }
    return chartData.get(figure);
  }
  function nearest(points, x) {
    let lo = 0, hi = points.length - 1;
    if (hi < 0) { return null; }
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (points[mid][0] < x) { lo = mid + 1; } else { hi = mid; }
    }
    if (lo > 0 && Math.abs(points[lo - 1][0] - x) < Math.abs(points[lo][0] - x)) { lo -= 1; }
    return points[lo];
  }
  const value = (v) => Number(v).toPrecision(4);
  function stepAt(data, img, event) {
    const f = data.frame;
    const px = event.offsetX * f.width / (img.clientWidth || f.width);
    if (px < f.left || px > f.right || f.right <= f.left) { return null; }
    return f.x0 + (px - f.left) / (f.right - f.left) * (f.x1 - f.x0);
  }
  function zoom(from, to) {
    const q = new URLSearchParams(location.search);
    q.set("from", String(from));
    q.set("to", String(to));
    location.search = q.toString();
  }
  for (const figure of document.querySelectorAll("figure[data-src]")) {
    const img = figure.querySelector("img");
    const out = figure.querySelector(".hover");
    let start = null;
    img.addEventListener("mousemove", async (event) => {
      const data = await dataOf(figure).catch(() => null);
      const at = data && stepAt(data, img, event);
      if (at === null || at === undefined) { return; }
      const parts = ["step " + Math.round(at)];
      for (const line of data.figure.lines) {
        const p = nearest(line.points, at);
        if (p) { parts.push(line.label + " " + value(p[1])); }
      }
      figure.dataset.hover = String(Math.round(at));
      text(out, parts.join(" · "));
    });
    img.addEventListener("mouseleave", () => { text(out, ""); });
    img.addEventListener("mousedown", async (event) => {
      event.preventDefault();
      const data = await dataOf(figure).catch(() => null);
      start = data && stepAt(data, img, event);
    });
    img.addEventListener("mouseup", async (event) => {
      const data = await dataOf(figure).catch(() => null);
      const end = data && stepAt(data, img, event);
      if (start !== null && start !== undefined && end !== null && end !== undefined && Math.abs(end - start) >= 1) {
        zoom(Math.floor(Math.min(start, end)), Math.ceil(Math.max(start, end)));
      }
      start = null;
    });
  }

  // The step inspector's slider moves the step box and shows that step.
  for (const slider of document.querySelectorAll("input[data-step-slider]")) {
    slider.addEventListener("change", () => {
      const box = document.getElementById(slider.dataset.stepSlider);
      if (box) { box.value = slider.value; box.form.submit(); }
    });
  }

  const poll = page === "list" ? pollList : page === "simulation" ? pollSimulation : null;
  if (!poll) { return; }
  const every = Number(body.dataset.interval || "1000");
  async function loop() {
    try { await poll(); body.dataset.live = "ok"; }
    catch (e) { body.dataset.live = "error"; }
    setTimeout(loop, every);
  }
  loop();
})();
