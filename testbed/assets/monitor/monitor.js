// The testbed monitor page: draws the snapshots the server pushes over server-sent events.
// No libraries and no network beyond this page's own server: canvas and SVG drawn here.
"use strict";

const $ = (id) => document.getElementById(id);
const SVGNS = "http://www.w3.org/2000/svg";
let live = true;          // false while the operator replays a recorded session
let latest = null;        // the last live snapshot
let playTimer = null;
window.monitorUpdates = [];

function el(tag, attrs, ...kids) {
  const e = tag.startsWith("svg:") ? document.createElementNS(SVGNS, tag.slice(4)) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v !== null && v !== undefined) e.setAttribute(k, v);
  }
  for (const k of kids) {
    if (k === null || k === undefined) continue;
    e.append(k instanceof Node ? k : document.createTextNode(String(k)));
  }
  return e;
}

const fmt = (x, d = 1) => (x === null || x === undefined) ? "-" : Number(x).toFixed(d);
const pct = (x) => (x === null || x === undefined) ? "-" : (100 * x).toFixed(0) + "%";
function dur(s) {
  if (s === null || s === undefined) return "-";
  s = Math.round(s);
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
  return (h ? h + "h" : "") + String(m).padStart(h ? 2 : 1, "0") + "m" + String(r).padStart(2, "0") + "s";
}
const clock = (t) => t ? new Date(t * 1000).toLocaleTimeString() : "-";

// a two-column table: cells whose text changed are updated in place; rows are added or removed only
// when their number changes
function kv(table, rows) {
  while (table.rows.length > rows.length) table.deleteRow(-1);
  rows.forEach(([k, v], i) => {
    const tr = table.rows[i] || table.appendChild(el("tr", {}, el("td"), el("td")));
    setText(tr.cells[0], k);
    setText(tr.cells[1], v);
  });
}

function setText(node, text) {
  text = String(text);
  if (node.textContent !== text) node.textContent = text;
}

function trialRows(t) {
  if (!t) return [["", "none"]];
  return [["trial", t.trial_id], ["command", t.label], ["attack", t.attack_kind === "none" ? "none" : t.attack],
          ["eps", t.attack_kind === "none" ? "-" : t.eps], ["delay", fmt(t.delay_ms, 0) + " ms"],
          ["placement", t.placement || "default"]];
}

// ---- header, progress, trials ------------------------------------------------------------
function drawHeader(s) {
  setText($("session-id"), s.id);
  setText($("session-sub"), `plan ${s.plan || "?"} on rig ${s.rig || "?"}`);
  const st = $("state");
  if (st.className !== "state " + s.state) st.className = "state " + s.state;
  setText(st, s.state_text);
  drawTitle(s);
}

// the tab's title shows the progress, but a title change costs the browser far more than drawing
// the page does: it changes with the state at once, and with the progress at most every TITLE_MS
const TITLE_MS = 10000;
let titleAt = -Infinity, titleState = null;
function drawTitle(s) {
  const title = `${s.done}/${s.total} ${s.id} - testbed monitor`;
  const now = performance.now();
  if (document.title === title || (s.state === titleState && s.running && now - titleAt < TITLE_MS)) return;
  document.title = title;
  titleAt = now;
  titleState = s.state;
}

function drawProgress(s) {
  $("progress-bar").style.width = (s.total ? 100 * s.done / s.total : 0) + "%";
  setText($("trial-counter"), `${s.done} / ${s.total}`);
  setText($("eta"), s.running ? `ETA ${dur(s.eta_s)}` + (s.per_trial_s ? ` (${fmt(s.per_trial_s, 2)} s per trial)` : "") : "");
  setText($("counters"), `failed ${s.failed} · retried ${s.retried} · xruns ${s.xruns} · trials with clipping ${s.clipped_trials}`);
  setText($("last-error"), s.last_error ? "last error: " + s.last_error : "");
  setText($("now-title"), s.state === "replay" ? "Replayed trial" :
    (s.state === "paused" ? "Next trial (paused)" : (s.running ? "Now playing" : "Now playing (not running)")));
  kv($("now"), s.now ? trialRows(s.now) : [["", s.running ? "between trials" : "nothing: the session is not running"]]);
  const last = s.last;
  const rows = trialRows(last);
  if (last) {
    const dut = (s.errors && s.errors.dut_mic) || null;
    const preds = (last.predictions || []).filter((p) => !dut || p.mic === dut);
    rows.push(["predicted" + (dut ? ` (${dut})` : ""), preds.map((p) => `${p.model}=${p.prediction}`).join(", ") || "-"]);
    rows.push(["attempts", last.attempts + (last.failed ? " (failed)" : "")]);
    rows.push(["committed", clock(last.finished_at)]);
  }
  kv($("last"), rows);
}

// ---- level meters (canvas) ----------------------------------------------------------------
const DB_MIN = -70;
function drawMeters(s) {
  const c = $("meters"), g = c.getContext("2d");
  const mics = s.mics || [];
  const height = Math.max(60, 40 + 46 * mics.length);
  if (c.height !== height) c.height = height;     // resizing a canvas reallocates it: only when needed
  g.clearRect(0, 0, c.width, c.height);
  const x0 = 96, w = c.width - x0 - 200;
  const xOf = (db) => x0 + w * Math.min(1, Math.max(0, (db - DB_MIN) / -DB_MIN));
  g.font = "11px system-ui, sans-serif";
  g.fillStyle = "#6a7180";
  for (let db = DB_MIN; db <= 0; db += 10) {
    g.fillRect(xOf(db), 14, 1, c.height - 24);
    g.fillText(String(db), xOf(db) - 8, 10);
  }
  mics.forEach((m, i) => {
    const y = 22 + 46 * i;
    g.fillStyle = "#1d2330";
    g.fillText(m.name + (m.dut ? " (DUT)" : ""), 4, y + 12);
    g.fillStyle = "#eceef1";
    g.fillRect(x0, y, w, 18);
    if (m.rms_dbfs !== null && m.rms_dbfs !== undefined) {
      const grad = g.createLinearGradient(x0, 0, x0 + w, 0);
      grad.addColorStop(0, "#2f9e44"); grad.addColorStop(0.8, "#f59f00"); grad.addColorStop(1, "#e03131");
      g.fillStyle = grad;
      g.fillRect(x0, y + 3, xOf(m.rms_dbfs) - x0, 12);
    }
    if (m.peak_dbfs !== null && m.peak_dbfs !== undefined) {
      g.fillStyle = "#1d2330";
      g.fillRect(xOf(m.peak_dbfs) - 1, y, 3, 18);
    }
    const clip = (m.clipped || 0) > 0;
    g.fillStyle = clip ? "#e03131" : "#cfd3da";
    g.fillRect(x0 + w + 6, y + 2, 14, 14);
    g.fillStyle = "#1d2330";
    g.fillText(`pk ${fmt(m.peak_dbfs)} rms ${fmt(m.rms_dbfs)}`, x0 + w + 24, y + 8);
    g.fillText(`clip ${m.clipped_trials} trials / ${m.clipped_samples} smp`, x0 + w + 24, y + 20);
    const spl = m.spl;
    g.fillText(spl ? `SPL cmd ${fmt(spl.command_db_spl)} (${fmt(spl.command_dba_spl)} dBA) · pert ${fmt(spl.perturbation_db_spl)}`
                     + ` (${fmt(spl.perturbation_dba_spl)} dBA) dB SPL (${s.spl_source || "calibration"})`
                     : `SPL: ${s.spl_absent || "not reported"}`, x0, y + 32);
  });
  g.fillStyle = "#6a7180";
  g.fillText(`bar: RMS · mark: peak · square: clipping · xruns in the stream: ${s.xruns}`, 4, c.height - 2);
  c.dataset.drawn = String(mics.filter((m) => m.rms_dbfs !== null && m.rms_dbfs !== undefined).length);
}

function drawSpeakers(s) {
  const tbl = $("speakers");
  const names = (s.speakers || []).map((p) => p.name).join("\n");
  if (tbl.dataset.names !== names || !tbl.rows.length) {     // the speakers changed: rebuild the rows
    const head = el("tr", {}, el("th", {}, "speaker"), el("th", {}, "role"), el("th", {}, "limiter (last)"),
                    el("th", {}, "limited trials"), el("th", {}, "peak / rms dBFS"), el("th", {}, "cap dBFS"));
    tbl.replaceChildren(head, ...(s.speakers || []).map(() =>
      el("tr", {}, el("td"), el("td"), el("td", {}, el("span", { class: "led" }), el("span")), el("td"), el("td"), el("td"))));
    tbl.dataset.names = names;
  }
  (s.speakers || []).forEach((p, i) => {       // then only the figures, in place
    const c = tbl.rows[i + 1].cells;
    setText(c[0], p.name);
    setText(c[1], p.role || "-");
    const led = c[2].firstChild, on = p.limited ? "led on" : "led";
    if (led.className !== on) led.className = on;
    setText(c[2].lastChild, p.limited === null || p.limited === undefined ? "-" : (p.limited ? "engaged" : "idle"));
    setText(c[3], `${p.limited_trials} / ${s.done}`);
    setText(c[4], `${fmt(p.peak_dbfs)} / ${fmt(p.rms_dbfs)}`);
    setText(c[5], fmt(p.max_dbfs, 0));
  });
}

// ---- error tables ----------------------------------------------------------------------------
function rateCell(c) {
  const td = el("td");
  fillRate(td, c);
  return td;
}

// one error-rate cell: a bar with its interval, and the figures (updated in place)
function fillRate(td, c) {
  if (!c || !c.n) {
    if (td.dataset.n !== undefined) { delete td.dataset.n; delete td.dataset.wrong; td.replaceChildren(); }
    setText(td, "-");
    return;
  }
  if (!td.firstChild || td.firstChild.nodeType !== 1) {
    td.replaceChildren(el("span", { class: "rate" }, el("span", { class: "ci" }), el("span", { class: "pt" })),
                       document.createTextNode(""));
  }
  const bar = td.firstChild;
  const ci = `left:${90 * c.lo}px;width:${Math.max(1, 90 * (c.hi - c.lo))}px`, pt = `left:${Math.min(87, 90 * c.rate)}px`;
  if (bar.firstChild.getAttribute("style") !== ci) bar.firstChild.setAttribute("style", ci);
  if (bar.lastChild.getAttribute("style") !== pt) bar.lastChild.setAttribute("style", pt);
  const text = `${pct(c.rate)} [${pct(c.lo)}, ${pct(c.hi)}] n=${c.n}`;
  if (td.lastChild.data !== text) td.lastChild.data = text;
  if (td.dataset.n !== String(c.n)) td.dataset.n = c.n;
  if (td.dataset.wrong !== String(c.wrong)) td.dataset.wrong = c.wrong;
}

// the tables' shape (models, dimensions, their values): rebuilt only when it changes
const errorShape = (e) => JSON.stringify([e.models, e.dut_mic, e.tables.map((t) => [t.key, t.rows.map((r) => r.value)])]);

function drawErrors(s) {
  const e = s.errors || { models: [], tables: [] };
  const box = $("error-table");
  if (!e.models.length) {
    box.dataset.shape = "";
    box.replaceChildren(el("p", { class: "muted" }, "no evaluations yet"));
    return;
  }
  const shape = errorShape(e);
  if (box.dataset.shape !== shape) {
    const parts = [];
    const overall = el("table", { class: "grid", id: "error-overall" },
      el("tr", {}, el("th", {}, `overall (DUT mic ${e.dut_mic || "?"})`), ...e.models.map((m) => el("th", {}, m))),
      el("tr", {}, el("td", {}, "all trials"), ...e.models.map((m) => rateCell(e.overall[m]))));
    parts.push(el("div", { class: "dim" }, overall));
    for (const t of e.tables) {
      if (t.rows.length < 1) continue;
      const tbl = el("table", { class: "grid", "data-dim": t.key },
        el("tr", {}, el("th", {}, t.title), ...e.models.map((m) => el("th", {}, m))),
        ...t.rows.map((r) => el("tr", {}, el("td", {}, r.value), ...e.models.map((m) => rateCell(r.cells[m])))));
      parts.push(el("div", { class: "dim" }, el("h3", {}, "by " + t.title), tbl));
    }
    box.replaceChildren(...parts);
    box.dataset.shape = shape;
    return;
  }
  const overall = $("error-overall").rows[1].cells;
  e.models.forEach((m, j) => fillRate(overall[j + 1], e.overall[m]));
  for (const t of e.tables) {
    const tbl = box.querySelector(`table[data-dim="${t.key}"]`);
    if (!tbl) continue;
    t.rows.forEach((r, i) => e.models.forEach((m, j) => fillRate(tbl.rows[i + 1].cells[j + 1], r.cells[m])));
  }
}

// ---- targeted success (issue 24): the target reached, per pair and model ---------------------
function drawTargets(s) {
  const t = s.targeted || { models: [], rows: [] };
  $("targeted-card").hidden = !t.rows.length;
  if (!t.rows.length) { $("target-table").replaceChildren(); return; }
  const cellOf = (c) => {
    const td = rateCell(c && { ...c, wrong: c.hits });
    if (c && c.n) { td.removeAttribute("data-wrong"); td.setAttribute("data-hits", c.hits); }
    return td;
  };
  $("target-table").replaceChildren(el("table", { class: "grid", id: "target-success" },
    el("tr", {}, el("th", {}, `attack, source -> target (DUT mic ${t.dut_mic || "?"})`), ...t.models.map((m) => el("th", {}, m))),
    ...t.rows.map((r) => el("tr", { "data-pair": `${r.label}->${r.target}` }, el("td", {}, r.value),
                            ...t.models.map((m) => cellOf(r.cells[m]))))));
}

// ---- last capture: waveform and spectrogram ---------------------------------------------------
function colour(v) {   // 0..1 -> a dark-blue..yellow ramp
  const r = Math.round(255 * Math.min(1, Math.max(0, 1.6 * v - 0.3)));
  const g = Math.round(255 * Math.min(1, Math.max(0, 1.2 * v)));
  const b = Math.round(255 * Math.min(1, Math.max(0, 0.6 - 0.6 * v + 0.3 * (v < 0.3 ? v : 0))));
  return [r, g, 50 + Math.round(0.8 * b)];
}

// the waveform, scaled up when it is quiet (the gain is printed on it); returns the gain
function drawWave(c, wave) {
  const g = c.getContext("2d");
  g.fillStyle = "#fafbfc"; g.fillRect(0, 0, c.width, c.height);
  g.fillStyle = "#d5d8de"; g.fillRect(0, c.height / 2, c.width, 1);
  const n = wave.min.length, h = c.height / 2;
  const peak = Math.max(1e-6, ...wave.max.map(Math.abs), ...wave.min.map(Math.abs));
  const gain = peak < 0.45 ? Math.min(1000, 0.9 / peak) : 1;
  g.fillStyle = "#3b7ddd";
  for (let i = 0; i < n; i++) {
    const x = (i / n) * c.width, y1 = h - gain * wave.max[i] * h, y2 = h - gain * wave.min[i] * h;
    g.fillRect(x, y1, Math.max(1, c.width / n), Math.max(1, y2 - y1));
  }
  g.fillStyle = "#6a7180";
  g.font = "10px system-ui, sans-serif";
  g.fillText(gain > 1 ? `x${gain.toFixed(0)} (${(20 * Math.log10(gain)).toFixed(0)} dB)` : "full scale", 4, 11);
}

// the ramp sampled once: 256 RGB triples, looked up per pixel (no allocation per pixel)
const RAMP = new Uint8Array(3 * 256);
for (let i = 0; i < 256; i++) RAMP.set(colour(i / 255), 3 * i);

function drawSpec(c, spec) {
  const g = c.getContext("2d");
  const rows = spec.db.length, cols = rows ? spec.db[0].length : 0;
  if (!rows || !cols) { g.clearRect(0, 0, c.width, c.height); return; }
  const img = g.createImageData(cols, rows);
  const hi = spec.hi_db, lo = Math.max(spec.lo_db, hi - 90);
  for (let f = 0; f < rows; f++) {
    for (let t = 0; t < cols; t++) {
      const v = (spec.db[f][t] - lo) / Math.max(1, hi - lo);
      const j = 3 * Math.round(255 * Math.min(1, Math.max(0, v)));
      const k = 4 * ((rows - 1 - f) * cols + t);
      img.data[k] = RAMP[j]; img.data[k + 1] = RAMP[j + 1]; img.data[k + 2] = RAMP[j + 2]; img.data[k + 3] = 255;
    }
  }
  const off = document.createElement("canvas");
  off.width = cols; off.height = rows;
  off.getContext("2d").putImageData(img, 0, 0);
  g.imageSmoothingEnabled = false;
  g.drawImage(off, 0, 0, c.width, c.height);
}

let drawnPictures = null;
function drawCaptures(s) {
  const p = s.pictures;
  setText($("capture-sub"), p ? `(trial ${p.trial_id}; waveform, then spectrogram 0-${(p.sample_rate / 2000).toFixed(0)} kHz)` : "");
  const box = $("captures");
  if (!p) { box.dataset.mics = ""; box.replaceChildren(el("p", { class: "muted" }, "no capture yet")); drawnPictures = null; return; }
  const key = s.id + ":" + p.trial_id;
  if (key === drawnPictures) return;
  drawnPictures = key;
  const entries = Object.entries(p.mics);
  // the same mics, each with pictures, as last time: draw on the canvases already there
  const mics = entries.map(([mic, pic]) => mic + (pic.problem ? "!" : "")).join("\n");
  if (box.dataset.mics !== mics) {
    box.replaceChildren(...entries.map(([mic, pic]) => pic.problem ? el("figure", {}, el("figcaption")) :
      el("figure", {}, el("figcaption"), el("canvas", { width: 300, height: 80, class: "wave", "data-mic": mic }), el("br"),
         el("canvas", { width: 300, height: 110, class: "spec", "data-mic": mic }))));
    box.dataset.mics = mics;
  }
  entries.forEach(([mic, pic], i) => {
    const fig = box.children[i];
    if (pic.problem) { setText(fig.firstChild, `${mic}: ${pic.problem}`); return; }
    setText(fig.firstChild, `${mic} (${fmt(pic.spec.duration_s, 2)} s)`);
    drawWave(fig.querySelector("canvas.wave"), pic.wave);
    drawSpec(fig.querySelector("canvas.spec"), pic.spec);
  });
}

// ---- rig map (SVG) --------------------------------------------------------------------------------
function drawRig(s) {
  const r = s.rig_map, svg = $("rigmap");
  if (!r || !r.room_m[0]) { svg.replaceChildren(); $("rig-sub").textContent = "(no rig stored)"; return; }
  $("rig-sub").textContent = `(top view, ${r.room_m[0]} x ${r.room_m[1]} m; placement ${r.current || "default"})`;
  const W = 480, H = 400, pad = 24;
  const k = Math.min((W - 2 * pad) / r.room_m[0], (H - 2 * pad) / r.room_m[1]);
  const X = (x) => pad + k * x, Y = (y) => H - pad - k * y;
  const kids = [el("svg:rect", { x: X(0), y: Y(r.room_m[1]), width: k * r.room_m[0], height: k * r.room_m[1],
                                 fill: "#fafbfc", stroke: "#39404d" })];
  for (const [name, things] of Object.entries(r.placements || {})) {
    for (const xy of Object.values(things)) {
      if (!xy) continue;
      const on = name === r.current;
      kids.push(el("svg:circle", { cx: X(xy[0]), cy: Y(xy[1]), r: 9, fill: "none", stroke: on ? "#e8590c" : "#adb3bd",
                                   "stroke-dasharray": on ? null : "3 2" }));
      kids.push(el("svg:text", { x: X(xy[0]) + 10, y: Y(xy[1]) + 14, "font-size": 10, fill: on ? "#e8590c" : "#8a909c" }, name));
    }
  }
  for (const m of r.mics) {
    if (!m.xy) continue;
    kids.push(el("svg:circle", { cx: X(m.xy[0]), cy: Y(m.xy[1]), r: 4, fill: "#2f9e44" }));
    kids.push(el("svg:text", { x: X(m.xy[0]) + 6, y: Y(m.xy[1]) - 4, "font-size": 10, fill: "#1d2330" }, m.name));
  }
  for (const p of r.speakers) {
    if (!p.xy) continue;
    const fill = p.role === "adversary" ? "#e03131" : "#3b7ddd";
    kids.push(el("svg:rect", { x: X(p.xy[0]) - 5, y: Y(p.xy[1]) - 5, width: 10, height: 10, fill }));
    kids.push(el("svg:text", { x: X(p.xy[0]) + 7, y: Y(p.xy[1]) + 4, "font-size": 11, fill }, p.name));
  }
  if (r.adv_xy) {
    kids.push(el("svg:circle", { cx: X(r.adv_xy[0]), cy: Y(r.adv_xy[1]), r: 3, fill: "#1d2330" }));
  }
  svg.replaceChildren(...kids);
}

// ---- events ----------------------------------------------------------------------------------------
const eventKey = (e) => `${e.time}|${e.kind}|${e.message}`;
function drawEvents(s) {
  const list = $("events"), evs = s.events || [];     // oldest first; the list shows newest first
  const keys = evs.map(eventKey);
  const shown = Array.from(list.children, (li) => li.dataset.key);    // newest first
  // the usual change: a few events appended (and the oldest dropped): add those, drop the surplus
  const at = shown.length ? keys.lastIndexOf(shown[0]) : -1;
  if (at >= 0 && keys.slice(0, at + 1).reverse().every((k, i) => i >= shown.length || shown[i] === k)) {
    for (let i = at + 1; i < evs.length; i++) list.prepend(eventItem(evs[i]));
  } else {
    list.replaceChildren(...evs.slice().reverse().map(eventItem));
  }
  while (list.children.length > evs.length) list.lastElementChild.remove();
}

function eventItem(e) {
  const li = el("li", { class: e.kind }, el("span", { class: "kind" }, e.kind), ` ${clock(e.time)}  ${e.message}`);
  li.dataset.key = eventKey(e);
  return li;
}

// ---- the whole page -----------------------------------------------------------------------------------
// each part of the page with what it shows: a part whose data did not change is not redrawn
const PARTS = [
  [drawHeader, (s) => [s.id, s.plan, s.rig, s.state, s.state_text, s.done, s.total]],
  [drawProgress, (s) => [s.done, s.total, s.running, s.state, Math.round(s.eta_s || 0), s.failed, s.retried, s.xruns,
                         s.clipped_trials, s.last_error, s.now, s.last, s.errors && s.errors.dut_mic]],
  [drawMeters, (s) => [s.mics, s.xruns]],
  [drawSpeakers, (s) => [s.speakers, s.done]],
  [drawErrors, (s) => [s.errors]],
  [drawTargets, (s) => [s.targeted]],
  [drawCaptures, (s) => [s.id, s.pictures && s.pictures.trial_id]],
  [drawRig, (s) => [s.rig_map]],
  [drawEvents, (s) => [s.events]],
];
const shown = new Map();

function draw(s) {
  for (const [f, what] of PARTS) {
    try {
      const key = JSON.stringify(what(s));
      if (shown.get(f) === key) continue;
      f(s);
      shown.set(f, key);
    } catch (err) { console.error(f.name, err); }
  }
  drawReplayControls(s);
  document.body.dataset.version = String((Number(document.body.dataset.version) || 0) + 1);
}

function drawReplayControls(s) {
  const base = live ? s : latest;
  if (!base) return;
  const show = !base.running && base.committed > 0;
  $("replay-card").hidden = !show;
  const sl = $("replay-slider");
  sl.max = String(Math.max(1, base.committed));
  if (live) sl.value = sl.max;
  $("replay-pos").textContent = live ? "final state" : `after trial ${sl.value} of ${sl.max}`;
}

async function showReplay(k) {
  live = false;
  const r = await fetch(`/api/snapshot?upto=${k}`, { cache: "no-store" });
  if (r.ok) draw(await r.json());
}

function stopPlaying() {
  if (playTimer) { clearInterval(playTimer); playTimer = null; $("replay-play").textContent = "play"; }
}

$("replay-slider").addEventListener("input", (e) => { stopPlaying(); showReplay(Number(e.target.value)); });
$("replay-live").addEventListener("click", () => { stopPlaying(); live = true; if (latest) draw(latest); });
$("replay-play").addEventListener("click", () => {
  if (playTimer) { stopPlaying(); return; }
  const sl = $("replay-slider");
  if (live || Number(sl.value) >= Number(sl.max)) sl.value = "1";
  $("replay-play").textContent = "pause";
  showReplay(Number(sl.value));
  playTimer = setInterval(() => {
    if (Number(sl.value) >= Number(sl.max)) { stopPlaying(); return; }
    sl.value = String(Number(sl.value) + 1);
    showReplay(Number(sl.value));
  }, 600);
});

// ---- updates: coalesced ------------------------------------------------------------------------------
// Snapshots are drawn at most once per MIN_DRAW_MS, in an animation frame, and not while the page is
// hidden (a background tab): the newest one waiting is drawn when it shows again.
const MIN_DRAW_MS = 500;
let pending = null, lastDraw = 0, drawTimer = null, connected = false;

function schedule(s) {
  pending = s;
  if (document.hidden && live) drawTitle(s);     // a background tab: its title still follows the run
  if (drawTimer !== null || document.hidden) return;
  const wait = Math.max(0, lastDraw + MIN_DRAW_MS - performance.now());
  drawTimer = setTimeout(() => {
    let done = false;
    const run = () => {
      if (done) return;
      done = true;
      drawTimer = null;
      if (document.hidden || pending === null) return;
      const s = pending;
      pending = null;
      lastDraw = performance.now();
      if (connected) {
        setText($("link"), "live · updated " + new Date().toLocaleTimeString());
        if ($("link").className !== "link") $("link").className = "link";
      }
      if (live || s.running) { if (!live) stopPlaying(); live = true; draw(s); }
      // when each snapshot reached the screen (seconds since the epoch): the latency bench reads it
      window.monitorUpdates.push({ at: Date.now() / 1000, done: s.done });
    };
    requestAnimationFrame(run);
    setTimeout(run, 250);        // where animation frames do not come (some headless browsers)
  }, wait);
}

document.addEventListener("visibilitychange", () => { if (!document.hidden && pending !== null) schedule(pending); });

function connect() {
  const src = new EventSource("/events");
  src.addEventListener("snapshot", (ev) => {
    latest = JSON.parse(ev.data);
    window.monitorReceived = (window.monitorReceived || 0) + 1;
    connected = true;
    schedule(latest);
  });
  src.addEventListener("problem", (ev) => {
    connected = false;
    $("link").textContent = "problem: " + JSON.parse(ev.data).message;
    $("link").className = "link down";
  });
  src.onerror = () => {
    connected = false;
    $("link").textContent = "monitor server unreachable: retrying";
    $("link").className = "link down";
  };
}
connect();
