// The staff console: pages over the HTTP API, with the staff user's token.
// It holds no business rule: what may change is what the API accepts (its
// 4xx answers are shown as they come), except which order and payment
// status buttons to offer, which mirrors the state machine for staff.
// Preact, its hooks and htm come as the globals of their UMD builds
// (index.html): no import map, which the page's CSP (nothing inline) forbids.
const { h, render } = window.preact;
const { useEffect, useState } = window.preactHooks;
const html = window.htm.bind(h);

// ---- the API -----------------------------------------------------------

const store = window.sessionStorage;

function session() {
  const s = store.getItem("bk-console");
  return s ? JSON.parse(s) : null;
}

async function api(method, path, body) {
  const s = session();
  const headers = { "Accept": "application/json" };
  if (s) headers["Authorization"] = `Bearer ${s.access}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  if (r.status === 401 && s && (await refreshed(s))) {
    headers["Authorization"] = `Bearer ${session().access}`;
    r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  }
  const text = await r.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (e) { data = { detail: text }; }
  return { status: r.status, ok: r.ok, data };
}

// An expired access token: one rotation with the refresh token.
async function refreshed(s) {
  const r = await fetch("/api/auth/token/refresh/", {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ refresh: s.refresh }),
  });
  if (!r.ok) { store.removeItem("bk-console"); return false; }
  const t = await r.json();
  store.setItem("bk-console", JSON.stringify({ ...s, access: t.access, refresh: t.refresh }));
  return true;
}

// What a refusal says, in one line: {"detail"} or {"field": ["..."]}.
function problem(res) {
  const d = res.data;
  if (!d) return `Error ${res.status}`;
  if (typeof d.detail === "string") return d.detail;
  return Object.entries(d).map(([k, v]) => `${k}: ${[].concat(v).join(" ")}`).join("; ");
}

function qs(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== "" && v !== null && v !== undefined) q.set(k, v);
  const s = q.toString();
  return s ? `?${s}` : "";
}

// ---- routing: #/users/7 ----------------------------------------------------

function useRoute() {
  const [hash, setHash] = useState(location.hash || "#/users");
  useEffect(() => {
    const on = () => setHash(location.hash || "#/users");
    window.addEventListener("hashchange", on);
    return () => window.removeEventListener("hashchange", on);
  }, []);
  return hash.slice(2).split("/");
}

function go(path) { location.hash = `#/${path}`; }

// ---- small parts -------------------------------------------------------------

function Message({ msg }) {
  if (!msg) return null;
  return html`<div class="message ${msg.ok ? "ok" : "error"}" role=${msg.ok ? "status" : "alert"}
                   id="message">${msg.text}</div>`;
}

function Pager({ page, data, onPage }) {
  if (!data) return null;
  return html`<div class="pager">
    <button class="secondary" disabled=${!data.previous} onClick=${() => onPage(page - 1)}>‹ Previous</button>
    <span>page ${page} · ${data.count} in all</span>
    <button class="secondary" disabled=${!data.next} onClick=${() => onPage(page + 1)}>Next ›</button>
  </div>`;
}

function Json({ value }) {
  if (value === null || value === undefined) return html`<span>—</span>`;
  return html`<pre class="json">${JSON.stringify(value, null, 1)}</pre>`;
}

// A list page's state: the filters, the page, the rows; reloads when they change.
function useList(path, initial) {
  const [filters, setFilters] = useState(initial);
  const [page, setPage] = useState(1);
  const [res, setRes] = useState(null);
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let live = true;
    api("GET", path + qs({ ...filters, page })).then((r) => live && setRes(r));
    return () => { live = false; };
  }, [path, JSON.stringify(filters), page, tick]);
  const set = (k) => (e) => { setPage(1); setFilters({ ...filters, [k]: e.target.value }); };
  return { filters, set, page, setPage, res, reload: () => setTick(tick + 1) };
}

// CSV of every row the filters select (the API's pages, 100 at a time, at
// most 100 pages), downloaded by the browser.
async function exportCsv(path, filters, columns, name) {
  const rows = [];
  for (let page = 1; page <= 100; page++) {
    const r = await api("GET", path + qs({ ...filters, page, page_size: 100 }));
    if (!r.ok) break;
    rows.push(...r.data.results);
    if (!r.data.next) break;
  }
  const cell = (v) => {
    const s = v === null || v === undefined ? "" : typeof v === "object" ? JSON.stringify(v) : String(v);
    return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
  };
  const text = [columns.join(","), ...rows.map((row) => columns.map((c) => cell(row[c])).join(","))].join("\r\n");
  const a = document.createElement("a");
  a.href = URL.createObjectURL(new Blob([text + "\r\n"], { type: "text/csv" }));
  a.download = `${name}.csv`;
  a.id = "csv-link";
  a.dataset.rows = String(rows.length);
  document.body.appendChild(a);
  a.click();
  setTimeout(() => { URL.revokeObjectURL(a.href); a.remove(); }, 5000);
}

function CsvButton({ path, filters, columns, name }) {
  return html`<button class="secondary narrow" id="export-csv"
                      onClick=${() => exportCsv(path, filters, columns, name)}>Export CSV</button>`;
}

function ListError({ res }) {
  return res && !res.ok ? html`<${Message} msg=${{ text: problem(res) }} />` : null;
}

function Select({ label, value, onChange, options, name }) {
  return html`<label>${label}
    <select name=${name} value=${value} onChange=${onChange}>
      ${options.map(([v, t]) => html`<option value=${v}>${t}</option>`)}
    </select></label>`;
}

function Field({ label, value, onInput, name, type = "text", placeholder }) {
  return html`<label>${label}
    <input type=${type} name=${name} value=${value} placeholder=${placeholder} onInput=${onInput} /></label>`;
}

const ROLES = ["member", "student", "alumni", "faculty", "teacher"];

// ---- login ----------------------------------------------------------------

function Login({ onLogin, initialMsg }) {
  const [username, setUsername] = useState("");
  const [password, setPassword] = useState("");
  const [msg, setMsg] = useState(initialMsg);
  const submit = async (e) => {
    e.preventDefault();
    const r = await api("POST", "/api/auth/login/", { username, password });
    if (!r.ok) return setMsg({ text: problem(r) });
    if (!r.data.user.is_staff) {
      // the token is not kept: this console is for staff only
      await fetch("/api/auth/logout/", {
        method: "POST",
        headers: { "Content-Type": "application/json", "Authorization": `Bearer ${r.data.access}` },
        body: JSON.stringify({ refresh: r.data.refresh }),
      });
      return setMsg({ text: `${r.data.user.username} is not a staff member: this console is for staff only.` });
    }
    store.setItem("bk-console", JSON.stringify({ access: r.data.access, refresh: r.data.refresh, user: r.data.user }));
    onLogin();
  };
  return html`<article class="login">
    <h2>Staff console</h2>
    <${Message} msg=${msg} />
    <form onSubmit=${submit} id="login">
      <${Field} label="Username" name="username" value=${username} onInput=${(e) => setUsername(e.target.value)} />
      <${Field} label="Password" name="password" type="password" value=${password}
                onInput=${(e) => setPassword(e.target.value)} />
      <button type="submit">Log in</button>
    </form>
  </article>`;
}

// ---- users ----------------------------------------------------------------

function Users() {
  const l = useList("/api/admin/users/", { search: "", role: "", is_staff: "", is_active: "", ordering: "id" });
  const rows = l.res && l.res.ok ? l.res.data.results : [];
  return html`<section>
    <h2>Users</h2>
    <div class="filters">
      <${Field} label="Search" name="search" placeholder="username, email, names" value=${l.filters.search}
                onInput=${l.set("search")} />
      <${Select} label="Role" name="role" value=${l.filters.role} onChange=${l.set("role")}
                 options=${[["", "any"], ...ROLES.map((r) => [r, r])]} />
      <${Select} label="Staff" name="is_staff" value=${l.filters.is_staff} onChange=${l.set("is_staff")}
                 options=${[["", "any"], ["true", "yes"], ["false", "no"]]} />
      <${Select} label="Active" name="is_active" value=${l.filters.is_active} onChange=${l.set("is_active")}
                 options=${[["", "any"], ["true", "yes"], ["false", "no"]]} />
      <${Select} label="Order by" name="ordering" value=${l.filters.ordering} onChange=${l.set("ordering")}
                 options=${[["id", "id"], ["-id", "newest"], ["username", "username"], ["email", "email"],
                            ["-date_joined", "joined (newest)"], ["-last_login", "last login"]]} />
      <${CsvButton} path="/api/admin/users/" filters=${l.filters} name="users"
                    columns=${["id", "username", "email", "first_name", "last_name", "role", "is_staff",
                               "is_active", "date_joined", "last_login"]} />
    </div>
    <${ListError} res=${l.res} />
    <table id="users" class="striped"><thead><tr>
      <th>id</th><th>username</th><th>email</th><th>name</th><th>role</th><th>staff</th><th>active</th><th>joined</th>
    </tr></thead><tbody>
      ${rows.map((u) => html`<tr key=${u.id}>
        <td>${u.id}</td><td><a href="#/users/${u.id}">${u.username}</a></td><td>${u.email}</td>
        <td>${u.first_name} ${u.last_name}</td><td>${u.role}</td><td>${u.is_staff ? "yes" : "no"}</td>
        <td>${u.is_active ? "yes" : "no"}</td><td>${(u.date_joined || "").slice(0, 10)}</td></tr>`)}
    </tbody></table>
    <${Pager} page=${l.page} data=${l.res && l.res.ok ? l.res.data : null} onPage=${l.setPage} />
  </section>`;
}

function UserDetail({ id }) {
  const [user, setUser] = useState(null);
  const [profile, setProfile] = useState(null);
  const [orders, setOrders] = useState(null);
  const [msg, setMsg] = useState(null);
  const [tick, setTick] = useState(0);
  useEffect(() => {
    api("GET", `/api/admin/users/${id}/`).then((r) => setUser(r));
    api("GET", `/api/users/${id}/`).then((r) => setProfile(r.ok ? r.data : null));
    api("GET", `/api/orders/${qs({ all: 1, user: id, page_size: 100 })}`).then((r) => setOrders(r.ok ? r.data : null));
  }, [id, tick]);
  if (!user) return html`<p aria-busy="true">Loading…</p>`;
  if (!user.ok) return html`<${Message} msg=${{ text: problem(user) }} />`;
  const u = user.data;
  const act = async (label, method, path, body) => {
    const r = await api(method, path, body);
    setMsg(r.ok ? { ok: true, text: `${label}: done.` } : { text: problem(r) });
    if (r.ok && method === "DELETE" && path.startsWith("/api/admin/users/")) return go("users");
    setTick(tick + 1);
  };
  const patch = (body, label) => act(label, "PATCH", `/api/admin/users/${id}/`, body);
  return html`<section>
    <p><a href="#/users">‹ Users</a></p>
    <h2 id="user-title">${u.username} <small>#${u.id}</small></h2>
    <${Message} msg=${msg} />
    <div class="grid">
      <article>
        <dl>
          <dt>Email</dt><dd>${u.email}</dd>
          <dt>Name</dt><dd>${u.first_name} ${u.last_name}</dd>
          <dt>Joined</dt><dd>${u.date_joined}</dd>
          <dt>Role</dt><dd id="user-role">${u.role}</dd>
          <dt>Staff</dt><dd id="user-staff">${u.is_staff ? "yes" : "no"}</dd>
          <dt>Active</dt><dd id="user-active">${u.is_active ? "yes" : "no"}</dd>
        </dl>
      </article>
      <article>
        <h4>Actions</h4>
        <${Select} label="Role" name="role" value=${u.role}
                   onChange=${(e) => patch({ role: e.target.value }, "Role changed")}
                   options=${ROLES.map((r) => [r, r])} />
        <div class="actions">
          <button id="toggle-staff" onClick=${() => patch({ is_staff: !u.is_staff }, u.is_staff ? "Staff removed" : "Made staff")}>
            ${u.is_staff ? "Remove staff" : "Make staff"}</button>
          <button id="toggle-active" class="secondary"
                  onClick=${() => patch({ is_active: !u.is_active }, u.is_active ? "Deactivated" : "Activated")}>
            ${u.is_active ? "Deactivate" : "Activate"}</button>
          <button id="logout-everywhere" class="secondary"
                  onClick=${() => act("Logged out everywhere", "POST", `/api/admin/users/${id}/logout/`)}>
            Log out everywhere</button>
          <button id="delete-user" class="contrast"
                  onClick=${() => confirm(`Delete ${u.username} and everything they own?`) &&
                    act("Deleted", "DELETE", `/api/admin/users/${id}/`)}>Delete</button>
        </div>
      </article>
    </div>
    ${profile && html`<${Profile} profile=${profile} onChange=${() => setTick(tick + 1)} setMsg=${setMsg} />`}
    <h3>Orders</h3>
    <${OrderTable} rows=${orders ? orders.results : []} />
    <h3>History</h3>
    <${AuditTable} query=${{ object_type: "user", object_id: id }} tick=${tick} />
  </section>`;
}

// The profile with its items, which staff may edit and delete.
function Profile({ profile: p, onChange, setMsg }) {
  const items = [
    ["educations", "education", ["degree", "institution", "start_year", "end_year"]],
    ["certificates", "certificate", ["title", "issuer", "date", "link"]],
    ["achievements", "achievement", ["title", "description", "date"]],
  ];
  const edit = async (path, fields, row) => {
    const body = {};
    for (const f of fields) {
      const v = prompt(`${f}:`, row[f] === null || row[f] === undefined ? "" : String(row[f]));
      if (v === null) return;
      if (String(row[f] ?? "") !== v) body[f] = v === "" && /year|date/.test(f) ? null : v;
    }
    const r = await api("PATCH", `/api/${path}/${row.id}/`, body);
    setMsg(r.ok ? { ok: true, text: "Saved." } : { text: problem(r) });
    onChange();
  };
  const del = async (path, row) => {
    if (!confirm(`Delete this ${path.slice(0, -1)}?`)) return;
    const r = await api("DELETE", `/api/${path}/${row.id}/`);
    setMsg(r.ok ? { ok: true, text: "Deleted." } : { text: problem(r) });
    onChange();
  };
  return html`<article id="profile">
    <h3>Profile</h3>
    <div class="grid">
      <dl>
        <dt>About</dt><dd>${p.about || "—"}</dd>
        <dt>Designation</dt><dd>${p.designation || "—"} ${p.company ? `at ${p.company}` : ""}</dd>
        <dt>Phone, address</dt><dd>${p.phone_no || "—"}, ${p.address || "—"}</dd>
        <dt>Links</dt><dd>${p.linkedin || "—"} ${p.github || ""}</dd>
      </dl>
      <dl>
        <dt>Picture</dt><dd>${p.profile_picture ? html`<img src=${p.profile_picture} alt="picture" class="picture" />` : "—"}</dd>
        <dt>Followers / following</dt><dd id="follow-counts">${p.followers_count} / ${p.following_count}</dd>
        <dt>Resume</dt><dd>${p.resume && p.resume.file ? html`<a href=${p.resume.file}>PDF</a>` : "—"}</dd>
      </dl>
    </div>
    ${items.map(([path, name, fields]) => html`
      <h4>${path[0].toUpperCase() + path.slice(1)}</h4>
      <table id=${path}><thead><tr>${fields.map((f) => html`<th>${f}</th>`)}<th></th></tr></thead><tbody>
        ${(p[path] || []).map((row) => html`<tr>
          ${fields.map((f) => html`<td>${row[f] ?? "—"}</td>`)}
          <td class="actions">
            <button class="secondary" onClick=${() => edit(path, fields, row)}>Edit</button>
            <button class="contrast" onClick=${() => del(path, row)}>Delete</button>
          </td></tr>`)}
      </tbody></table>`)}
  </article>`;
}

// ---- orders and payments ------------------------------------------------------

// The changes the state machine allows staff (CONTRACT: ship a paid order,
// deliver a shipped one, cancel an unpaid one); the API decides anyway.
function orderMoves(o) {
  const paid = o.payment && o.payment.status === "completed";
  if (o.status === "pending" && paid) return [["shipped", "Ship"]];
  if (o.status === "pending") return [["cancelled", "Cancel"]];
  if (o.status === "shipped") return [["delivered", "Deliver"]];
  return [];
}

function paymentMoves(p) {
  if (p.status === "pending") return [["completed", "Complete"], ["failed", "Fail"]];
  if (p.status === "failed") return [["pending", "Retry"]];
  return [];
}

function OrderTable({ rows }) {
  return html`<table class="striped orders"><thead><tr>
    <th>id</th><th>user</th><th>product</th><th>qty</th><th>total</th><th>status</th><th>payment</th><th>date</th>
  </tr></thead><tbody>
    ${rows.map((o) => html`<tr key=${o.id}>
      <td><a href="#/orders/${o.id}">${o.id}</a></td><td><a href="#/users/${o.user}">${o.user}</a></td>
      <td>${o.product_name}</td><td>${o.quantity}</td><td>${o.total}</td><td>${o.status}</td>
      <td>${o.payment ? o.payment.status : "—"}</td><td>${(o.order_date || "").slice(0, 16)}</td></tr>`)}
  </tbody></table>`;
}

function DateRange({ l, field }) {
  return html`
    <${Field} label="From" type="date" name="${field}__gte" value=${l.filters[`${field}__gte`]} onInput=${l.set(`${field}__gte`)} />
    <${Field} label="To" type="date" name="${field}__lte" value=${l.filters[`${field}__lte`]} onInput=${l.set(`${field}__lte`)} />`;
}

function Orders() {
  const l = useList("/api/orders/", { all: 1, status: "", user: "", order_date__gte: "", order_date__lte: "",
                                      ordering: "-order_date" });
  return html`<section>
    <h2>Orders</h2>
    <div class="filters">
      <${Select} label="Status" name="status" value=${l.filters.status} onChange=${l.set("status")}
                 options=${[["", "any"], ["pending", "pending"], ["shipped", "shipped"], ["delivered", "delivered"],
                            ["cancelled", "cancelled"]]} />
      <${Field} label="User id" name="user" value=${l.filters.user} onInput=${l.set("user")} />
      <${DateRange} l=${l} field="order_date" />
      <${Select} label="Order by" name="ordering" value=${l.filters.ordering} onChange=${l.set("ordering")}
                 options=${[["-order_date", "newest"], ["order_date", "oldest"], ["-total", "total (high)"],
                            ["total", "total (low)"]]} />
      <${CsvButton} path="/api/orders/" filters=${l.filters} name="orders"
                    columns=${["id", "user", "product_name", "quantity", "price", "total", "status", "order_date",
                               "payment"]} />
    </div>
    <${ListError} res=${l.res} />
    <${OrderTable} rows=${l.res && l.res.ok ? l.res.data.results : []} />
    <${Pager} page=${l.page} data=${l.res && l.res.ok ? l.res.data : null} onPage=${l.setPage} />
  </section>`;
}

function OrderDetail({ id }) {
  const [order, setOrder] = useState(null);
  const [msg, setMsg] = useState(null);
  const [tick, setTick] = useState(0);
  useEffect(() => { api("GET", `/api/orders/${id}/`).then(setOrder); }, [id, tick]);
  if (!order) return html`<p aria-busy="true">Loading…</p>`;
  if (!order.ok) return html`<${Message} msg=${{ text: problem(order) }} />`;
  const o = order.data;
  const move = async (path, status) => {
    const r = await api("PATCH", path, { status });
    setMsg(r.ok ? { ok: true, text: `Status: ${status}.` } : { text: problem(r) });
    setTick(tick + 1);
  };
  return html`<section>
    <p><a href="#/orders">‹ Orders</a></p>
    <h2 id="order-title">Order #${o.id} <small id="order-status">${o.status}</small></h2>
    <${Message} msg=${msg} />
    <div class="grid">
      <article><dl>
        <dt>User</dt><dd><a href="#/users/${o.user}">#${o.user}</a></dd>
        <dt>Product</dt><dd>${o.product_name} × ${o.quantity} at ${o.price}</dd>
        <dt>Total</dt><dd>${o.total}</dd><dt>Date</dt><dd>${o.order_date}</dd>
      </dl>
      <div class="actions">${orderMoves(o).map(([s, t]) => html`
        <button id="order-${s}" onClick=${() => move(`/api/orders/${o.id}/`, s)}>${t}</button>`)}</div>
      </article>
      <article><h4>Payment</h4>
        ${o.payment ? html`<dl><dt>Id</dt><dd>#${o.payment.id}</dd><dt>Amount</dt><dd>${o.payment.amount}</dd>
          <dt>Status</dt><dd id="payment-status">${o.payment.status}</dd></dl>
          <div class="actions">${paymentMoves(o.payment).map(([s, t]) => html`
            <button class="secondary" id="payment-${s}" onClick=${() => move(`/api/payments/${o.payment.id}/`, s)}>${t}</button>`)}
          </div>` : html`<p>No payment yet.</p>`}
      </article>
    </div>
    <h3>History</h3>
    <${AuditTable} query=${{ object_type: "order", object_id: id }} tick=${tick} />
    ${o.payment && html`<h3>Payment history</h3>
      <${AuditTable} query=${{ object_type: "payment", object_id: o.payment.id }} tick=${tick} />`}
  </section>`;
}

function Payments() {
  const l = useList("/api/payments/", { status: "", user: "", payment_date__gte: "", payment_date__lte: "",
                                        ordering: "-payment_date" });
  const rows = l.res && l.res.ok ? l.res.data.results : [];
  return html`<section>
    <h2>Payments</h2>
    <div class="filters">
      <${Select} label="Status" name="status" value=${l.filters.status} onChange=${l.set("status")}
                 options=${[["", "any"], ["pending", "pending"], ["completed", "completed"], ["failed", "failed"]]} />
      <${Field} label="User id" name="user" value=${l.filters.user} onInput=${l.set("user")} />
      <${DateRange} l=${l} field="payment_date" />
      <${Select} label="Order by" name="ordering" value=${l.filters.ordering} onChange=${l.set("ordering")}
                 options=${[["-payment_date", "newest"], ["payment_date", "oldest"], ["-amount", "amount (high)"],
                            ["amount", "amount (low)"]]} />
      <${CsvButton} path="/api/payments/" filters=${l.filters} name="payments"
                    columns=${["id", "order", "amount", "status", "payment_date"]} />
    </div>
    <${ListError} res=${l.res} />
    <table id="payments" class="striped"><thead><tr>
      <th>id</th><th>order</th><th>amount</th><th>status</th><th>date</th></tr></thead><tbody>
      ${rows.map((p) => html`<tr key=${p.id}><td>${p.id}</td><td><a href="#/orders/${p.order}">#${p.order}</a></td>
        <td>${p.amount}</td><td>${p.status}</td><td>${(p.payment_date || "").slice(0, 16)}</td></tr>`)}
    </tbody></table>
    <${Pager} page=${l.page} data=${l.res && l.res.ok ? l.res.data : null} onPage=${l.setPage} />
  </section>`;
}

// ---- dead letters ------------------------------------------------------------

function DeadLetters() {
  const l = useList("/api/admin/dead-letters/", { command: "" });
  const [picked, setPicked] = useState({});
  const [reason, setReason] = useState("");
  const [msg, setMsg] = useState(null);
  const rows = l.res && l.res.ok ? l.res.data.results : [];
  const ids = Object.keys(picked).filter((k) => picked[k]);
  const run = async (what, body) => {
    const r = await api("POST", `/api/admin/dead-letters/${what}/`, body);
    if (r.ok) {
      const done = r.data.replayed || r.data.discarded;
      setMsg({ ok: true, text: `${what === "replay" ? "Replayed" : "Discarded"} ${done.length}` +
                               (r.data.not_found.length ? `; no longer there: ${r.data.not_found.length}` : "") });
      setPicked({});
    } else setMsg({ text: problem(r) });
    l.reload();
  };
  return html`<section>
    <h2>Dead letters</h2>
    <${Message} msg=${msg} />
    <div class="filters">
      <${Field} label="Command starts with" name="command" value=${l.filters.command} onInput=${l.set("command")} />
      <button id="replay" disabled=${!ids.length} onClick=${() => run("replay", { ids })}>Replay selected</button>
      <${Field} label="Reason to discard" name="reason" value=${reason} onInput=${(e) => setReason(e.target.value)} />
      <button id="discard" class="contrast" disabled=${!ids.length || !reason}
              onClick=${() => run("discard", { ids, reason })}>Discard selected</button>
    </div>
    <${ListError} res=${l.res} />
    <table id="dead-letters" class="striped"><thead><tr>
      <th></th><th>command</th><th>reason</th><th>dead since</th><th>publisher</th><th>args (secrets masked)</th>
    </tr></thead><tbody>
      ${rows.map((d) => html`<tr key=${d.message_id} data-id=${d.message_id}>
        <td><input type="checkbox" disabled=${!d.message_id} checked=${!!picked[d.message_id]}
                   onChange=${(e) => setPicked({ ...picked, [d.message_id]: e.target.checked })} /></td>
        <td>${d.command}</td><td>${d.reason}</td><td>${(d.dead_lettered_at || "").slice(0, 19)}</td>
        <td>${d.publisher}</td><td><${Json} value=${d.args} /></td></tr>`)}
    </tbody></table>
    <${Pager} page=${l.page} data=${l.res && l.res.ok ? l.res.data : null} onPage=${l.setPage} />
  </section>`;
}

// ---- audit -----------------------------------------------------------------------

function AuditTable({ query, tick }) {
  const [res, setRes] = useState(null);
  useEffect(() => {
    let live = true; // an answer to an older query (typing) must not win
    api("GET", `/api/admin/audit/${qs({ ...query, page_size: 50 })}`).then((r) => live && setRes(r));
    return () => { live = false; };
  }, [JSON.stringify(query), tick]);
  if (!res) return html`<p aria-busy="true">Loading…</p>`;
  if (!res.ok) return html`<${Message} msg=${{ text: problem(res) }} />`;
  return html`<table class="striped audit"><thead><tr>
    <th>when</th><th>event</th><th>object</th><th>who</th><th>via</th><th>before</th><th>after</th><th>request</th>
  </tr></thead><tbody>
    ${res.data.results.map((e) => html`<tr key=${e.id}>
      <td>${e.occurred_at.slice(0, 19).replace("T", " ")}</td><td>${e.event}</td>
      <td>${e.object_type} ${e.object_id}</td>
      <td>${e.actor.username || e.actor.service || (e.actor.user_id ? `#${e.actor.user_id}` : "—")}</td>
      <td>${e.channel}</td><td><${Json} value=${e.before} /></td><td><${Json} value=${e.after} /></td>
      <td><small>${e.request_id}</small></td></tr>`)}
  </tbody></table>`;
}

function Audit() {
  const [f, setF] = useState({ object_type: "", object_id: "", actor: "", occurred_at__gte: "", occurred_at__lte: "" });
  const set = (k) => (e) => setF({ ...f, [k]: e.target.value });
  return html`<section>
    <h2>Audit trail</h2>
    <div class="filters">
      <${Select} label="Object" name="object_type" value=${f.object_type} onChange=${set("object_type")}
                 options=${[["", "any"], ...["user", "order", "payment", "dead_letter", "education", "certificate",
                                             "achievement"].map((t) => [t, t])]} />
      <${Field} label="Object id" name="object_id" value=${f.object_id} onInput=${set("object_id")} />
      <${Field} label="Actor (user id)" name="actor" value=${f.actor} onInput=${set("actor")} />
      <${Field} label="From" type="date" name="occurred_at__gte" value=${f.occurred_at__gte} onInput=${set("occurred_at__gte")} />
      <${Field} label="To" type="date" name="occurred_at__lte" value=${f.occurred_at__lte} onInput=${set("occurred_at__lte")} />
    </div>
    <${AuditTable} query=${f} tick=${0} />
  </section>`;
}

// ---- the frame -------------------------------------------------------------------

const PAGES = [["users", "Users"], ["orders", "Orders"], ["payments", "Payments"],
               ["dead-letters", "Dead letters"], ["audit", "Audit"]];

function App() {
  const [s, setS] = useState(session());
  const route = useRoute();
  if (!s) return html`<${Login} onLogin=${() => setS(session())} />`;
  const logout = async () => {
    await api("POST", "/api/auth/logout/", { refresh: s.refresh });
    store.removeItem("bk-console");
    setS(null);
  };
  const [page, id] = route;
  let body;
  if (page === "users" && id) body = html`<${UserDetail} id=${id} />`;
  else if (page === "orders" && id) body = html`<${OrderDetail} id=${id} />`;
  else if (page === "orders") body = html`<${Orders} />`;
  else if (page === "payments") body = html`<${Payments} />`;
  else if (page === "dead-letters") body = html`<${DeadLetters} />`;
  else if (page === "audit") body = html`<${Audit} />`;
  else body = html`<${Users} />`;
  return html`
    <nav class="top">
      <ul><li><strong>Staff console</strong></li>
        ${PAGES.map(([p, t]) => html`<li><a href="#/${p}" aria-current=${page === p ? "page" : null}>${t}</a></li>`)}
      </ul>
      <ul><li>${s.user.username}</li><li><a href="#" id="logout" onClick=${(e) => { e.preventDefault(); logout(); }}>Log out</a></li></ul>
    </nav>
    ${body}`;
}

const root = document.getElementById("app");
root.textContent = ""; // the "Loading…" placeholder
render(html`<${App} />`, root);
