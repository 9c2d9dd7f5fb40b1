// The chat page of `pim-chat serve`. No framework and no external script: the Content-Security-
// Policy allows only this file. Every piece of untrusted text (names, justifications, the
// model's words) is inserted with textContent, never as HTML.
//
// Sign-in is the platform's (App Service / Container Apps authentication): the browser's
// session cookie reaches the platform, which hands the app the token. The page itself holds no
// token and needs no client library.
"use strict";

const $ = (id) => document.getElementById(id);
let sessionId = sessionStorage.getItem("pim-session");

function call(method, path, body) {
  return fetch(path, {
    method,
    credentials: "same-origin",
    headers: body ? { "Content-Type": "application/json", Accept: "application/json" } : { Accept: "application/json" },
    body: body ? JSON.stringify(body) : undefined,
  });
}

// The platform's ID token lives about an hour, its sign-in session longer: when the server
// refuses the token, ask the platform to refresh its token store (/.auth/refresh, App Service
// and Container Apps authentication) and send the request once more. Without the platform
// (a local run) the refresh fails and the refusal stands.
async function refreshed() {
  try {
    const r = await fetch("/.auth/refresh", { credentials: "same-origin" });
    return r.ok;
  } catch (e) {
    return false;
  }
}

async function api(method, path, body) {
  let response = await call(method, path, body);
  if (response.status === 401 && (await refreshed())) response = await call(method, path, body);
  let data = null;
  const type = response.headers.get("Content-Type") || "";
  if (type.includes("application/json")) data = await response.json();
  return { status: response.status, data, retryAfter: response.headers.get("Retry-After") };
}

function explain(r) {
  if (r.status === 401) return "Your sign-in has expired or is missing: sign in again (/.auth/login/aad), then reload this page.";
  if (r.status === 403) return (r.data && r.data.error) || "Your account lacks the app role this agent requires.";
  if (r.status === 429 && r.retryAfter) return "Too many messages: wait " + r.retryAfter + " s and send again.";
  return (r.data && r.data.error) || "The request failed (HTTP " + r.status + ").";
}

function say(role, text, kql) {
  const li = document.createElement("li");
  li.className = role;
  li.textContent = text;
  if (kql) {
    const details = document.createElement("details");
    const summary = document.createElement("summary");
    summary.textContent = "Show KQL";
    const pre = document.createElement("pre");
    pre.textContent = kql;
    details.append(summary, pre);
    li.append(details);
  }
  $("messages").append(li);
  li.scrollIntoView({ block: "end" });
}

function badge(kind, value) {
  const span = document.createElement("span");
  const word = String(value || "unknown");
  span.className = "badge " + kind + "-" + word.replace(/[^a-z_]/g, "");
  span.textContent = word.replace(/_/g, " ");
  return span;
}

function cell(row, content) {
  const td = document.createElement("td");
  if (content instanceof Node) td.append(content); else td.textContent = content == null ? "" : String(content);
  row.append(td);
}

// The activations of the last scan, by id: a follow-up ("what did 2 do", "assess them")
// answers about some of them, which are then marked in the scan's table instead of replacing it.
let listed = new Map();

function showActivations(list, isScan) {
  if (!isScan && list.length && list.every((a) => listed.has(a.id))) {
    for (const [id, tr] of listed) tr.classList.toggle("focus", list.some((a) => a.id === id));
    const first = listed.get(list[0].id);
    if (first) first.scrollIntoView({ block: "nearest" });
    return;
  }
  const rows = $("rows");
  rows.replaceChildren();
  listed = new Map();
  for (const a of list) {
    const tr = document.createElement("tr");
    if (a.id) listed.set(a.id, tr);
    const p = a.principal || {};
    cell(tr, (a.activated_at || "").replace("T", " ").replace(/:\d\d(\.\d+)?Z$/, "Z"));
    cell(tr, p.upn || p.display_name || p.object_id || "unknown");
    cell(tr, a.role && a.role.name);
    cell(tr, a.justification);
    cell(tr, badge("verdict", a.assessment && a.assessment.verdict));
    cell(tr, badge("risk", a.assessment && a.assessment.risk));
    rows.append(tr);
  }
  $("activations").hidden = false;
  $("dl-md").href = "/api/sessions/" + encodeURIComponent(sessionId) + "/report.md";
  $("dl-json").href = "/api/sessions/" + encodeURIComponent(sessionId) + "/report.json";
  $("downloads").hidden = false;
}

async function ensureSession() {
  if (sessionId) {
    const r = await api("GET", "/api/sessions/" + encodeURIComponent(sessionId));
    if (r.status === 200) {
      for (const m of r.data.messages) say(m.role, m.text);
      return true;
    }
    if (r.status !== 404) { say("error", explain(r)); return false; }
  }
  const r = await api("POST", "/api/sessions");
  if (r.status !== 201) { say("error", explain(r)); return false; }
  sessionId = r.data.id;
  sessionStorage.setItem("pim-session", sessionId);
  say("agent", "Type `scan` to list elevated identities, then ask about one of them (\"what did 2 do\", \"assess 2\").");
  return true;
}

async function send(text) {
  say("user", text);
  $("send").disabled = true;
  $("status").textContent = "Working…";
  try {
    let r = await api("POST", "/api/sessions/" + encodeURIComponent(sessionId) + "/messages", { text });
    if (r.status === 404 && (await ensureSession())) {
      r = await api("POST", "/api/sessions/" + encodeURIComponent(sessionId) + "/messages", { text });
    }
    if (r.status !== 200) { say("error", explain(r)); return; }
    say("agent", r.data.reply, r.data.kql);
    if (Array.isArray(r.data.activations) && r.data.activations.length) showActivations(r.data.activations, /^\s*scan\b/i.test(text));
  } catch (e) {
    say("error", "The agent could not be reached.");
  } finally {
    $("send").disabled = false;
    $("status").textContent = "";
  }
}

document.addEventListener("DOMContentLoaded", async () => {
  await ensureSession();
  $("ask").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = $("text").value.trim();
    if (!text) return;
    $("text").value = "";
    send(text);
  });
  $("text").focus();
});
