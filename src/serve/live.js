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
    const rows = [];
    for (const item of list) {
      const sim = item.simulation;
      const tr = document.createElement("tr");
      tr.dataset.id = sim.id;
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
        cell(tr, String(a.agent));
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
      const answer = await fetch("/charts/" + encodeURIComponent(id) + "/" + encodeURIComponent(field), { cache: "no-store" });
      if (!answer.ok) { throw new Error(field + ": " + answer.status); }
      const points = answer.headers.get("x-simdb-points") || "0";
      const old = img.src;
      img.src = URL.createObjectURL(await answer.blob());
      if (old.startsWith("blob:")) { URL.revokeObjectURL(old); }
      figure.dataset.points = points;
      text(figure.querySelector(".points"), points + " points");
    }
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
