// futon's evidence page: timeline with filters, threads, conversations
// (a human's question → the session it started → the answer), agents online,
// live updates over Server-Sent Events. Plain DOM, no build step.
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
const SESSION_PAGE = 1000;  // a session's entries shown in a conversation (the newest)
const CLIP = 160;           // characters of an argument list or result in a step line

const state = {
  token: null,
  stream: null,
  seen: new Set(),     // entry ids in the timeline
  lastSeq: 0,          // the newest seq shown (the stream resumes after it)
  cursor: null,        // next page of older entries
  thread: null,        // {root, ids: Set, selected}
  conversation: null,  // {id, question, sessions: Set, loading, again}
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
  const talk = state.conversation;
  if (talk && (entry["evidence/in-reply-to"] === talk.question || talk.sessions.has(entry["evidence/session-id"]))) {
    refreshConversation();
  }
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

// ------------------------------------------------------------------ conversations
//
// A conversation is a chat line (a forum-post: a human's question over IRC or
// HTTP chat), the sessions started for it (their goal entry replies to the
// line: steps, refusals, hops, approvals and the conclusion, read by the
// session's id) and the answers (chat lines replying to it). It opens as
// #conversation=ID from any of its entries: the question, an answer, or any
// entry of the session (an approval's entries name the session, not the line).

function isChatLine(entry) {
  return Boolean(entry) && entry["evidence/type"] === "forum-post";
}

function entryPath(id, tail) {
  return "/api/alpha/evidence/" + encodeURIComponent(id) + (tail || "");
}

async function questionOf(id) {
  const chain = (await api(entryPath(id, "/chain"))).chain;
  // The nearest line up the reply chain that no agent or daemon said.
  for (let i = chain.length - 1; i >= 0; i--) {
    const speaker = (chain[i]["evidence/body"] || {}).speaker;
    if (isChatLine(chain[i]) && speaker !== "agent" && speaker !== "daemon") return chain[i];
  }
  if (isChatLine(chain[0])) return chain[0];
  const session = chain[chain.length - 1]["evidence/session-id"];
  if (!session) return null;
  const goals = await api("/api/alpha/evidence?" + new URLSearchParams({ "session-id": session, "claim-type": "goal", limit: "1" }));
  const asked = goals.entries.length ? goals.entries[0]["evidence/in-reply-to"] : null;
  if (!asked) return null;
  const entry = (await api(entryPath(asked))).entry;
  return isChatLine(entry) ? entry : null;
}

async function sessionEntries(sessionId) {
  const params = new URLSearchParams({ "session-id": sessionId, limit: String(SESSION_PAGE) });
  const page = await api("/api/alpha/evidence?" + params);
  return { entries: page.entries.slice().reverse(), more: Boolean(page.next_cursor) };
}

async function openConversation(id) {
  const talk = { id, question: null, sessions: new Set(), loading: true, again: false };
  const keep = state.conversation && state.conversation.id === id;
  state.conversation = talk;
  try {
    const question = await questionOf(id);
    if (state.conversation !== talk) return;  // another one was opened meanwhile
    if (!question) {
      notice(`${id} is not part of a conversation: no chat line starts it`);
      closeConversation();
      return;
    }
    const qid = question["evidence/id"];
    talk.question = qid;
    const thread = await api(entryPath(qid, "/thread"));
    const replies = thread.entries.filter((e) => e["evidence/in-reply-to"] === qid);
    const goals = replies.filter((e) => e["evidence/claim-type"] === "goal" && e["evidence/session-id"]);
    const answers = replies.filter(isChatLine);
    for (const goal of goals) talk.sessions.add(goal["evidence/session-id"]);
    const sessions = await Promise.all(goals.map((goal) => sessionEntries(goal["evidence/session-id"])));
    if (state.conversation !== talk) return;
    renderConversation(question, goals, sessions, answers, id);
    const panel = document.getElementById("conversation-panel");
    panel.hidden = false;
    if (!keep) panel.scrollIntoView({ block: "nearest" });
    notice("");
  } catch (error) {
    failed(error);
  } finally {
    talk.loading = false;
    if (talk.again && state.conversation === talk) openConversation(id);
  }
}

function refreshConversation() {
  const talk = state.conversation;
  if (!talk) return;
  if (talk.loading) talk.again = true;  // one more read when this one ends
  else openConversation(talk.id);
}

function closeConversation() {
  state.conversation = null;
  document.getElementById("conversation-panel").hidden = true;
  if (window.location.hash) window.history.replaceState(null, "", window.location.pathname + window.location.search);
}

function conversationFromHash() {
  const id = new URLSearchParams(window.location.hash.slice(1)).get("conversation");
  if (id) openConversation(id);
  else if (state.conversation) closeConversation();
}

function clip(text, limit) {
  return text.length > limit ? text.slice(0, limit) + "…" : text;
}

function argsText(args) {
  if (args === undefined || args === null) return "";
  if (Array.isArray(args)) return clip(args.map((a) => (typeof a === "string" ? a : JSON.stringify(a))).join(" "), CLIP);
  if (typeof args === "object") return clip(Object.entries(args).map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`).join(" "), CLIP);
  return clip(String(args), CLIP);
}

function resultText(result) {
  if (result === undefined || result === null) return "";
  if (typeof result === "string") return clip(result.split("\n")[0], CLIP / 2);
  if (Array.isArray(result)) return `${result.length} item(s)`;
  if (typeof result === "object") {
    if (result.code) return String(result.code);
    if ("exit" in result) return "exit " + result.exit;
  }
  return clip(JSON.stringify(result), CLIP / 2);
}

function stepKind(entry) {
  const claim = entry["evidence/claim-type"];
  const approval = (entry["evidence/tags"] || []).includes("approval");
  if (approval) return claim === "question" ? "approval-request" : "approval-decision";
  if (claim === "goal") return "goal";
  if (claim === "tension") return "refusal";
  if (claim === "conclusion") return "conclusion";
  if (entry["evidence/type"] === "mode-transition") return "hop";
  if (claim === "step") return "step";
  return claim || "entry";
}

// One line of a session, its parts as separate nodes: [label, extras…, text].
function stepLine(entry, kind) {
  const body = entry["evidence/body"] || {};
  switch (kind) {
    case "goal":
      return [`${body.agent || entry["evidence/author"]} starts in ${body.peripheral || "?"}`];
    case "step":
      if (body.tool === "say") return [`say to ${body.to}: ${clip(String(body.text || ""), CLIP)}`];
      return [`${body.tool} ${argsText(body.args)} → ${body.ok ? "ok" : "failed"}${resultText(body.result) ? ": " + resultText(body.result) : ""}`];
    case "refusal":
      return [`${body.tool} ${argsText(body.args)} refused: `, el("span", { class: "code", text: body.code }), ` — ${body.message || ""}`];
    case "hop":
      return [`${body.from} → ${body.to} (${body.exit_condition})${body.reason ? ": " + body.reason : ""}`];
    case "approval-request":
      return [`asks to ${body.what} (approval ${body.approval_id})`];
    case "approval-decision":
      return [`${body.outcome} by `, el("span", { class: "by", text: entry["evidence/author"] }), body.reason ? `: ${body.reason}` : ""];
    case "conclusion":
      return ["concluded: ", el("span", { class: "reason", text: body.reason || "?" })];
    default:
      return [summary(entry)];
  }
}

function stepItem(entry, selected) {
  const kind = stepKind(entry);
  const id = entry["evidence/id"];
  const line = el("span", { class: "line" });
  for (const piece of stepLine(entry, kind)) if (piece) line.append(piece);  // strings become text nodes
  return el("li", { class: `step kind-${kind}` + (id === selected ? " selected" : ""), data: { id, kind }, title: id },
    el("span", { class: "badge kind", text: kind }),
    el("time", { datetime: entry["evidence/at"], text: entry["evidence/at"] }),
    line);
}

function partHead(kind, entry, ...extra) {
  return el("div", { class: "part-head" },
    el("span", { class: "badge part-kind", text: kind }),
    el("span", { class: "author", text: entry["evidence/author"] }),
    el("time", { datetime: entry["evidence/at"], text: entry["evidence/at"] }),
    ...extra,
    el("span", { class: "eid", text: entry["evidence/id"] }));
}

function linePart(kind, entry, selected) {
  const body = entry["evidence/body"] || {};
  const where = [body.channel || subjectText(entry), body.transport, body.speaker].filter(Boolean).join(" · ");
  const id = entry["evidence/id"];
  return el("li", { class: `part ${kind}` + (id === selected ? " selected" : ""), data: { part: kind, id } },
    partHead(kind, entry, el("span", { class: "where", text: where })),
    el("div", { class: "text", text: summary(entry) }));
}

function sessionPart(goal, read, selected) {
  const body = goal["evidence/body"] || {};
  const sessionId = goal["evidence/session-id"];
  const conclusion = read.entries.find((e) => stepKind(e) === "conclusion");
  const status = conclusion ? "concluded: " + ((conclusion["evidence/body"] || {}).reason || "?") : "running";
  const steps = el("ol", { class: "steps" }, ...read.entries.map((e) => stepItem(e, selected)));
  return el("li", { class: "part session", data: { part: "session", id: goal["evidence/id"], session: sessionId } },
    partHead("session", goal,
      el("span", { class: "where", text: `${body.peripheral || "?"} · ${sessionId}` }),
      el("span", { class: "status", text: status })),
    read.more ? el("p", { class: "more", text: `only the newest ${SESSION_PAGE} entries are shown` }) : null,
    steps);
}

function renderConversation(question, goals, sessions, answers, selected) {
  const parts = [linePart("question", question, selected)];
  goals.forEach((goal, i) => parts.push(sessionPart(goal, sessions[i], selected)));
  if (!goals.length) parts.push(el("li", { class: "part-none", text: "no session was started for it" }));
  for (const answer of answers) parts.push(linePart("answer", answer, selected));
  if (!answers.length) parts.push(el("li", { class: "part-none", text: "no answer yet" }));
  document.getElementById("conversation").replaceChildren(...parts);
  document.getElementById("conversation-meta").textContent =
    `asked by ${question["evidence/author"]} · ${goals.length} session(s) · ${answers.length} answer(s)`;
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
  document.getElementById("thread-conversation").addEventListener("click", () => {
    if (state.thread) window.location.hash = "conversation=" + encodeURIComponent(state.thread.selected);
  });
  document.getElementById("conversation-close").addEventListener("click", closeConversation);
  window.addEventListener("hashchange", conversationFromHash);
  conversationFromHash();
  loadAgents();
  state.agentsTimer = setInterval(loadAgents, 5000);
  loadTimeline();
}

start();
