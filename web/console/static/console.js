// callrelay console: keeps the live pages current by polling their JSON while the tab is
// visible (nothing runs in a hidden tab), and asks before destructive forms. No build step.
"use strict";

(function () {
  const POLL_MS = 2000; // while something is live
  const IDLE_MS = 10000; // once a call has ended
  const ENDED_KEPT = 20;

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "class") node.className = value;
      else node.setAttribute(name, value);
    }
    for (const child of children) {
      if (child === null || child === undefined || child === "") continue;
      node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }

  const pill = (status) => el("span", { class: "pill s-" + status }, status);
  const clock = (at) => (at ? el("time", { datetime: at, title: at }, at.slice(11, 19)) : "");

  function legRow(leg, href) {
    const sid = el("td", { class: "sid" });
    if (leg.leg === "child") sid.append(el("span", { class: "branch" }, "└"));
    sid.append(href ? el("a", { href: href }, leg.call_sid) : leg.call_sid);
    const client = leg.sdk
      ? [el("span", { class: "badge sdk" }, "SDK"), " " + (leg.identity || "")]
      : [el("span", { class: "muted" }, "phone / other")];
    return el("tr", { class: "leg-" + leg.leg + (leg.ended ? " is-ended" : ""), "data-leg": leg.call_sid },
      sid, el("td", null, leg.leg), el("td", null, pill(leg.status)), el("td", null, ...client),
      el("td", { class: "addr" }, leg.from || ""), el("td", { class: "addr" }, leg.to || ""),
      el("td", { class: "muted col-dir" }, leg.direction || ""), el("td", null, clock(leg.updated_at)));
  }

  function callBody(call, base) {
    const href = base ? base + encodeURIComponent(call.call_sid) : null;
    const body = el("tbody", { class: "call", "data-call": call.call_sid },
      ...call.legs.map((leg) => legRow(leg, href)));
    body.dataset.sig = JSON.stringify(call);
    return body;
  }

  function messageItem(m) {
    const toSdk = m.direction === "to_sdk";
    const item = el("li", { class: "msg " + m.direction, "data-sid": m.sid || "" },
      el("span", { class: "dir" }, toSdk ? "→ to SDK" : "← from SDK"), clock(m.at), pill(m.status),
      el("span", { class: "sid" }, m.sid || ""),
      el("span", { class: "on-leg" }, (m.leg || "leg") + " " + (m.call_sid || "")
        + (m.identity ? " · " + m.identity : "")));
    if (m.idempotency_key) item.append(el("span", { class: "muted small" }, "key " + m.idempotency_key));
    if (m.size !== undefined && m.size !== null) item.append(el("span", { class: "muted small" }, m.size + " chars"));
    if (m.error) {
      item.append(el("span", { class: "err" }, m.error.code + (m.error.message ? ": " + m.error.message : "")));
    }
    if (m.content_text !== undefined && m.content_text !== null) item.append(el("pre", null, m.content_text));
    return item;
  }

  function setStatus(node, state, text) {
    if (!node) return;
    node.dataset.state = state;
    node.textContent = text;
  }

  function loginURL() {
    return "/console/login?next=" + encodeURIComponent(location.pathname + location.search);
  }

  // Fetches url() now and then, hands the JSON to onData (which answers "idle" to slow down);
  // stops while the tab is hidden. Answers that arrive after a newer request are dropped.
  function poller(url, onData, status) {
    let timer = null;
    let delay = POLL_MS;
    let latest = 0;

    async function tick() {
      clearTimeout(timer);
      timer = null;
      if (document.visibilityState !== "visible") {
        setStatus(status, "paused", "paused while this tab is hidden");
        return;
      }
      const mine = ++latest;
      const target = url();
      try {
        const answer = await fetch(target, { headers: { Accept: "application/json" }, cache: "no-store" });
        if (answer.status === 401) {
          location.assign(loginURL());
          return;
        }
        if (!answer.ok) throw new Error("HTTP " + answer.status);
        const data = await answer.json();
        if (mine !== latest) return;
        delay = onData(data, target) === "idle" ? IDLE_MS : POLL_MS;
        setStatus(status, "live", "live · updated " + data.now.slice(11, 19) + " UTC");
      } catch (err) {
        if (mine !== latest) return;
        delay = POLL_MS * 2;
        setStatus(status, "lost", "connection lost (" + err.message + "), retrying…");
      }
      if (!timer) timer = setTimeout(tick, delay);
    }

    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible") tick();
      else setStatus(status, "paused", "paused while this tab is hidden");
    });
    return { now: tick, start: () => { timer = setTimeout(tick, POLL_MS); } };
  }

  function callsPage(table) {
    const filter = document.getElementById("filter");
    const count = document.getElementById("call-count");
    const empty = document.getElementById("no-calls");
    const endedSection = document.getElementById("ended-section");
    const ended = document.getElementById("ended");
    const base = table.dataset.callBase;
    const query = () => filter.value.trim();
    let order = [...table.tBodies].map((body) => body.dataset.call);
    let lastQuery = query();

    async function showEnded(sid) {
      const answer = await fetch(table.dataset.src + "/" + encodeURIComponent(sid), { cache: "no-store" });
      if (!answer.ok) return; // forgotten already (LEG_RETENTION_S), or the session ended
      const data = await answer.json();
      if (!data.call.ended) return; // still live: only out of the page's CALLS_SHOWN
      ended.querySelector("thead").after(callBody(data.call, base));
      while (ended.tBodies.length > ENDED_KEPT) ended.tBodies[ended.tBodies.length - 1].remove();
      endedSection.hidden = false;
    }

    function render(data, target) {
      const q = new URL(target, location.href).searchParams.get("q") || "";
      const calls = new Map(data.calls.map((call) => [call.call_sid, call]));
      if (q === lastQuery) {
        for (const sid of order) if (!calls.has(sid)) showEnded(sid);
      }
      lastQuery = q;
      const kept = order.filter((sid) => calls.has(sid));
      const fresh = data.calls.map((call) => call.call_sid).filter((sid) => !kept.includes(sid));
      const next = [...fresh, ...kept];
      const current = new Map([...table.tBodies].map((body) => [body.dataset.call, body]));
      const sameOrder = next.length === order.length && next.every((sid, i) => sid === order[i]);
      for (const sid of next) {
        const old = current.get(sid);
        const call = calls.get(sid);
        if (!old || old.dataset.sig !== JSON.stringify(call)) {
          const body = callBody(call, base);
          if (old) old.replaceWith(body);
          else table.append(body);
          current.set(sid, body);
        }
      }
      for (const [sid, body] of current) if (!calls.has(sid)) body.remove();
      if (!sameOrder) for (const sid of next) table.append(current.get(sid));
      order = next;
      count.textContent = next.length + (data.more ? "+" : "");
      document.getElementById("more-calls").hidden = !data.more;
      empty.hidden = next.length > 0;
      return "busy";
    }

    const poll = poller(() => table.dataset.src + (query() ? "?q=" + encodeURIComponent(query()) : ""),
      render, document.getElementById("live-status"));
    let typing = null;
    filter.addEventListener("input", () => {
      clearTimeout(typing);
      typing = setTimeout(() => {
        const url = new URL(location.href);
        if (query()) url.searchParams.set("q", query());
        else url.searchParams.delete("q");
        history.replaceState(null, "", url);
        poll.now();
      }, 250);
    });
    poll.start();
  }

  function callPage(table) {
    const state = document.getElementById("call-state");
    const timeline = document.getElementById("timeline");
    const noMessages = document.getElementById("no-messages");
    let shownMessages = "";

    function render(data) {
      const call = data.call;
      const body = callBody(call, null);
      if (table.tBodies[0].dataset.sig !== body.dataset.sig) table.tBodies[0].replaceWith(body);
      state.replaceChildren(pill(call.live ? "live" : call.ended ? "ended" : "not-live"));
      if (Array.isArray(data.messages)) {
        const sig = JSON.stringify(data.messages);
        if (sig !== shownMessages) {
          timeline.replaceChildren(...data.messages.map(messageItem));
          shownMessages = sig;
        }
        noMessages.hidden = data.messages.length > 0;
      }
      return call.ended ? "idle" : "busy";
    }

    poller(() => table.dataset.src, render, document.getElementById("live-status")).start();
  }

  document.addEventListener("submit", (event) => {
    const form = event.target;
    if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) event.preventDefault();
  });

  document.addEventListener("DOMContentLoaded", () => {
    const calls = document.getElementById("calls");
    if (calls) callsPage(calls);
    const legs = document.getElementById("legs");
    if (legs) callPage(legs);
  });
})();
