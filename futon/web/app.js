// futon's evidence page: timeline with filters, threads, agents online, live
// updates over Server-Sent Events. Plain DOM, no build step.
//
// Safety: entry content is data from agents and humans. It only ever reaches
// the page through textContent and attribute setters (never innerHTML), and
// the Content-Security-Policy forbids inline script anyway.
//
// Auth: with an admin token configured, open the page as /?token=TOKEN once.
// The token moves to sessionStorage (and out of the address bar); fetches
// send it as "Authorization: Bearer"; the SSE stream, which EventSource
// cannot give headers, carries it as ?token= (the daemon accepts that on the
// stream route only).
"use strict";

const TYPES = ["coordination", "gate-traversal", "pattern-selection", "pattern-outcome", "reflection",
  "forum-post", "mode-transition", "presence-event", "correction", "conjecture"];
const CLAIMS = ["goal", "step", "evidence", "conclusion", "question", "observation", "tension",
  "correction", "conjecture"];
const FILTER_KEYS = ["type", "claim-type", "author", "session-id", "tag"];
const PAGE = 100;
const MAX_SHOWN = 1000;
const TOKEN_KEY = "futon-token";

const state = {
  token: null,
  stream: null,
  seen: new Set(),     // entry ids in the timeline
  lastSeq: 0,          // the newest seq shown (the stream resumes after it)
  cursor: null,        // next page of older entries
  thread: null,        // {root, ids: Set, selected}
  agentsTimer: null,
};

// ------------------------------------------------------------------ helpers

function el(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null) continue;
    if (key === "text") node.textContent = String(value);
    else if (key === "class") node.className = value;
    else if (key === "data") for (const [k, v] of Object.entries(value)) node.dataset[k] = String(v);
    else node.setAttribute(key, String(value));
  }
  for (const child of children) if (child) node.append(child);
  return node;
}

class AuthNeeded extends Error {}

async function api(path) {
  const headers = state.token ? { Authorization: "Bearer " + state.token } : {};
  const response = await fetch(path, { headers });
  if (response.status === 401) throw new AuthNeeded();
  const body = await response.json();
  if (!response.ok) throw new Error(body.message || response.statusText);
  return body;
}

function notice(text) {
  const box = document.getElementById("notice");
  box.textContent = text || "";
  box.hidden = !text;
}

function failed(error) {
  if (error instanceof AuthNeeded) {
    notice("This daemon needs its admin token: open this page as /?token=YOUR_TOKEN (it is kept for this tab only).");
  } else {
    notice("Could not reach the daemon: " + error.message);
  }
}

function filterParams() {
  const form = document.getElementById("filters");
  const params = new URLSearchParams();
  for (const key of FILTER_KEYS) {
    const value = form.elements[key].value.trim();
    if (value) params.set(key, value);
  }
  return params;
}

function summary(entry) {
  const body = entry["evidence/body"];
  if (!body) return "";
  if (typeof body.text === "string") return body.text;
  const text = JSON.stringify(body);
  return text.length > 400 ? text.slice(0, 400) + "…" : text;
}

function subjectText(entry) {
  const subject = entry["evidence/subject"] || {};
  return (subject["ref/type"] || "?") + ":" + (subject["ref/id"] || "?");
}

function entryCard(entry) {
  const claim = entry["evidence/claim-type"];
  const meta = el("div", { class: "meta" },
    el("span", { class: "seq", text: "#" + entry["evidence/seq"] }),
    el("time", { datetime: entry["evidence/at"], text: entry["evidence/at"] }),
    el("span", { class: "author", text: entry["evidence/author"] }),
    el("span", { class: "badge type", text: entry["evidence/type"] }),
    el("span", { class: "badge claim claim-" + claim, text: claim }),
    entry["evidence/fork-of"] ? el("span", { class: "badge fork", text: "fork" }) : null,
    el("span", { class: "subject", text: subjectText(entry) }),
  );
  for (const tag of entry["evidence/tags"] || []) meta.append(el("span", { class: "tag", text: "#" + tag }));
  return [meta, el("div", { class: "text", text: summary(entry) })];
}

// ------------------------------------------------------------------ timeline

function entryItem(entry, fresh) {
  const item = el("li", {
    class: "entry" + (fresh ? " new" : ""),
    tabindex: "0",
    title: "open the thread of " + entry["evidence/id"],
    data: { id: entry["evidence/id"], seq: entry["evidence/seq"] },
  }, ...entryCard(entry));
  item.addEventListener("click", () => openThread(entry["evidence/id"]));
  item.addEventListener("keydown", (event) => { if (event.key === "Enter") openThread(entry["evidence/id"]); });
  return item;
}

function showEntries(entries, { atTop }) {
  const list = document.getElementById("timeline");
  for (const entry of entries) {
    const id = entry["evidence/id"];
    if (state.seen.has(id)) continue;
    state.seen.add(id);
    state.lastSeq = Math.max(state.lastSeq, entry["evidence/seq"]);
    const item = entryItem(entry, atTop);
    if (atTop) list.prepend(item); else list.append(item);
  }
  while (list.children.length > MAX_SHOWN) {
    const last = list.lastElementChild;
    state.seen.delete(last.dataset.id);
    last.remove();
  }
}

async function loadTimeline() {
  closeStream();
  document.getElementById("timeline").replaceChildren();
  state.seen.clear();
  state.lastSeq = 0;
  try {
    const health = await api("/health");  // entries up to here are in the query below
    const params = filterParams();
    params.set("limit", String(PAGE));
    const page = await api("/api/alpha/evidence?" + params);
    showEntries(page.entries, { atTop: false });
    state.cursor = page.next_cursor || null;
    document.getElementById("older").hidden = !state.cursor;
    notice("");
    openStream(Math.max(state.lastSeq, (health.evidence && health.evidence.entries) || 0));
  } catch (error) {
    failed(error);
  }
}

async function loadOlder() {
  if (!state.cursor) return;
  try {
    const params = filterParams();
    params.set("limit", String(PAGE));
    params.set("cursor", state.cursor);
    const page = await api("/api/alpha/evidence?" + params);
    showEntries(page.entries, { atTop: false });
    state.cursor = page.next_cursor || null;
    document.getElementById("older").hidden = !state.cursor;
  } catch (error) {
    failed(error);
  }
}

// ------------------------------------------------------------------ live stream

function setStreamState(text, cls) {
  const badge = document.getElementById("stream-state");
  badge.textContent = text;
  badge.className = "state " + (cls || "");
}

function closeStream() {
  if (state.stream) state.stream.close();
  state.stream = null;
}

function openStream(afterSeq) {
  closeStream();
  const params = filterParams();
  // The first connection starts after what the timeline shows; EventSource
  // then resumes by itself with Last-Event-ID, which takes precedence.
  params.set("last-event-id", String(afterSeq));
  if (state.token) params.set("token", state.token);
  const stream = new EventSource("/api/alpha/evidence/stream?" + params);
  stream.addEventListener("open", () => setStreamState("live", "live"));
  stream.addEventListener("error", () => setStreamState("reconnecting…", "down"));
  stream.addEventListener("evidence", (event) => {
    const entry = JSON.parse(event.data);
    showEntries([entry], { atTop: true });
    onLiveEntry(entry);
  });
  state.stream = stream;
}

function onLiveEntry(entry) {
  const thread = state.thread;
  const parent = entry["evidence/in-reply-to"] || entry["evidence/fork-of"];
  if (thread && parent && thread.ids.has(parent)) openThread(thread.selected, { keepScroll: true });
  if (entry["evidence/type"] === "presence-event") loadAgents();
}

// ------------------------------------------------------------------ threads

async function openThread(id, options = {}) {
  try {
    const thread = await api("/api/alpha/evidence/" + encodeURIComponent(id) + "/thread");
    renderThread(thread, id);
    const panel = document.getElementById("thread-panel");
    panel.hidden = false;
    if (!options.keepScroll) panel.scrollIntoView({ block: "nearest" });
  } catch (error) {
    failed(error);
  }
}

function renderThread(thread, selected) {
  const byId = new Map(thread.entries.map((e) => [e["evidence/id"], e]));
  const children = new Map();
  for (const entry of thread.entries) {
    const parent = entry["evidence/in-reply-to"] || entry["evidence/fork-of"];
    if (parent && byId.has(parent)) {
      if (!children.has(parent)) children.set(parent, []);
      children.get(parent).push(entry);
    }
  }
  state.thread = { root: thread.root, ids: new Set(byId.keys()), selected };

  // A reply chain reads top to bottom at one level; only where an entry has
  // several replies (or a fork) does the tree indent, one branch each.
  function branch(start) {
    const list = el("ul", { class: "tree" });
    let entry = start;
    while (entry) {
      const id = entry["evidence/id"];
      const node = el("li", {
        class: "node" + (id === selected ? " selected" : "") + (entry["evidence/fork-of"] ? " fork" : ""),
        data: { id },
      }, el("div", { class: "card" }, ...entryCard(entry)));
      list.append(node);
      const replies = children.get(id) || [];
      if (replies.length === 1 && !replies[0]["evidence/fork-of"]) {
        entry = replies[0];
        continue;
      }
      for (const reply of replies) {
        const sub = branch(reply);
        sub.classList.add("branch");
        node.append(sub);
      }
      entry = null;
    }
    return list;
  }

  const root = byId.get(thread.root);
  const forks = Object.keys(thread.forks || {}).length;
  document.getElementById("thread-meta").textContent =
    `${thread.entries.length} entries · ${thread.status} · ${forks} fork(s) · ` +
    `participants: ${(thread.participants || []).join(", ")}`;
  document.getElementById("thread").replaceChildren(root ? branch(root) : el("p", { text: "the root is not readable" }));
}

function closeThread() {
  state.thread = null;
  document.getElementById("thread-panel").hidden = true;
}

// ------------------------------------------------------------------ agents

async function loadAgents() {
  try {
    const body = await api("/api/alpha/agents");
    const list = document.getElementById("agents");
    list.replaceChildren(...body.agents.map((agent) => {
      const where = [agent.transport, agent.peripheral_id].filter(Boolean).join(" · ");
      return el("li", { class: agent.connected ? "online" : "offline", data: { agent: agent.agent_id } },
        el("span", { class: "dot", title: agent.connected ? "connected" : "offline" }),
        el("span", { class: "name", text: agent.agent_id }),
        el("span", { class: "badge", text: agent.type }),
        el("span", { class: "detail", text: where || (agent.last_active ? "last active " + agent.last_active : "never seen") }));
    }));
  } catch (error) {
    failed(error);
  }
}

// ------------------------------------------------------------------ start

function takeToken() {
  const url = new URL(window.location.href);
  const given = url.searchParams.get("token");
  if (given) {
    sessionStorage.setItem(TOKEN_KEY, given);
    url.searchParams.delete("token");
    window.history.replaceState(null, "", url.pathname + url.search + url.hash);
  }
  state.token = sessionStorage.getItem(TOKEN_KEY);
}

function fillFilters() {
  const form = document.getElementById("filters");
  for (const [name, values] of [["type", TYPES], ["claim-type", CLAIMS]]) {
    for (const value of values) form.elements[name].append(el("option", { value, text: value }));
  }
  const params = new URLSearchParams(window.location.search);
  for (const key of FILTER_KEYS) if (params.has(key)) form.elements[key].value = params.get(key);
  form.addEventListener("submit", (event) => { event.preventDefault(); loadTimeline(); });
  form.addEventListener("reset", () => setTimeout(loadTimeline, 0));
}

function start() {
  takeToken();
  fillFilters();
  document.getElementById("older").addEventListener("click", loadOlder);
  document.getElementById("thread-close").addEventListener("click", closeThread);
  loadAgents();
  state.agentsTimer = setInterval(loadAgents, 5000);
  loadTimeline();
}

start();
