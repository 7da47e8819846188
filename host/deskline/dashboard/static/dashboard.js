// Deskline supervisors' dashboard: renders the floor snapshot (docs/dashboard.md)
// and follows the live stream, updating the page in place so scroll, open panels
// and focus survive every update.  Snapshot data reaches the DOM only through
// textContent and attributes, never as markup.
"use strict";

const API = "/api/v1";
const SECTIONS = ["floor", "desks", "service", "escalations", "demand", "health", "daemon"];
const HEARTBEAT_LATE_S = 30;
const JOURNAL_BACKLOG = 8; // the console refuses presses near full; a few queued is normal
const QUIET_S = 15; // the daemon sends its figures every second; this long without news is odd
const ACCOUNT_COLOURS = ["#a78bfa", "#2dd4bf", "#d4b483", "#7dd3fc", "#f9a8d4", "#bef264"];
// The console's blink pattern per LED state id (firmware/leds.py, docs/leds.md).
const LED_PATTERN = ["wink", "solid", "slow", "double", "tick", "wink", "solid", "medium",
  "fast", "triple", "off", "double", "slow", "fast", "medium", "pair"];
const STATE_WORDS = { ready: "READY", on_call: "ON CALL", wrap_up: "WRAP-UP", offline: "OFFLINE", unknown: "NO STATE" };
const BAND_WORDS = { green: "GREEN", amber: "AMBER", red: "RED", unknown: "NO DATA" };
const URGENCY_WORDS = { breached: "BREACHED", due_soon: "DUE SOON", running: "RUNNING", no_deadline: "NO DEADLINE" };
const LINK_WORDS = { online: "online", connecting: "connecting", offline: "offline", released: "port released", absent: "never seen" };

const S = {
  snap: {},        // the latest value of every section
  gen: {},         // per section: the daemon's clock when it was generated
  version: 0,
  skew: 0,         // daemon clock minus this browser's clock, seconds
  received: 0,     // this browser's clock at the last message
  live: "connecting",
  source: null,
  whoami: null,
  panel: null,     // key of the desk whose panel is open
  panelReturn: null,
};

// ---- small DOM helpers -------------------------------------------------------------
const $ = (sel, root = document) => root.querySelector(sel);

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text != null) e.textContent = text;
  return e;
}

function setText(e, text) {
  const t = text == null ? "" : String(text);
  if (e.textContent !== t) e.textContent = t;
}

function setAttr(e, name, value) {
  if (value == null || value === false) {
    if (e.hasAttribute(name)) e.removeAttribute(name);
    return;
  }
  const v = String(value);
  if (e.getAttribute(name) !== v) e.setAttribute(name, v);
}

// Keeps container's children matching items, in order, reusing each keyed node.
function reconcile(container, items, keyOf, make, update) {
  const old = new Map();
  for (const child of Array.from(container.children)) {
    if (child.dataset.key != null) old.set(child.dataset.key, child);
  }
  let prev = null;
  for (const item of items) {
    const key = keyOf(item);
    let node = old.get(key);
    if (node) old.delete(key);
    else {
      node = make(item);
      node.dataset.key = key;
    }
    update(node, item);
    const want = prev ? prev.nextElementSibling : container.firstElementChild;
    if (node !== want) container.insertBefore(node, want);
    prev = node;
  }
  for (const node of old.values()) node.remove();
}

// ---- time -------------------------------------------------------------------------------
const nowDaemon = () => Date.now() / 1000 + S.skew;

function pad2(n) { return String(n).padStart(2, "0"); }

// 6:40, 1:05:09: a countdown
function clockText(s) {
  s = Math.max(0, Math.round(s));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
  return h ? `${h}:${pad2(m)}:${pad2(sec)}` : `${m}:${pad2(sec)}`;
}

// 45 s, 16 min, 2 h 05 min, 3 d 4 h: an age
function ageText(s) {
  s = Math.max(0, Math.round(s));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${pad2(Math.floor((s % 3600) / 60))} min`;
  return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
}

function timeOfDay(ts) {
  if (ts == null) return "";
  const d = new Date(ts * 1000);
  return `${pad2(d.getHours())}:${pad2(d.getMinutes())}`;
}

const num = (v, digits = 1) => (v == null ? "—" : Number(v).toFixed(digits));
const pct = (v) => (v == null ? "—" : `${Number(v).toFixed(1)} %`);
const secs = (v) => (v == null ? "—" : `${Math.round(v)} s`);

// Elements that tick every second between pushes: data-tick says how, data-at holds
// a time on the daemon's clock.
function tickOne(e, now) {
  const at = Number(e.dataset.at);
  if (!Number.isFinite(at)) return;
  switch (e.dataset.tick) {
    case "age": setText(e, ageText(now - at)); break;
    case "ago": setText(e, `${ageText(now - at)} ago`); break;
    case "left": {
      const left = at - now;
      setText(e, left >= 0 ? clockText(left) : `-${clockText(-left)}`);
      e.classList.toggle("late", left < 0);
      break;
    }
    case "wrap": {
      const left = at - now;
      setText(e, left >= 0 ? `${clockText(left)} left` : `${clockText(-left)} over`);
      e.classList.toggle("late", left < 0);
      break;
    }
    case "heartbeat": {
      const age = now - at;
      setText(e, age < 120 ? `${Math.max(0, Math.round(age))} s ago` : `${ageText(age)} ago`);
      e.classList.toggle("bad", age > HEARTBEAT_LATE_S);
      break;
    }
    case "deadline": tickDeadline(e, now); break;
    default: break;
  }
}

function tick() {
  const now = nowDaemon();
  for (const e of document.querySelectorAll("[data-tick]")) tickOne(e, now);
  setText($("#clock"), S.received ? new Date(now * 1000).toLocaleTimeString([], { hour12: false }) : "");
  showLive();
}

function ticking(e, how, at) {
  if (at == null) {
    delete e.dataset.tick;
    delete e.dataset.at;
    return;
  }
  e.dataset.tick = how;
  e.dataset.at = String(at);
  tickOne(e, nowDaemon());
}

// ---- accounts ---------------------------------------------------------------------------
function accountColour(key) {
  const accounts = (S.snap.floor && S.snap.floor.accounts) || [];
  const i = accounts.findIndex((a) => a.key === key);
  return i < 0 ? "var(--grey)" : ACCOUNT_COLOURS[i % ACCOUNT_COLOURS.length];
}

function renderFloor() {
  const f = S.snap.floor || {};
  setText($("#floor-name"), f.name || "no floor file");
  document.title = `${f.name || "Floor"} · Deskline`;
  const errors = f.errors || [];
  const banner = $("#floor-errors");
  banner.hidden = errors.length === 0;
  if (errors.length) {
    banner.replaceChildren(el("strong", null, `The floor file has ${errors.length} error${errors.length > 1 ? "s" : ""}; the previous floor stays in force:`));
    const ul = el("ul");
    for (const e of errors.slice(0, 5)) ul.append(el("li", null, e));
    banner.append(ul);
  }
  const key = $("#accounts-key");
  reconcile(key, f.accounts || [], (a) => a.key, () => {
    const li = el("li");
    li.append(el("span", "swatch"), el("span", "name"));
    return li;
  }, (li, a) => {
    li.style.setProperty("--acct", accountColour(a.key));
    setText(li.lastChild, `${a.name} · ${a.target_pct}% in ${a.threshold_s} s`);
  });
}

// ---- desks -----------------------------------------------------------------------------
function deskKey(d) { return d.on_floor && d.desk ? `desk:${d.desk}` : `console:${d.console}`; }

function deskState(d) {
  if (!d.online) return "offline";
  return d.state || "unknown";
}

function helpFor(desk) {
  return (S.snap.escalations || []).some((e) => e.kind === "floor_help" && e.desk === desk);
}

function makeTile() {
  const t = el("div", "tile");
  t.setAttribute("role", "button");
  t.tabIndex = 0;
  const head = el("div", "t-head");
  head.append(el("span", "t-desk"), el("span", "t-acct"));
  const status = el("div", "t-status");
  status.append(el("span", "t-state"), el("span", "t-extra"), el("span", "t-badge"));
  const oled = el("div", "oled");
  for (let i = 0; i < 4; i++) oled.append(el("div", "ln"));
  t.append(head, el("div", "t-agent"), status, oled, makeLeds());
  t.addEventListener("click", () => openPanel(t.dataset.key, t));
  t.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" || ev.key === " ") {
      ev.preventDefault();
      openPanel(t.dataset.key, t);
    }
  });
  return t;
}

function makeLeds() {
  const box = el("div", "leds");
  for (const layer of ["floor", "personal", "escalation"]) {
    const led = el("span", "led");
    led.dataset.led = layer;
    const dot = el("i", "dot");
    dot.setAttribute("aria-hidden", "true");
    led.append(dot, el("span", "led-name"));
    box.append(led);
  }
  return box;
}

function updateLeds(box, leds) {
  for (const led of box.children) {
    const layer = led.dataset.led;
    const v = leds ? leds[layer] : null;
    const name = v ? v.name : "unknown";
    const dot = led.firstChild;
    setAttr(led, "data-led-name", name);
    setAttr(led, "title", `${layer} light: ${name}`);
    setAttr(led, "aria-label", `${layer} light: ${name}`);
    setAttr(dot, "data-colour", v ? v.colour : "unknown");
    setAttr(dot, "data-pattern", v ? LED_PATTERN[v.id] || "solid" : null);
    // on a tile the layer is given by the place: "esc BREACHED" reads as "BREACHED"
    setText(led.lastChild, v ? name.replace(/^esc /, "") : "?");
  }
}

function escBadge(d) {
  if (d.desk && helpFor(d.desk)) return { kind: "help", text: "HELP" };
  const e = d.escalation;
  if (!e) return null;
  if (e.status === "breached") return { kind: "breached", text: "BREACHED" };
  if (e.status === "acknowledged") return { kind: "acked", text: "ESC acked" };
  return { kind: "pending", text: "ESC pending" };
}

function updateTile(t, d) {
  const state = deskState(d);
  setAttr(t, "data-desk", d.desk || null);
  setAttr(t, "data-console", d.console);
  setAttr(t, "data-state", state);
  setAttr(t, "data-online", d.online ? "true" : "false");
  t.style.setProperty("--acct", accountColour(d.account));
  if (d.row > 0 && d.col > 0 && S.snap.floor && S.snap.floor.rows > 0) {
    // Row 1 is nearest the supervisors' bench, drawn at the bottom.
    t.style.gridRow = String(S.snap.floor.rows - d.row + 1);
    t.style.gridColumn = String(d.col);
  } else {
    t.style.gridRow = "";
    t.style.gridColumn = "";
  }
  const [head, agent, status, oled, leds] = t.children;
  setText(head.firstChild, d.desk || d.console);
  setText(head.lastChild, d.account_name || (d.on_floor ? "" : "no desk"));
  setText(agent, d.agent_name || (d.on_floor ? "spare desk" : `console ${d.console}`));
  agent.classList.toggle("spare", !d.agent_name);
  const [word, extra, badge] = status.children;
  setText(word, STATE_WORDS[state]);
  if (!d.online) {
    ticking(extra, null, null);
    setText(extra, "");
  } else if (state === "wrap_up" && d.acw_left_s != null) {
    ticking(extra, "wrap", (S.gen.desks || 0) + d.acw_left_s);
  } else {
    ticking(extra, null, null);
    setText(extra, "");
    extra.classList.remove("late");
  }
  const b = escBadge(d);
  badge.hidden = !b;
  setAttr(badge, "data-kind", b ? b.kind : null);
  setText(badge, b ? b.text : "");
  t.classList.toggle("breach", !!b && b.kind === "breached");
  t.classList.toggle("help", !!b && b.kind === "help");
  const lines = d.display && d.display.length ? d.display : null;
  oled.classList.toggle("blank", !lines);
  const [l0, l1, l2, l3] = oled.children;
  if (lines) {
    for (let i = 0; i < 4; i++) {
      ticking(oled.children[i], null, null);
      setText(oled.children[i], lines[i] || "");
    }
  } else if (!d.online) {
    // An offline console's screen is not known: say instead since when it is away.
    setText(l0, d.link === "offline" ? "no link" : LINK_WORDS[d.link] || d.link || "no link");
    setText(l1, d.since != null ? `since ${timeOfDay(d.since)}` : "not seen this run");
    ticking(l2, "ago", d.since);
    if (d.since == null) setText(l2, "");
    setText(l3, "");
  } else {
    for (const l of oled.children) {
      ticking(l, null, null);
      setText(l, "");
    }
  }
  updateLeds(leds, d.online ? d.leds : null);
  const who = d.agent_name || "spare desk";
  const esc = b ? `, ${b.text}` : "";
  setAttr(t, "aria-label", `${d.desk || d.console}, ${who}, ${d.account_name || "no account"}, ${STATE_WORDS[state]}${esc}`);
  t.classList.toggle("selected", S.panel === t.dataset.key);
}

function renderDesks() {
  const f = S.snap.floor || {};
  const desks = S.snap.desks || [];
  const planned = f.rows > 0 && f.cols > 0;
  const onPlan = (d) => planned && d.on_floor && d.row > 0 && d.col > 0 && d.row <= f.rows && d.col <= f.cols;
  const map = $("#floor-map");
  if (planned) {
    // Tiles grow to fill a wall screen, up to a size that still reads as a desk.
    map.style.gridTemplateColumns = `repeat(${f.cols}, minmax(0, 16rem))`;
    map.style.gridTemplateRows = `repeat(${f.rows}, minmax(min-content, 1fr))`;
    map.style.maxHeight = `calc(${f.rows} * 15rem + ${f.rows - 1} * 0.45rem)`;
  }
  map.hidden = !planned;
  $("#floor-noplan").hidden = planned || desks.length === 0;
  $("#floor").classList.toggle("noplan", !planned);
  const placed = desks.filter(onPlan).sort((a, b) => b.row - a.row || a.col - b.col);
  reconcile(map, placed, deskKey, makeTile, updateTile);
  const rest = desks.filter((d) => !onPlan(d));
  reconcile($("#unplaced"), rest, deskKey, makeTile, updateTile);
  $("#unplaced-wrap").hidden = rest.length === 0;
  const online = desks.filter((d) => d.online).length;
  const counts = { ready: 0, on_call: 0, wrap_up: 0 };
  for (const d of desks) if (d.online && d.state in counts) counts[d.state]++;
  setText($("#floor-summary"),
    `${online}/${desks.length} online · ${counts.ready} ready · ${counts.on_call} on call · ${counts.wrap_up} wrap-up`);
  if (S.panel) renderPanel();
}

// ---- service level ----------------------------------------------------------------------
function makeSlRow() {
  const tr = el("tr");
  const th = el("th");
  th.scope = "row";
  const name = el("span", "sl-name");
  name.append(el("span", "swatch"), el("span", "label"));
  th.append(name);
  const band = el("td");
  band.append(el("span", "band"));
  tr.append(th, band, meterCell(), meterCell());
  const waiting = el("td", "num");
  waiting.append(el("span", "n"), el("span", "longest"));
  tr.append(waiting, el("td", "num"), el("td", "num"));
  return tr;
}

function meterCell() {
  const td = el("td");
  const cell = el("div", "meter-cell");
  const meter = el("div", "meter");
  meter.append(el("div", "fill"), el("div", "target"));
  cell.append(meter, el("span", "meter-val"));
  td.append(cell);
  return td;
}

function updateMeter(td, value, target, band) {
  const [meter, val] = td.firstChild.children;
  setAttr(meter, "data-band", value == null ? "unknown" : band);
  meter.firstChild.style.width = `${Math.max(0, Math.min(100, value || 0))}%`;
  meter.lastChild.style.left = `calc(${Math.max(0, Math.min(100, target))}% - 1px)`;
  setAttr(meter, "title", `target ${target}%`);
  setText(val, value == null ? "none" : value.toFixed(1));
  setAttr(val, "title", value == null ? "no calls yet" : `${value.toFixed(1)} % answered in time; target ${target} %`);
  val.classList.toggle("none", value == null);
}

function updateSlRow(tr, r) {
  const band = r.band in BAND_WORDS ? r.band : "unknown";
  setAttr(tr, "data-sl", `${r.scope}:${r.key}`);
  setAttr(tr, "data-band", band);
  setAttr(tr, "data-scope", r.scope);
  const [th, bandTd, slInt, slDay, waiting, asa, aband] = tr.children;
  th.style.setProperty("--acct", accountColour(r.account));
  setText(th.querySelector(".label"), r.scope === "queue" ? r.name : r.name);
  setAttr(th, "title", `${r.name}: ${r.target_pct}% answered in ${r.threshold_s} s (${r.variant})`);
  const pill = bandTd.firstChild;
  setAttr(pill, "data-band", band);
  setText(pill, BAND_WORDS[band]);
  updateMeter(slInt, r.sl_interval, r.target_pct, band);
  updateMeter(slDay, r.sl_today, r.target_pct, band);
  const [n, longest] = waiting.children;
  setText(n, r.waiting == null ? "—" : r.waiting);
  n.classList.toggle("warn", r.waiting > 0);
  setText(longest, r.longest_waiting_s == null ? "" : clockText(r.longest_waiting_s));
  longest.classList.toggle("bad", r.longest_waiting_s != null && r.longest_waiting_s > r.threshold_s);
  setAttr(waiting, "title", r.longest_waiting_s == null ? "nobody waiting"
    : `${r.waiting} waiting, the longest for ${clockText(r.longest_waiting_s)} (threshold ${r.threshold_s} s)`);
  const whole = (v) => (v == null ? "—" : String(Math.round(v)));
  setText(asa, `${whole(r.asa_interval_s)} / ${whole(r.asa_today_s)}`);
  setAttr(asa, "title", `average speed of answer: ${secs(r.asa_interval_s)} this interval, ${secs(r.asa_today_s)} today`);
  setText(aband, `${num(r.abandon_rate_interval_pct)} / ${num(r.abandon_rate_today_pct)}`);
  setAttr(aband, "title", `${r.abandoned_today} of ${r.offered_today} offered today`);
}

function renderService() {
  const s = S.snap.service || {};
  const off = !s.acd;
  $("#service-off").hidden = !off;
  $("#service-body").hidden = off;
  if (off) {
    setText($("#service-interval"), "");
    return;
  }
  const rows = [];
  const queues = s.queues || [];
  for (const a of s.accounts || []) {
    rows.push(a);
    for (const q of queues) if (q.account === a.key) rows.push(q);
  }
  for (const q of queues) if (!rows.includes(q)) rows.push(q);
  reconcile($("#sl-rows"), rows, (r) => `${r.scope}:${r.key}`, makeSlRow, updateSlRow);
  const from = s.interval_start != null ? ` from ${timeOfDay(s.interval_start)}` : "";
  setText($("#service-interval"), `${s.interval_min} min interval${from} · today · bar tick = target`);
}

// ---- escalations -------------------------------------------------------------------------
function makeEsc() {
  const li = el("li", "esc");
  const urg = el("div", "esc-urg");
  const main = el("div", "esc-main");
  const title = el("div", "esc-title");
  title.append(el("span", "where"), el("span", "acct"), el("span", "sev"));
  main.append(title, el("div", "esc-meta"));
  const time = el("div", "esc-time");
  const left = el("div", "esc-left");
  const bar = el("div", "esc-bar");
  bar.append(el("i"));
  time.append(left, bar);
  const actions = el("div", "esc-actions");
  const note = el("input");
  note.type = "text";
  note.placeholder = "note (optional)";
  note.maxLength = 200;
  const ack = el("button", "secondary", "Acknowledge");
  ack.type = "button";
  ack.dataset.action = "acknowledge";
  const res = el("button", "secondary", "Resolve");
  res.type = "button";
  res.dataset.action = "resolve";
  actions.append(note, ack, res);
  ack.addEventListener("click", () => escAction(li, "acknowledge"));
  res.addEventListener("click", () => escAction(li, "resolve"));
  li.append(urg, main, time, actions);
  return li;
}

function deadlineName(e) {
  if (e.deadline == null) return null;
  if (e.ack_due != null && Math.abs(e.deadline - e.ack_due) < 1) return "ack";
  return "resolve";
}

function updateEsc(li, e) {
  const help = e.kind === "floor_help";
  setAttr(li, "data-esc", e.ext_id);
  setAttr(li, "data-urgency", e.urgency);
  setAttr(li, "data-kind", e.kind);
  li.style.setProperty("--acct", accountColour(e.account));
  const [urg, main, time, actions] = li.children;
  setText(urg, help ? "HELP" : URGENCY_WORDS[e.urgency] || e.urgency);
  const [where, acct, sev] = main.firstChild.children;
  setText(where, help ? `HELP at ${e.desk}` : `${e.desk || "?"}`);
  setText(acct, e.account_name || e.account);
  setText(sev, e.severity);
  setAttr(sev, "data-sev", e.severity);
  const desk = (S.snap.desks || []).find((d) => d.desk === e.desk);
  const agent = (desk && desk.agent_name) || e.agent || "";
  const parts = [];
  if (agent) parts.push(help ? `${agent} asks for a supervisor` : agent);
  if (e.queue) parts.push(e.queue);
  if (e.ticket) parts.push(`ticket ${e.ticket}`);
  parts.push(e.status);
  parts.push(`raised ${timeOfDay(e.raised)}`);
  setText(main.lastChild, parts.join(" · "));
  setAttr(main.lastChild, "title", `${e.ext_id} · ${parts.join(" · ")}`);
  const left = time.firstChild;
  left.dataset.deadline = e.deadline == null ? "" : String((S.gen.escalations || 0) + e.left_s);
  left.dataset.which = deadlineName(e) || "";
  left.dataset.breached = (e.breached || []).join(" + ");
  left.dataset.allow = e.deadline != null && e.raised != null ? String(e.deadline - e.raised) : "";
  left.dataset.raised = String((S.gen.escalations || 0) - (e.age_s || 0));
  left.dataset.tick = "deadline";
  left.dataset.at = left.dataset.raised;
  tickDeadline(left, nowDaemon());
  const [, ack, res] = actions.children;
  const who = help ? `the help request at ${e.desk}` : `${e.ext_id} (${e.desk})`;
  setAttr(ack, "aria-label", `Acknowledge ${who}`);
  setAttr(res, "aria-label", `Resolve ${who}`);
  setAttr(actions.firstChild, "aria-label", `Note for ${who}`);
  setAttr(ack, "data-done", e.status === "acknowledged" || e.acked != null ? "true" : null);
}

// The running deadline, counted down here between pushes.
function tickDeadline(e, now) {
  const d = e.dataset;
  const bar = e.nextElementSibling;
  const age = now - Number(d.raised);
  const breached = d.breached;
  const left = Number(d.deadline) - now;
  const over = !!d.deadline && left < 0;
  let what;
  let figure;
  if (!d.deadline) {
    what = breached ? `BREACHED ${breached} · open` : "no deadline · open";
    figure = ageText(age);
  } else if (over) {
    what = `BREACHED ${breached || d.which}`;
    figure = `+${clockText(-left)}`;
  } else if (breached) {
    what = `BREACHED ${breached} · ${d.which} in`;
    figure = clockText(left);
  } else {
    what = `${d.which} in`;
    figure = clockText(left);
  }
  const w = e.firstChild;
  if (w && w.className === "what" && e.childNodes.length === 2) {
    setText(w, what);
    setText(e.lastChild, figure);
  } else {
    e.replaceChildren(el("span", "what", what), el("span", "fig", figure));
  }
  e.classList.toggle("over", over || !!breached);
  bar.hidden = !d.deadline;
  if (!d.deadline) return;
  setAttr(e, "title", `${d.which} due ${timeOfDay(Number(d.deadline))}`);
  const allow = Number(d.allow) || 1;
  const used = over ? 1 : Math.min(1, Math.max(0, 1 - left / allow));
  bar.firstChild.style.width = `${(used * 100).toFixed(1)}%`;
  bar.classList.toggle("over", over);
  bar.classList.toggle("soon", !over && (left <= 300 || left <= allow / 4));
}

function renderEscalations() {
  const list = S.snap.escalations || [];
  reconcile($("#esc-list"), list, (e) => e.ext_id, makeEsc, updateEsc);
  $("#esc-empty").hidden = list.length > 0;
  const breached = list.filter((e) => e.urgency === "breached").length;
  const help = list.filter((e) => e.kind === "floor_help").length;
  const bits = [`${list.length} open`];
  if (breached) bits.push(`${breached} breached`);
  if (help) bits.push(`${help} help`);
  setText($("#esc-count"), bits.join(" · "));
  $("#esc-count").classList.toggle("bad", breached > 0);
  // help badges on tiles depend on this section too
  if (S.snap.desks) renderDesks();
}

// ---- demand ------------------------------------------------------------------------------
function makeDemand() {
  const card = el("article", "demand-card");
  const head = el("div", "demand-head");
  const fd = el("div", "fd-share");
  fd.append(el("b"), el("span", null, "failure demand"));
  head.append(el("h3"), el("span", "contacts"), fd);
  card.append(head, el("div", "pareto"));
  return card;
}

function updateDemand(card, a) {
  setAttr(card, "data-demand", a.account);
  card.style.setProperty("--acct", accountColour(a.account));
  const [head, pareto] = card.children;
  setText(head.children[0], a.account_name || a.account);
  setText(head.children[1], `${a.contacts} contacts`);
  setText(head.children[2].firstChild, pct(a.failure_demand_pct));
  setAttr(head.children[2], "title", `${a.failure_demand} of ${a.contacts} contacts were failure demand`);
  const codes = [...(a.codes || [])].sort((x, y) => y.contacts - x.contacts);
  const max = Math.max(1, ...codes.map((c) => c.share_pct || 0));
  const rows = [el("span", "hdr", "code"), el("span", "hdr", "share of contacts"), el("span", "hdr n", "n"), el("span", "hdr cumv", "cum.")];
  for (const c of codes) {
    const cls = c.failure_demand ? "row-fd" : "";
    const lbl = el("span", `lbl ${cls}`);
    if (c.failure_demand) lbl.append(el("span", "fd", "FD"));
    lbl.append(document.createTextNode(`${c.code} ${c.label}`));
    lbl.title = `${c.code} ${c.label}${c.failure_demand ? " (failure demand)" : ""}`;
    const barWrap = el("span", cls);
    const bar = el("span", "bar");
    const fill = el("i");
    fill.style.width = `${(100 * (c.share_pct || 0)) / max}%`;
    bar.append(fill);
    bar.title = `${pct(c.share_pct)} of contacts, ${pct(c.cumulative_pct)} cumulative`;
    barWrap.append(bar);
    barWrap.style.display = "contents";
    const cumv = el("span", "cumv", `${Math.round(c.cumulative_pct || 0)}%`);
    // the "vital few": codes that together make the first 80 % of contacts
    const few = (c.cumulative_pct || 0) - (c.share_pct || 0) < 80;
    lbl.classList.toggle("trivial", !few);
    cumv.classList.toggle("past80", !few);
    rows.push(lbl, barWrap, el("span", "n", String(c.contacts)), cumv);
  }
  pareto.replaceChildren(...rows);
}

function renderDemand() {
  const list = S.snap.demand || [];
  reconcile($("#demand-list"), list, (a) => a.account, makeDemand, updateDemand);
  $("#demand-empty").hidden = list.length > 0;
}

// ---- health ------------------------------------------------------------------------------
const HEALTH_COLS = 14;

function makeHealth() {
  const tr = el("tr");
  for (let i = 0; i < HEALTH_COLS; i++) tr.append(el("td", i === 3 || i === 6 || i === 7 || (i >= 9 && i <= 12) ? "num" : ""));
  tr.children[2].append(el("span", "link-pill"));
  return tr;
}

function kb(v) { return v == null ? "—" : `${Math.round(v / 1024)}k`; }

function healthProblems(h) {
  const p = [];
  if (!h.online) p.push("offline");
  if (h.heartbeat_age_s != null && h.heartbeat_age_s > HEARTBEAT_LATE_S && h.online) p.push("heartbeat late");
  if (h.journal_depth >= JOURNAL_BACKLOG) p.push("journal backlog");
  if (h.link_errors || h.rx_errors) p.push("link errors");
  if (h.config_expected != null && h.config_version !== h.config_expected) p.push("old config");
  return p;
}

function updateHealth(tr, h) {
  setAttr(tr, "data-health", h.device_id);
  tr.classList.toggle("offline", !h.online);
  const c = tr.children;
  setText(c[0], h.device_id);
  setText(c[1], h.desk || "—");
  const pill = c[2].firstChild;
  setText(pill, h.online ? "ONLINE" : "OFFLINE");
  pill.className = `link-pill ${h.online ? "on" : "off"}`;
  if (h.last_heartbeat != null) {
    ticking(c[3], "heartbeat", h.last_heartbeat);
  } else {
    ticking(c[3], null, null);
    setText(c[3], h.online ? "none yet" : "never");
    c[3].classList.toggle("bad", !h.online);
  }
  setText(c[4], h.fw_version || "—");
  setText(c[5], `${h.app_version || "—"}${h.app_slot ? ` (${h.app_slot})` : ""}`);
  setText(c[6], `${kb(h.free_heap)} / ${kb(h.min_free_heap)}`);
  c[6].classList.toggle("warn", h.min_free_heap != null && h.min_free_heap < 20000);
  setText(c[7], h.boots == null ? "—" : h.boots);
  setText(c[8], h.reset_cause_name || (h.last_reset_cause != null ? `cause ${h.last_reset_cause}` : "—"));
  c[8].classList.toggle("bad", /crash|watchdog|unexpected/.test(h.reset_cause_name || ""));
  setText(c[9], h.journal_depth == null ? "—" : h.journal_depth);
  c[9].classList.toggle("warn", h.journal_depth >= JOURNAL_BACKLOG);
  setText(c[10], h.link_errors);
  c[10].classList.toggle("warn", h.link_errors > 0);
  setText(c[11], h.rx_errors);
  c[11].classList.toggle("warn", h.rx_errors > 0);
  setText(c[12], h.reconnects);
  const stale = h.config_expected != null && h.config_version !== h.config_expected;
  setText(c[13], h.config_expected == null ? (h.config_version == null ? "—" : `v${h.config_version}`) : stale
    ? `v${h.config_version ?? "—"} ≠ v${h.config_expected} expected` : `v${h.config_version} ✓`);
  c[13].classList.toggle("warn", stale);
}

function renderHealth() {
  const list = S.snap.health || [];
  reconcile($("#health-rows"), list, (h) => h.device_id, makeHealth, updateHealth);
  const offline = list.filter((h) => !h.online).length;
  const problems = list.filter((h) => h.online && healthProblems(h).length).length;
  setText($("#health-summary"), `${list.length} consoles · ${offline} offline · ${problems} online with a problem`);
  if (S.panel) renderPanel();
}

// ---- daemon -------------------------------------------------------------------------------
function renderDaemon() {
  const d = S.snap.daemon || {};
  const box = $("#daemon");
  const items = [
    ["online", `${d.online ?? "—"}/${d.ports ?? "—"}`, "consoles online", d.online < d.ports],
    ["rate", `${num(d.events_per_s)}`, "events/s"],
    ["stored", (d.committed_events ?? 0).toLocaleString("en-GB"), "stored"],
    ["up", d.uptime_s != null ? ageText(d.uptime_s) : "—", "up"],
    ["links", d.link_errors ?? 0, "link errors", d.link_errors > 0],
    ["store", d.store_failures ?? 0, "store failures", d.store_failures > 0],
  ];
  reconcile(box, items, (i) => i[0], () => {
    const s = el("span");
    s.append(el("b"), document.createTextNode(""));
    return s;
  }, (s, [, value, label, bad]) => {
    setText(s.firstChild, value);
    if (s.lastChild.nodeValue !== ` ${label}`) s.lastChild.nodeValue = ` ${label}`;
    s.classList.toggle("bad", !!bad && label !== "consoles online");
    s.classList.toggle("warn", !!bad && label === "consoles online");
  });
}

const RENDER = {
  floor: () => { renderFloor(); renderDesks(); renderService(); renderEscalations(); renderDemand(); },
  desks: renderDesks,
  service: renderService,
  escalations: renderEscalations,
  demand: renderDemand,
  health: renderHealth,
  daemon: renderDaemon,
};

// ---- applying the snapshot and its sections ---------------------------------------
function noteClock(msg) {
  S.received = Date.now() / 1000;
  if (typeof msg.generated === "number") S.skew = msg.generated - S.received;
  if (typeof msg.version === "number") S.version = msg.version;
  setAttr($("#live"), "data-version", S.version);
}

function applySnapshot(snap) {
  noteClock(snap);
  for (const s of SECTIONS) {
    if (s in snap) {
      S.snap[s] = snap[s];
      S.gen[s] = snap.generated;
    }
  }
  renderFloor();
  renderDesks();
  renderService();
  renderEscalations();
  renderDemand();
  renderHealth();
  renderDaemon();
  tick();
}

function applySection(name, msg) {
  if (!(name in msg)) return;
  noteClock(msg);
  S.snap[name] = msg[name];
  S.gen[name] = msg.generated;
  RENDER[name]();
}

// ---- live state ----------------------------------------------------------------------------
function setLive(state) {
  S.live = state;
  showLive();
}

function showLive() {
  const live = $("#live");
  setAttr(live, "data-state", S.live);
  const age = S.received ? Date.now() / 1000 - S.received : 0;
  let text;
  if (S.live === "live") {
    text = age > QUIET_S ? `Live · no update for ${ageText(age)}` : "Live";
  } else if (S.live === "reconnecting") {
    text = S.received ? `Reconnecting… data ${ageText(age)} old` : "Reconnecting…";
  } else {
    text = "Connecting…";
  }
  live.classList.toggle("quiet", S.live === "live" && age > QUIET_S);
  setText($("#live-text"), text);
}

function connect() {
  if (S.source) S.source.close();
  const source = new EventSource(`${API}/stream`);
  S.source = source;
  source.addEventListener("open", () => setLive("live"));
  source.addEventListener("snapshot", (ev) => {
    setLive("live");
    applySnapshot(JSON.parse(ev.data));
  });
  for (const name of SECTIONS) {
    source.addEventListener(name, (ev) => {
      setLive("live");
      applySection(name, JSON.parse(ev.data));
    });
  }
  source.addEventListener("error", () => {
    setLive("reconnecting");
    // A refused stream (401, a daemon restarting) is not retried by the browser.
    if (source.readyState === EventSource.CLOSED) setTimeout(() => retry(source), 5000);
  });
}

async function retry(source) {
  if (S.source !== source) return;
  try {
    const r = await fetch(`${API}/dashboard`, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (r.status === 401) return toLogin();
    if (r.ok) applySnapshot(await r.json());
  } catch (_) {
    // the daemon is still away: try again below
  }
  if (S.source === source) connect();
}

function toLogin() {
  location.assign(`/login?next=${encodeURIComponent(location.pathname + location.search)}`);
}

// ---- notices and actions -----------------------------------------------------------------
let noticeTimer = 0;

function notice(kind, text, loginLink) {
  const box = $("#notice");
  box.hidden = false;
  setAttr(box, "data-kind", kind);
  const parts = [el("span", "notice-text", text)];
  if (loginLink) {
    const a = el("a", null, "Log in");
    a.href = `/login?next=${encodeURIComponent(location.pathname + location.search)}`;
    parts.push(a);
  }
  const close = el("button", "ghost", "✕");
  close.type = "button";
  close.setAttribute("aria-label", "Dismiss");
  close.addEventListener("click", clearNotice);
  parts.push(close);
  box.replaceChildren(...parts);
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(clearNotice, kind === "ok" ? 6000 : 20000);
}

function clearNotice() {
  const box = $("#notice");
  box.hidden = true;
  box.removeAttribute("data-kind");
}

async function post(url, body, what, buttons) {
  clearNotice();
  for (const b of buttons) {
    b.setAttribute("aria-busy", "true");
    b.disabled = true;
  }
  try {
    let r;
    try {
      r = await fetch(url, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify(body),
      });
    } catch (err) {
      notice("error", `Could not ${what}: the daemon did not answer (${err.message}).`);
      return null;
    }
    let data = null;
    try { data = await r.json(); } catch (_) { data = null; }
    if (r.status === 401) {
      notice("error", `Log in as a supervisor to ${what}.`, true);
      return null;
    }
    if (!r.ok || (data && data.ok === false)) {
      const why = (data && data.error) || `${r.status} ${r.statusText}`;
      notice("error", `Could not ${what}: ${why}`);
      return null;
    }
    return data || {};
  } finally {
    for (const b of buttons) {
      b.removeAttribute("aria-busy");
      b.disabled = false;
    }
  }
}

async function escAction(li, action) {
  const id = li.dataset.esc;
  const row = (S.snap.escalations || []).find((e) => e.ext_id === id);
  const label = row && row.kind === "floor_help" ? `the help request at ${row.desk}` : id;
  const note = li.querySelector("input").value.trim();
  const buttons = Array.from(li.querySelectorAll("button"));
  const data = await post(`${API}/escalations/${encodeURIComponent(id)}/${action}`, { note }, `${action} ${label}`, buttons);
  if (!data) return;
  li.querySelector("input").value = "";
  const done = action === "acknowledge" ? "Acknowledged" : "Resolved";
  notice("ok", data.changed === false ? `${done} already: ${label}` : `${done} ${label}.`);
}

async function deviceAction(button, action) {
  const device = button.dataset.device;
  if (!device) return;
  const what = action === "reboot" ? `reboot console ${device}` : `push config to console ${device}`;
  if (S.whoami && S.whoami.can_act === false) {
    notice("error", `Log in as a supervisor to ${what}.`, true);
    return;
  }
  if (action === "reboot" && !window.confirm(`Reboot console ${device}? The agent's console restarts; presses wait in its journal.`)) return;
  const data = await post(`${API}/consoles/${encodeURIComponent(device)}/${action}`, {}, what, [button]);
  if (data) notice("ok", action === "reboot" ? `Reboot sent to ${device}.` : `Config pushed to ${device}.`);
}

// ---- the desk panel -------------------------------------------------------------------------
function openPanel(key, from) {
  S.panel = key;
  S.panelReturn = from || null;
  $("#desk-panel").hidden = false;
  for (const t of document.querySelectorAll(".tile")) t.classList.toggle("selected", t.dataset.key === key);
  renderPanel();
  $("#panel-title").focus();
}

function closePanel() {
  S.panel = null;
  $("#desk-panel").hidden = true;
  for (const t of document.querySelectorAll(".tile.selected")) t.classList.remove("selected");
  const back = S.panelReturn;
  S.panelReturn = null;
  if (back && back.isConnected) back.focus();
}

function topName(d) {
  for (const v of Object.values(d.leds || {})) if (v && v.id === d.top) return ` (${v.name})`;
  return "";
}

function dl(pairs) {
  const list = el("dl");
  for (const [k, v] of pairs) list.append(el("dt", null, k), el("dd", null, v == null || v === "" ? "—" : String(v)));
  return list;
}

function renderPanel() {
  const d = (S.snap.desks || []).find((x) => deskKey(x) === S.panel);
  const body = $("#panel-body");
  if (!d) {
    setText($("#panel-title"), "Desk gone");
    body.replaceChildren(el("p", "empty", "This desk is no longer on the floor."));
    return;
  }
  const h = (S.snap.health || []).find((x) => x.device_id === d.console);
  const state = deskState(d);
  setText($("#panel-title"), d.desk ? `${d.desk} · ${d.agent_name || "spare desk"}` : `Console ${d.console}`);
  const oled = el("div", "oled mono");
  for (const line of d.display && d.display.length ? d.display : ["", "", "", ""]) oled.append(el("div", "ln", line));
  const leds = makeLeds();
  updateLeds(leds, d.online ? d.leds : null);
  for (const led of leds.children) {
    const v = d.online && d.leds ? d.leds[led.dataset.led] : null;
    setText(led.lastChild, `${led.dataset.led}: ${v ? `${v.name} (state ${v.id}, ${v.colour})` : "unknown"}`);
  }
  const now = nowDaemon();
  const esc = d.escalation;
  const rows = [
    ["State", STATE_WORDS[state]],
    ["Console", d.console],
    ["Account", d.account_name ? `${d.account_name} (${d.account})` : ""],
    ["Agent", d.agent ? `${d.agent_name || ""} (${d.agent})` : "spare desk"],
    ["Place", d.row ? `row ${d.row}, column ${d.col}` : "not on the plan"],
    ["Link", `${LINK_WORDS[d.link] || d.link}${d.since != null ? ` since ${timeOfDay(d.since)} (${ageText(now - d.since)})` : ""}`],
    ["Floor light", d.band],
    ["Wrap-up left", d.acw_left_s != null ? clockText(d.acw_left_s) : ""],
    ["Escalation", esc ? `${d.desk && helpFor(d.desk) ? "help request" : `#${esc.id}`} ${esc.status}${esc.left_s != null ? `, ${esc.left_s < 0 ? "over by " + clockText(-esc.left_s) : clockText(esc.left_s) + " left"}` : ""}` : "none"],
    ["Most urgent light", d.top == null ? "" : `state ${d.top}${topName(d)}`],
  ];
  const parts = [el("h3", null, "Display"), oled, el("h3", null, "Lights"), leds, el("h3", null, "Desk"), dl(rows)];
  if (h) {
    parts.push(el("h3", null, "Health"), dl([
      ["Last heartbeat", h.last_heartbeat != null ? `${ageText(now - h.last_heartbeat)} ago` : "never"],
      ["Firmware / app", `${h.fw_version || "—"} / ${h.app_version || "—"} (slot ${h.app_slot})`],
      ["Free heap (min)", `${kb(h.free_heap)} (${kb(h.min_free_heap)})`],
      ["Boots, last reset", `${h.boots ?? "—"}, ${h.reset_cause_name || "—"}`],
      ["Journal depth", h.journal_depth],
      ["Link / RX errors", `${h.link_errors} / ${h.rx_errors}`],
      ["Reconnects", h.reconnects],
      ["Config", `v${h.config_version ?? "—"} (expected v${h.config_expected ?? "—"})`],
    ]));
  }
  body.replaceChildren(...parts);
  for (const b of document.querySelectorAll("#desk-panel [data-action]")) {
    b.dataset.device = d.console;
    const what = b.dataset.action === "reboot" ? "Reboot" : "Push config to";
    b.setAttribute("aria-label", `${what} console ${d.console}`);
  }
}

// ---- who is looking -------------------------------------------------------------------------
async function loadWhoami() {
  const box = $("#whoami");
  let w = null;
  try {
    const r = await fetch(`${API}/whoami`, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (r.ok) w = await r.json();
  } catch (_) {
    w = null;
  }
  S.whoami = w;
  document.body.classList.toggle("can-act", !!(w && w.can_act));
  const login = el("a", null, "Log in");
  login.href = `/login?next=${encodeURIComponent(location.pathname + location.search)}`;
  if (w && w.user) {
    const out = el("button", "ghost", "Log out");
    out.type = "button";
    out.addEventListener("click", logout);
    const parts = [el("span", "who", w.user)];
    if (!w.can_act) parts.push(el("span", "role", "read only"));
    parts.push(out);
    box.replaceChildren(...parts);
  } else if (w) {
    box.replaceChildren(el("span", "role", w.public_read ? "Public view ·" : ""), login);
  } else {
    box.replaceChildren(login);
  }
}

async function logout() {
  try {
    await fetch(`${API}/logout`, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json" }, body: "{}",
    });
  } catch (_) {
    // logged out or not, the page asks again below
  }
  await loadWhoami();
  if (!S.whoami || !S.whoami.public_read) toLogin();
  else notice("ok", "Logged out.");
}

// A browser may refuse storage (private mode, a locked-down wall PC): then nothing is kept.
function remembered(key) {
  try { return localStorage.getItem(key); } catch (_) { return null; }
}

function remember(key, value) {
  try { localStorage.setItem(key, value); } catch (_) { /* not kept */ }
}

// ---- start ---------------------------------------------------------------------------------
async function startDashboard() {
  if (new URLSearchParams(location.search).get("wall") === "1") document.body.classList.add("wall");
  $("#panel-close").addEventListener("click", closePanel);
  const toggle = $("#queues-toggle");
  const showQueues = (show) => {
    $("#service").classList.toggle("no-queues", !show);
    toggle.setAttribute("aria-pressed", String(show));
    setText(toggle, show ? "Hide queues" : "Show queues");
  };
  showQueues(remembered("deskline.queues") !== "hidden");
  toggle.addEventListener("click", () => {
    const show = $("#service").classList.contains("no-queues");
    remember("deskline.queues", show ? "shown" : "hidden");
    showQueues(show);
  });
  document.addEventListener("keydown", (ev) => {
    if (ev.key === "Escape" && S.panel) closePanel();
  });
  for (const b of document.querySelectorAll("#desk-panel [data-action]")) {
    b.addEventListener("click", () => deviceAction(b, b.dataset.action));
  }
  setLive("connecting");
  loadWhoami();
  try {
    const r = await fetch(`${API}/dashboard`, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (r.status === 401) return toLogin();
    if (r.ok) applySnapshot(await r.json());
  } catch (_) {
    // the stream below brings the snapshot when the daemon answers
  }
  connect();
  setInterval(tick, 1000);
}

// ---- the login page --------------------------------------------------------------------------
function safeNext(next) {
  return next && next.startsWith("/") && !next.startsWith("//") && !next.includes("\\") ? next : "/";
}

function startLogin() {
  const form = $("#login-form");
  const error = $("#login-error");
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    error.hidden = true;
    const user = form.elements.user.value.trim();
    const password = form.elements.password.value;
    if (!user || !password) {
      error.hidden = false;
      setText(error, "Enter your user name and password.");
      return;
    }
    const button = form.querySelector("button");
    button.disabled = true;
    try {
      const r = await fetch(`${API}/login`, {
        method: "POST", credentials: "same-origin",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify({ user, password }),
      });
      let data = null;
      try { data = await r.json(); } catch (_) { data = null; }
      if (r.ok && (!data || data.ok !== false)) {
        location.assign(safeNext(form.dataset.next));
        return;
      }
      error.hidden = false;
      setText(error, (data && data.error) || (r.status === 401 ? "Wrong user name or password." : `Login failed: ${r.status} ${r.statusText}`));
      form.elements.password.select();
    } catch (err) {
      error.hidden = false;
      setText(error, `The daemon did not answer (${err.message}). Try again.`);
    } finally {
      button.disabled = false;
    }
  });
}

document.addEventListener("DOMContentLoaded", () => {
  if (document.body.dataset.page === "login") startLogin();
  else startDashboard();
});
