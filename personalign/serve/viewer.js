// The trace viewer. Safe by construction: every stored string (user ids, item texts, answers) reaches the page
// only as a text node (textContent / createTextNode), never as HTML or as code; handlers are attached with
// addEventListener. The page's Content-Security-Policy allows this file as the only script.
// The tenant key lives in this closure only: never in sessionStorage/localStorage, and a #key=... in the URL is
// removed from the address bar once read. Everything is fetched from this service; nothing leaves the page.
"use strict";
(() => {
  let key = "";

  function el(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  }

  function table(headers, rows) {
    const t = el("table"), head = el("tr");
    headers.forEach(h => head.appendChild(el("th", h)));
    t.appendChild(head);
    rows.forEach(cells => {
      const tr = el("tr");
      cells.forEach(cell => {
        const td = el("td");
        (Array.isArray(cell) ? cell : [cell]).forEach(part => td.appendChild(part instanceof Node ? part : document.createTextNode(String(part ?? ""))));
        tr.appendChild(td);
      });
      t.appendChild(tr);
    });
    return t;
  }

  async function api(path) {
    const r = await fetch(path, {headers: {"Authorization": "Bearer " + key}});
    const body = await r.json();
    if (!r.ok) throw new Error(body.error ? body.error.message : String(r.status));
    return body;
  }

  async function loadUsers() {
    const box = document.getElementById("users");
    try {
      const {users} = await api("/v1/users");
      box.replaceChildren(el("h2", "Users"));
      if (!users.length) box.appendChild(el("p", "no users yet", "muted"));
      users.forEach(u => {
        const link = el("button", u.user, "user");
        link.type = "button";
        link.dataset.user = u.user;
        link.addEventListener("click", () => loadUser(u.user));
        box.append(link, el("span", `${u.items} items`, "muted"));
      });
    } catch (e) { box.replaceChildren(el("p", "error: " + e.message)); }
  }

  async function loadUser(user) {
    const detail = document.getElementById("detail");
    try {
      const u = encodeURIComponent(user);
      const [{items}, {answers}] = await Promise.all([api(`/v1/users/${u}/history`), api(`/v1/users/${u}/answers`)]);
      const byId = new Map(items.map(i => [i.id, i.text]));
      const retrieved = ids => (ids || []).flatMap((id, n) => (n ? [el("hr")] : []).concat([document.createTextNode(byId.has(id) ? byId.get(id) : id)]));
      const final = a => a.fallback ? [a.final, el("div", "fallback: " + a.fallback, "muted")] : [a.final];
      detail.replaceChildren(
        el("h2", `${user}: history`),
        table(["id", "text", "added"], items.map(i => [i.id, i.text, i.created_at])),
        el("h2", `${user}: recent answers`),
        table(["query", "base answer", "retrieved", "thinking", "final answer"],
              answers.map(a => [a.query, a.base_answer, retrieved(a.retrieved_ids), a.thinking, final(a)])));
    } catch (e) { detail.replaceChildren(el("p", "error: " + e.message)); }
  }

  function start() {
    const input = document.getElementById("key");
    document.getElementById("login").addEventListener("submit", event => {
      event.preventDefault();
      key = input.value;
      input.value = "";  // the key stays in this closure only
      loadUsers();
    });
    // #key=...&user=... opens a user's traces directly (bookmarks, headless screenshots); the hash is then cleared
    const params = new URLSearchParams(location.hash.slice(1));
    if (params.get("key")) {
      key = params.get("key");
      history.replaceState(null, "", location.pathname);
      loadUsers();
      if (params.get("user")) loadUser(params.get("user"));
    }
  }

  start();  // deferred: the document is parsed
})();
