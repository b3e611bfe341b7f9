// simdb dashboard: live updates by polling the JSON API (no reload).
// Everything that comes from the database is written with textContent.
"use strict";
(function () {
  const body = document.body;
  const page = body.dataset.page;
  const text = (el, value) => { if (el) { el.textContent = value; } };
  const num = (v, digits) => (v === null || v === undefined) ? "" : Number(v).toFixed(digits);
  const steps = (p) => (p.latest_step === null || p.latest_step === undefined) ? "0" : String(p.latest_step + 1);
  const age = (p) => (p.heartbeat_age_secs === null || p.heartbeat_age_secs === undefined) ? "" : num(p.heartbeat_age_secs, 1) + " s";

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
      cell(tr, num(item.progress.rows_per_sec, 0));
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
    for (const figure of document.querySelectorAll("figure[data-field]")) {
      const field = figure.dataset.field;
      const img = figure.querySelector("img");
      img.src = "/charts/" + encodeURIComponent(id) + "/" + encodeURIComponent(field) + "?v=" + p.cursor.step;
      const series = await json("/api/simulations/" + encodeURIComponent(id) + "/aggregates?field=" + encodeURIComponent(field));
      figure.dataset.points = String(series.all.length);
      text(figure.querySelector(".points"), series.all.length + " points");
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
