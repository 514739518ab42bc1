// moltgate dashboard. Plain JavaScript, no framework, nothing fetched from
// another origin. Data comes from the gateway's RPC: a WebSocket at /ws
// (live events), with the /api/ REST mirror as the fallback. Every string
// from the server is put in the page as text (never as HTML): incident
// details carry what attackers sent.
'use strict';

(function () {
  const $ = (id) => document.getElementById(id);
  const SVG_NS = 'http://www.w3.org/2000/svg';
  const REFRESH_MS = 10000;
  const CALL_TIMEOUT_MS = 15000;

  const st = {
    key: null, // an admin API key typed into this tab (memory only)
    who: null,
    authed: false,
    ws: null,
    wsReady: false,
    wsDelay: 1000,
    wsTimer: null,
    nextId: 1,
    pending: new Map(),
    modes: { lockdown: false, emergency: false },
    interval: null,
    soon: null,
    refreshing: false,
    again: false,
    updated: null,
    lastEvent: null,
    last: null, // the last data, redrawn on resize
    filter: { since: '', ip: '', kind: '' }, // the incident filters in force
    seenIncidents: null, // ids of the last render, to mark new rows
    bannerKey: null, // what the banner shows, to redraw it only on a change
  };

  // ------------------------------------------------------------ DOM helpers

  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'class') e.className = v;
      else if (k === 'text') e.textContent = v;
      else e.setAttribute(k, v === true ? '' : String(v));
    }
    for (const k of kids) {
      if (k === null || k === undefined || k === false) continue;
      e.append(k instanceof Node ? k : document.createTextNode(String(k)));
    }
    return e;
  }

  function svg(tag, attrs, text) {
    const e = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function badge(text, kind) {
    return el('span', { class: 'badge ' + (kind || '') }, text);
  }

  function toDate(t) {
    if (t === null || t === undefined || t === '') return null;
    const d = new Date(t);
    return isNaN(d.getTime()) ? null : d;
  }

  const pad = (n) => String(n).padStart(2, '0');

  function clock(d) {
    return pad(d.getHours()) + ':' + pad(d.getMinutes()) + ':' + pad(d.getSeconds());
  }

  function stamp(d) {
    return d.getFullYear() + '-' + pad(d.getMonth() + 1) + '-' + pad(d.getDate()) + ' ' + clock(d);
  }

  const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

  // Today: the clock; this year: "Nov 25 23:57"; else the full date.
  function short(d) {
    const now = new Date();
    if (now.toDateString() === d.toDateString()) return clock(d);
    if (now.getFullYear() === d.getFullYear()) {
      return MONTHS[d.getMonth()] + ' ' + d.getDate() + ' ' + pad(d.getHours()) + ':' + pad(d.getMinutes());
    }
    return stamp(d);
  }

  function ago(d) {
    let s = Math.round((Date.now() - d.getTime()) / 1000);
    const future = s < 0;
    s = Math.abs(s);
    let t;
    if (s < 60) t = s + ' s';
    else if (s < 3600) t = Math.round(s / 60) + ' min';
    else if (s < 86400 * 2) t = Math.round(s / 3600) + ' h';
    else t = Math.round(s / 86400) + ' d';
    return future ? 'in ' + t : t + ' ago';
  }

  function duration(ms) {
    const s = Math.max(0, Math.round(ms / 1000));
    if (s < 60) return s + ' s';
    if (s < 3600) return Math.floor(s / 60) + ' min ' + (s % 60) + ' s';
    return Math.floor(s / 3600) + ' h ' + Math.floor((s % 3600) / 60) + ' min';
  }

  // A <time> showing the local time, short, with the full one and "ago" as its title.
  function when(t) {
    const d = toDate(t);
    if (!d) return el('span', { class: 'meta' }, '–');
    return el('time', { datetime: d.toISOString(), title: stamp(d) + ' (' + ago(d) + ')' }, short(d));
  }

  function td(content, cls) {
    return el('td', { class: cls }, content);
  }

  // Each cell carries its column's name as a label that narrow screens
  // show when the rows are stacked as cards (a real element, so it wraps
  // and can be measured, unlike generated content).
  function fillTable(id, rows, cols, empty) {
    const table = $(id);
    const body = table.tBodies[0];
    const heads = [...table.tHead.rows[0].cells].map((th) => th.textContent.trim());
    body.replaceChildren();
    if (!rows.length) {
      body.append(el('tr', {}, el('td', { class: 'empty', colspan: cols }, empty)));
      return;
    }
    for (const r of rows) {
      [...r.cells].forEach((c, i) => {
        const value = el('span', { class: 'cell-value' });
        value.append(...c.childNodes);
        const label = heads[i] && !c.classList.contains('actions')
          ? el('span', { class: 'cell-label', 'aria-hidden': 'true' }, heads[i])
          : null;
        c.replaceChildren(...[label, value].filter(Boolean));
        c.classList.toggle('labelled', !!label);
      });
      body.append(r);
    }
  }

  function announce(msg, isError) {
    const a = $('announce');
    a.textContent = msg;
    a.classList.toggle('error', !!isError);
  }

  // ------------------------------------------------------------- transport

  class RpcError extends Error {
    constructor(status, code, message) {
      super(message || code || 'request failed');
      this.status = status;
      this.code = code || '';
    }
    get unauthorized() {
      return this.status === 401 || this.code === 'unauthorized';
    }
  }

  async function rest(method, params) {
    const headers = { 'content-type': 'application/json' };
    if (st.key) headers.authorization = 'Bearer ' + st.key;
    let r;
    try {
      r = await fetch('/api/' + method.split('.').join('/'), {
        method: 'POST',
        headers,
        body: JSON.stringify(params || {}),
        credentials: 'same-origin',
        cache: 'no-store',
      });
    } catch (e) {
      throw new RpcError(0, 'network', 'the gateway cannot be reached');
    }
    let body = null;
    try {
      body = await r.json();
    } catch (e) {
      body = null;
    }
    if (!r.ok) {
      const err = (body && body.error) || {};
      throw new RpcError(r.status, err.code, err.message || r.status + ' ' + r.statusText);
    }
    return body;
  }

  function wsCall(method, params) {
    return new Promise((resolve, reject) => {
      const id = st.nextId++;
      const timer = setTimeout(() => {
        st.pending.delete(id);
        reject(new RpcError(0, 'timeout', method + ': no answer within 15 s'));
      }, CALL_TIMEOUT_MS);
      st.pending.set(id, { resolve, reject, timer });
      try {
        st.ws.send(JSON.stringify({ id, method, params: params || {} }));
      } catch (e) {
        clearTimeout(timer);
        st.pending.delete(id);
        reject(new RpcError(0, 'network', 'the WebSocket is closed'));
      }
    });
  }

  // The WebSocket when it is up, else REST: the same methods, the same checks.
  function call(method, params) {
    return st.wsReady ? wsCall(method, params) : rest(method, params);
  }

  function openWs() {
    if (st.ws || !st.authed) return;
    clearTimeout(st.wsTimer);
    // Same origin, always: the scheme follows the page's.
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    let ws;
    try {
      ws = new WebSocket(proto + '//' + location.host + '/ws');
    } catch (e) {
      retryWs();
      return;
    }
    st.ws = ws;
    let connected = false;
    ws.addEventListener('open', () => {
      // The session cookie rode on the upgrade; a key is sent here.
      ws.send(JSON.stringify({ id: 0, method: 'connect', params: st.key ? { key: st.key } : {} }));
    });
    ws.addEventListener('message', (m) => {
      let v;
      try {
        v = JSON.parse(m.data);
      } catch (e) {
        return;
      }
      if (v.event) {
        onEvent(v);
        return;
      }
      if (!connected && v.id === 0) {
        if (v.ok) {
          connected = true;
          st.wsReady = true;
          st.wsDelay = 1000;
          wsCall('subscribe', {}).catch(() => {});
          showLink();
          soon(0);
        } else {
          ws.close();
          if (v.error && v.error.code === 'unauthorized') sessionLost(v.error.message);
        }
        return;
      }
      const p = st.pending.get(v.id);
      if (!p) return;
      st.pending.delete(v.id);
      clearTimeout(p.timer);
      if (v.ok) p.resolve(v.result);
      else p.reject(new RpcError(0, v.error && v.error.code, v.error && v.error.message));
    });
    ws.addEventListener('close', () => {
      if (st.ws === ws) {
        st.ws = null;
        st.wsReady = false;
      }
      for (const [id, p] of st.pending) {
        clearTimeout(p.timer);
        p.reject(new RpcError(0, 'network', 'the WebSocket closed'));
        st.pending.delete(id);
      }
      showLink();
      retryWs();
    });
  }

  function retryWs() {
    if (!st.authed) return;
    clearTimeout(st.wsTimer);
    st.wsTimer = setTimeout(openWs, st.wsDelay);
    st.wsDelay = Math.min(st.wsDelay * 2, 30000);
  }

  function closeWs() {
    clearTimeout(st.wsTimer);
    if (st.ws) {
      const ws = st.ws;
      st.ws = null;
      st.wsReady = false;
      ws.close();
    }
  }

  function showLink(problem) {
    const l = $('link');
    l.classList.remove('live', 'poll', 'down');
    if (!st.authed) {
      l.textContent = 'Not logged in';
      return;
    }
    let text;
    if (problem) {
      l.classList.add('down');
      text = problem;
    } else if (st.wsReady) {
      l.classList.add('live');
      text = 'Live';
    } else {
      l.classList.add('poll');
      text = 'Polling every 10 s (WebSocket reconnecting)';
    }
    if (st.updated) text += ' · updated ' + clock(st.updated);
    if (st.who) text += ' · ' + st.who.principal;
    l.textContent = text;
  }

  // ----------------------------------------------------------- auth screens

  function showLogin(message) {
    st.authed = false;
    st.who = null;
    closeWs();
    clearInterval(st.interval);
    $('app').hidden = true;
    $('logout').hidden = true;
    $('login').hidden = false;
    $('login-error').textContent = message || '';
    announce('');
    showLink();
    $('password').focus();
  }

  function sessionLost(message) {
    if (!st.authed) return;
    st.key = null;
    showLogin(message || 'Your session has ended; log in again.');
  }

  async function enter() {
    const who = await rest('security.admin.check');
    if (!who.admin) {
      st.key = null;
      showLogin(who.principal + ' does not have the operator.admin scope; the dashboard is for administrators.');
      return;
    }
    st.who = who;
    st.authed = true;
    $('login').hidden = true;
    $('login-error').textContent = '';
    $('app').hidden = false;
    $('logout').hidden = false;
    showLink();
    clearInterval(st.interval);
    st.interval = setInterval(() => refresh(), REFRESH_MS);
    openWs();
    await refresh();
  }

  async function login(e) {
    e.preventDefault();
    const btn = $('login-submit');
    const pw = $('password');
    btn.disabled = true;
    $('login-error').textContent = '';
    try {
      const r = await fetch('/api/login', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ password: pw.value }),
        credentials: 'same-origin',
        cache: 'no-store',
      });
      if (!r.ok) {
        let msg = r.status + ' ' + r.statusText;
        try {
          msg = (await r.json()).error.message || msg;
        } catch (x) {
          /* keep the status line */
        }
        $('login-error').textContent = msg;
        pw.select();
        return;
      }
      pw.value = '';
      st.key = null;
      await enter();
    } catch (x) {
      $('login-error').textContent = x.message || 'the gateway cannot be reached';
    } finally {
      btn.disabled = false;
    }
  }

  async function keyLogin(e) {
    e.preventDefault();
    const input = $('api-key');
    st.key = input.value.trim();
    input.value = '';
    try {
      await enter();
    } catch (x) {
      st.key = null;
      $('login-error').textContent = x.message;
    }
  }

  async function logout() {
    closeWs();
    if (!st.key) {
      try {
        await fetch('/api/logout', { method: 'POST', credentials: 'same-origin' });
      } catch (x) {
        /* the cookie dies with the gateway's session list anyway */
      }
    }
    st.key = null;
    showLogin('Logged out.');
  }

  // -------------------------------------------------------------- refresh

  function soon(ms) {
    clearTimeout(st.soon);
    st.soon = setTimeout(() => refresh(), ms);
  }

  async function refresh() {
    if (!st.authed) return;
    if (st.refreshing) {
      st.again = true;
      return;
    }
    st.refreshing = true;
    try {
      const range = rangeMs();
      const f = incidentQuery();
      const [d, conns, act, filtered] = await Promise.all([
        call('security.dashboard'),
        call('security.gateway.connections').catch(() => null),
        call('security.activity', { since_ms: Date.now() - range, bucket_ms: bucketFor(range) }).catch(() => null),
        f ? call('security.incidents.list', f).catch((e) => ({ incidents: [], error: e.message })) : null,
      ]);
      st.updated = new Date();
      render(d, conns, act, filtered);
      showLink();
    } catch (e) {
      if (e.unauthorized) sessionLost(e.message);
      else showLink('Cannot refresh: ' + e.message);
    } finally {
      st.refreshing = false;
      if (st.again) {
        st.again = false;
        soon(200);
      }
    }
  }

  function onEvent(v) {
    st.lastEvent = v;
    if (v.event === 'modes' && v.modes) renderModes(v.modes);
    if (v.event === 'blocked' && v.ban) announce('Blocked ' + v.ban.target + ': ' + v.ban.reason);
    if (v.event === 'unblocked') announce('Unblocked ' + v.target + '.');
    // One refresh for a burst of events.
    if (!st.refreshing) soon(300);
    else st.again = true;
  }

  // --------------------------------------------------------------- render

  function render(d, conns, act, filtered) {
    st.last = { d, act };
    renderModes(d.modes || {});
    renderBanner(d.breaker, d.modes || {});
    renderBreaker(d.breaker, d.breaker_history || []);
    renderGuardian(d.guardian);
    renderProviders(d.providers || {});
    renderCharts(d, act);
    renderBlocked(d.blocked || []);
    renderKinds(d.incident_kinds || []);
    renderIncidents(filtered ? filtered.incidents : d.incidents || [], filtered);
    renderConnections(d.connections || {}, conns, d);
  }

  function renderModes(m) {
    st.modes = { lockdown: !!m.lockdown, emergency: !!m.emergency };
    for (const name of ['lockdown', 'emergency']) {
      const b = $(name);
      b.setAttribute('aria-pressed', String(st.modes[name]));
      b.querySelector('.switch-state').textContent = st.modes[name] ? 'on' : 'off';
    }
  }

  const STATE_KIND = { open: 'bad', 'half-open': 'warn', closed: 'ok' };

  // A command to paste, with a button that copies it.
  function command(run) {
    const code = el('code', { class: 'cmd' }, run);
    const btn = el('button', { type: 'button', class: 'small secondary copy', 'aria-label': 'Copy: ' + run }, 'Copy');
    btn.addEventListener('click', () => copy(run, code, btn));
    return el('span', { class: 'cmd-row' }, code, btn);
  }

  async function copy(text, code, btn) {
    try {
      await navigator.clipboard.writeText(text);
      btn.textContent = 'Copied';
      announce('Copied: ' + text);
    } catch (e) {
      // No clipboard access (an insecure origin, a refused permission):
      // select the text, so one keystroke copies it.
      const r = document.createRange();
      r.selectNodeContents(code);
      const sel = window.getSelection();
      sel.removeAllRanges();
      sel.addRange(r);
      announce('Selected: press Ctrl+C (⌘C on a Mac) to copy it.');
    }
    setTimeout(() => {
      btn.textContent = 'Copy';
    }, 2000);
  }

  // The one place that says whether traffic flows: red when OPEN, with why
  // and the commands that change it (the gateway cannot change it itself).
  function renderBanner(b, modes) {
    // Redrawn only when it changes: a refresh must not undo a selection
    // or a "Copied".
    const key = JSON.stringify([b, modes.lockdown, modes.emergency]);
    if (key === st.bannerKey) return;
    st.bannerKey = key;
    const box = $('banner');
    const body = $('banner-body');
    body.replaceChildren();
    box.className = 'banner wide';
    document.body.classList.remove('breaker-open', 'breaker-half-open', 'breaker-closed');
    if (!b || !b.remedy) {
      box.classList.add('unknown');
      body.append(el('p', { class: 'banner-head' }, el('strong', { id: 'banner-state' }, 'NO BREAKER'),
        ' This gateway runs without moltguard: no breaker state here (state/breaker.json is missing). ',
        el('code', {}, 'moltguard init'), ' creates it.'));
      document.title = 'moltgate dashboard';
      return;
    }
    const r = b.remedy;
    const kind = STATE_KIND[r.state] || 'bad';
    box.classList.add(kind);
    document.body.classList.add('breaker-' + r.state);
    document.title = r.state.toUpperCase() + ' · moltgate dashboard';
    body.append(el('p', { class: 'banner-head' },
      el('strong', { id: 'banner-state', class: 'banner-state' }, 'Breaker ' + r.state.toUpperCase()),
      ' ', el('span', { id: 'banner-headline' }, r.headline)));
    const why = el('p', { class: 'banner-why' }, 'Why: ' + r.why + ' ', el('code', { class: 'reason' }, r.reason));
    if (r.detail) why.append(' — ', r.detail);
    why.append(el('span', { class: 'meta' }, ' · set by ' + (b.actor || '?') + ' ', when(b.changed_at)));
    if (b.expires_at && r.state !== 'open') why.append(el('span', { class: 'meta' }, ' · returns to OPEN ', when(b.expires_at)));
    body.append(why);
    if (modes.lockdown || modes.emergency) {
      body.append(el('p', { class: 'banner-modes' },
        modes.lockdown ? badge('lockdown on', 'warn') : null, ' ',
        modes.emergency ? badge('kill switch on', 'bad') : null));
    }
    if (r.first) body.append(el('p', { class: 'banner-first', id: 'banner-first' }, r.first));
    const steps = el('ol', { class: 'banner-steps', id: 'banner-steps' });
    for (const s of r.commands || []) steps.append(el('li', {}, el('span', { class: 'does' }, s.does + ':'), ' ', command(s.run)));
    body.append(el('p', { class: 'banner-to' }, r.state === 'open' ? 'To fix it:' : 'To change it:'), steps);
  }

  function renderBreaker(b, history) {
    const box = $('breaker');
    box.replaceChildren();
    if (!b) {
      box.append(el('p', { class: 'meta' }, 'No breaker state here: moltguard is not set up on this machine, or this gateway runs stand-alone.'));
    } else {
      // The state and its reason are in the banner; here, the record's facts.
      // (A damaged state file's problem is the banner's detail.)
      box.append(el('p', { class: 'meta' },
        'Changed ', when(b.changed_at), ' by ', b.actor || '?', ' · generation ', String(b.generation ?? '?')));
      if (b.last_apply) {
        const ok = b.last_apply.outcome === 'applied';
        box.append(el('p', { class: 'meta' }, 'Last apply: ',
          badge(b.last_apply.outcome, ok ? 'ok' : 'warn'), ' ', b.last_apply.message || ''));
      }
    }
    const list = $('breaker-history');
    list.replaceChildren();
    if (!history.length) {
      list.append(el('li', { class: 'empty' }, 'No transitions recorded (state/audit.jsonl).'));
      return;
    }
    for (const h of history.slice().reverse()) {
      const to = String(h.to || '?');
      list.append(el('li', {},
        el('div', { class: 'history-head' },
          when(h.at), ' ',
          el('span', {}, String(h.from || '?') + ' → '), badge(to, STATE_KIND[to] || 'warn'), ' ',
          el('span', { class: 'meta' }, 'by ' + (h.actor || '?') + ' '),
          badge(h.outcome || '?', h.outcome === 'applied' ? 'ok' : 'warn')),
        el('div', { class: 'history-why', title: h.message || '' }, el('code', {}, h.reason || ''), h.detail ? ' ' + h.detail : '')));
    }
  }

  function renderGuardian(g) {
    const meta = $('guardian-meta');
    const list = $('findings');
    list.replaceChildren();
    meta.replaceChildren();
    if (!g) {
      meta.append('The guardian has not reported here (no state/guardian.json). Start it with ',
        el('code', {}, 'moltguard guardian run'), ' or ', el('code', {}, 'moltguard up'), '.');
      return;
    }
    const next = toDate(g.next_scan_at);
    const stale = next && Date.now() - next.getTime() > 120000;
    meta.append('Last scan ', when(g.last_scan_at),
      g.scan_wall_us !== undefined ? ' (' + Math.max(1, Math.round(g.scan_wall_us / 1000)) + ' ms)' : '',
      ' · pid ' + g.pid,
      stale ? el('span', {}, ' · ', badge('stale', 'warn'), ' the next scan was due ', when(g.next_scan_at), ': is the guardian running?') : '');
    const findings = g.findings || [];
    if (!findings.length) {
      list.append(el('li', {}, badge('clear', 'ok'), ' No findings in the last scan.'));
      return;
    }
    const order = { critical: 0, warning: 1 };
    findings.slice().sort((a, b) => (order[a.severity] ?? 2) - (order[b.severity] ?? 2)).forEach((f) => {
      list.append(el('li', { class: f.severity },
        el('div', {}, badge(f.severity, f.severity === 'critical' ? 'bad' : 'warn'), ' ', el('code', {}, f.id)),
        el('p', { class: 'what' }, f.what, f.location ? el('span', { class: 'meta' }, ' (' + f.location + ')') : null),
        el('p', { class: 'fix' }, el('strong', {}, 'Fix: '), f.fix)));
    });
  }

  const CIRCUIT = { closed: 'ok', 'half-open': 'warn', open: 'bad' };

  function renderProviders(ps) {
    const list = ps.providers || [];
    $('providers-meta').textContent = list.length
      ? 'Default: ' + (ps.default_provider || '?') + ' / ' + (ps.default_model || '?') +
        (ps.streaming ? ' · streaming on' : ' · streaming off')
      : 'No provider is configured.';
    const rows = list.map((p) => {
      const key = p.key_problem
        ? badge('problem', 'bad')
        : p.key_present
          ? badge(p.key_source ? 'from ' + p.key_source : 'present', 'ok')
          : p.key_ref ? badge('missing', 'bad') : badge('none needed', '');
      const l = p.latency_ms || {};
      const pct = l.samples
        ? l.p50 + ' / ' + l.p90 + ' / ' + l.p99 + ' ms (' + l.samples + ')'
        : 'no samples';
      const test = el('button', { type: 'button', class: 'small secondary', 'aria-label': 'Test ' + p.name }, 'Test');
      test.addEventListener('click', () => testProvider(p.name, test));
      return el('tr', {},
        td(el('span', {}, el('strong', {}, p.name), el('br'), el('span', { class: 'meta' }, p.kind + ' · ' + p.base_url)), 'detail'),
        td(badge(p.circuit + (p.consecutive_failures ? ' (' + p.consecutive_failures + ' failures)' : ''), CIRCUIT[p.circuit] || 'warn')),
        td(el('span', {}, key, p.key_problem ? el('span', { class: 'meta' }, ' ' + p.key_problem) : null)),
        td(p.last_latency_ms !== null && p.last_latency_ms !== undefined ? p.last_latency_ms + ' ms' : '–', 'num'),
        td(pct, 'num'),
        td(p.last_error ? el('span', {}, p.last_error, ' ', p.last_error_at ? when(p.last_error_at) : '') : '–', 'detail'),
        td(test, 'actions'));
    });
    fillTable('providers', rows, 7, 'No provider is configured.');
  }

  async function testProvider(name, btn) {
    btn.disabled = true;
    announce('Testing ' + name + '…');
    try {
      const r = await call('providers.test', { provider: name });
      const res = (r.results || [])[0];
      announce(name + ': ' + (res ? res.verdict : 'no result'), res && !res.ok);
      soon(100);
    } catch (e) {
      announce(name + ': ' + e.message, true);
    } finally {
      btn.disabled = false;
    }
  }

  // ---------------------------------------------------------------- charts

  // Every chart, from the dashboard's data and security.activity's (again
  // on a resize: they are drawn at their boxes' widths).
  function renderCharts(d, act) {
    const providers = (d.providers || {}).providers || [];
    renderLatency(act, providers);
    renderActivity(act, providers);
  }

  // A figure's caption, drawing box and legend, made afresh.
  function figure(id, caption) {
    const fig = $(id);
    const box = el('div', { class: 'chart-box' });
    const legend = el('ul', { class: 'legend' });
    fig.replaceChildren(el('figcaption', {}, caption), box, legend);
    return { box, legend };
  }

  // Drawn at the box's own width, so labels keep their size on a phone.
  function frame(box, id, title, desc) {
    const W = Math.max(260, Math.round(box.clientWidth || 600));
    const H = W < 420 ? 160 : 190;
    const g = { W, H, L: 48, R: 10, T: 10, B: 24 };
    g.svg = svg('svg', { viewBox: '0 0 ' + W + ' ' + H, role: 'img', 'aria-labelledby': id + '-title ' + id + '-desc', id });
    g.svg.append(svg('title', { id: id + '-title' }, title), svg('desc', { id: id + '-desc' }, desc));
    box.append(g.svg);
    return g;
  }

  function timeLabel(t, span) {
    const d = new Date(t);
    const hm = pad(d.getHours()) + ':' + pad(d.getMinutes());
    return span > 2 * 86400000 ? MONTHS[d.getMonth()] + ' ' + d.getDate() + ' ' + hm : hm;
  }

  // Grid lines with their values at the left, times along the bottom.
  function axes(g, x0, x1, ymax, fmt) {
    const Y = (y) => g.T + (1 - y / ymax) * (g.H - g.T - g.B);
    for (const f of [0, 0.5, 1]) {
      const y = Y(ymax * f);
      g.svg.append(svg('line', { x1: g.L, x2: g.W - g.R, y1: y, y2: y, class: f === 0 ? 'axis' : 'grid-line' }));
      g.svg.append(svg('text', { x: g.L - 6, y: y + 4, 'text-anchor': 'end' }, fmt(ymax * f)));
    }
    const span = x1 - x0;
    // A label per 110 px or so (170 for a week's longer ones), at least two.
    const ticks = Math.max(1, Math.floor((g.W - g.L - g.R) / (span > 2 * 86400000 ? 170 : 110)));
    for (let i = 0; i <= ticks; i++) {
      const t = x0 + (span * i) / ticks;
      const x = g.L + ((t - x0) / (span || 1)) * (g.W - g.L - g.R);
      g.svg.append(svg('text', { x, y: g.H - 6, 'text-anchor': i === 0 ? 'start' : i === ticks ? 'end' : 'middle' }, timeLabel(t, span)));
    }
    return Y;
  }

  function fmtCount(v) {
    if (v >= 1e6) return (v / 1e6).toFixed(v >= 1e7 ? 0 : 1) + 'M';
    if (v >= 1e4) return Math.round(v / 1e3) + 'k';
    if (v >= 1e3) return (v / 1e3).toFixed(1) + 'k';
    return String(Math.round(v * 10) / 10);
  }

  // Stacked bars, one per time bucket: spec.series[i].values[bucket].
  function barChart(id, spec) {
    const { box, legend } = figure(id, spec.caption);
    const n = spec.buckets;
    const totals = spec.series.map((s) => s.values.reduce((a, b) => a + b, 0));
    const desc = totals.some((t) => t > 0)
      ? spec.series.map((s, i) => s.name + ': ' + fmtCount(totals[i])).join('; ')
      : spec.empty;
    const g = frame(box, id + '-svg', spec.caption, desc);
    const x0 = spec.x0;
    const x1 = spec.x0 + n * spec.bucket;
    let ymaxRaw = 1;
    for (let b = 0; b < n; b++) {
      let sum = 0;
      for (const s of spec.series) sum += s.values[b];
      ymaxRaw = Math.max(ymaxRaw, sum);
    }
    // Counts: a small scale is even, so its middle line is a whole number.
    let ymax = niceCeil(ymaxRaw);
    if (ymax < 10) ymax = Math.max(2, Math.ceil(ymax / 2) * 2);
    const Y = axes(g, x0, x1, ymax, fmtCount);
    const bw = (g.W - g.L - g.R) / n;
    for (let b = 0; b < n; b++) {
      let base = 0;
      const x = g.L + b * bw;
      for (const s of spec.series) {
        const v = s.values[b];
        if (!v) continue;
        const y = Y(base + v);
        const rect = svg('rect', {
          x: (x + bw * 0.1).toFixed(1), y: y.toFixed(1), width: Math.max(1, bw * 0.8).toFixed(1),
          height: Math.max(1, Y(base) - y).toFixed(1), class: 'bar ' + s.cls, 'data-series': s.name,
        });
        rect.append(svg('title', {}, timeLabel(x0 + b * spec.bucket, x1 - x0) + ' · ' + s.name + ': ' + fmtCount(v)));
        g.svg.append(rect);
        base += v;
      }
    }
    if (!totals.some((t) => t > 0)) {
      g.svg.append(svg('text', { x: g.W / 2, y: g.H / 2, 'text-anchor': 'middle', class: 'none' }, spec.empty));
    }
    spec.series.forEach((s, i) => {
      legend.append(el('li', {}, el('span', { class: 'sw ' + s.cls, 'aria-hidden': 'true' }), s.name,
        el('span', { class: 'meta' }, ' ' + fmtCount(totals[i]) + (s.note ? ' ' + s.note(totals[i]) : ''))));
    });
  }

  // Which incident kinds each chart counts.
  const BLOCK_KINDS = [
    ['firewall_block', 'firewall', 'c1'],
    ['auth_failure', 'bad API keys', 'c3'],
    ['login_failure', 'wrong passwords', 'c5'],
    ['ws_origin', 'foreign origins', 'c2'],
    ['csrf', 'CSRF', 'c4'],
  ];
  const BAN_KINDS = [
    ['auto_block', 'automatic bans', 'err'],
    ['manual_block', 'bans by hand', 'c3'],
    ['manual_unblock', 'unblocked', 'c2'],
  ];

  function rangeMs() {
    return Number($('range').value) || 3600000;
  }

  // 60 to 168 buckets, whatever the range.
  function bucketFor(range) {
    if (range <= 3600000) return 60000;
    if (range <= 21600000) return 300000;
    if (range <= 86400000) return 900000;
    return 3600000;
  }

  function renderActivity(act, providers) {
    if (!act) {
      $('activity-meta').textContent = 'Activity unavailable (the gateway did not answer security.activity).';
      return;
    }
    const bucket = act.bucket_ms;
    const x0 = Math.floor(act.since_ms / bucket) * bucket;
    const n = Math.max(1, Math.ceil((act.until_ms - x0) / bucket));
    const slot = (t) => Math.min(n - 1, Math.max(0, Math.floor((t - x0) / bucket)));
    const zeros = () => new Array(n).fill(0);
    const ok = zeros();
    const errors = zeros();
    const names = providers.map((p) => p.name);
    for (const r of act.traffic) if (!names.includes(r.provider)) names.push(r.provider);
    const tokens = new Map(names.map((p) => [p, { values: zeros(), input: 0, output: 0 }]));
    for (const r of act.traffic) {
      if (r.minute < x0) continue;
      const i = slot(r.minute);
      ok[i] += r.count - r.errors;
      errors[i] += r.errors;
      const t = tokens.get(r.provider);
      t.values[i] += r.input_tokens + r.output_tokens;
      t.input += r.input_tokens;
      t.output += r.output_tokens;
    }
    const kinds = new Map();
    for (const c of act.incidents) {
      if (!kinds.has(c.kind)) kinds.set(c.kind, zeros());
      kinds.get(c.kind)[slot(c.at)] += c.count;
    }
    $('activity-meta').textContent = 'Per ' + per(bucket) + ', from ' + stamp(new Date(x0)) + ' to now.';
    const base = { buckets: n, bucket, x0 };
    barChart('chart-requests', Object.assign({}, base, {
      caption: 'LLM requests per ' + per(bucket),
      empty: 'No requests in this range',
      series: [{ name: 'answered', cls: 'c0', values: ok }, { name: 'failed', cls: 'err', values: errors }],
    }));
    barChart('chart-blocks', Object.assign({}, base, {
      caption: 'Refused requests per ' + per(bucket),
      empty: 'Nothing refused in this range',
      series: BLOCK_KINDS.map(([k, name, cls]) => ({ name, cls, values: kinds.get(k) || zeros() })),
    }));
    barChart('chart-bans', Object.assign({}, base, {
      caption: 'Bans and unblocks per ' + per(bucket),
      empty: 'No bans in this range',
      series: BAN_KINDS.map(([k, name, cls]) => ({ name, cls, values: kinds.get(k) || zeros() })),
    }));
    barChart('chart-tokens', Object.assign({}, base, {
      caption: 'Tokens per provider, per ' + per(bucket),
      empty: 'No tokens reported in this range',
      series: [...tokens.entries()].map(([name, t], i) => ({
        name, cls: 'c' + (i % 6), values: t.values,
        note: () => '(' + fmtCount(t.input) + ' in, ' + fmtCount(t.output) + ' out)',
      })),
    }));
  }

  function per(bucket) {
    return bucket >= 3600000 ? bucket / 3600000 + ' h' : bucket / 60000 + ' min';
  }

  // Latency: one line per provider (p50 solid, p95 dashed) from the
  // per-minute history (summed into the activity's buckets); without
  // history yet, the recent requests as dots.
  function renderLatency(act, providers) {
    const rows = (act ? act.traffic : []).filter((r) => r.count > 0);
    const bucket = act ? act.bucket_ms : 60000;
    const perMinute = rows.length > 0;
    const { box, legend } = figure('chart-latency', !perMinute
      ? 'Latency of recent requests, ms (no per-minute history in this range yet); red dots are failures'
      : bucket === 60000
        ? 'Latency per minute, ms: p50 solid, p95 dashed; red dots are minutes with errors'
        : 'Latency per ' + per(bucket) + ', ms: p50 (mean of the minutes\' medians) solid, p95 (the worst minute\'s) dashed; red dots are errors');
    const now = Date.now();
    let series;
    if (perMinute) {
      const by = new Map();
      for (const r of rows) {
        if (!by.has(r.provider)) by.set(r.provider, []);
        by.get(r.provider).push({ x: r.minute, y: r.p50_ms, y2: r.p95_ms, err: r.errors, n: r.count });
      }
      series = [...by.entries()].map(([name, pts]) => ({ name, pts: pts.sort((a, b) => a.x - b.x) }));
    } else {
      series = providers
        .map((p) => ({
          name: p.name,
          pts: (p.history || []).map((s) => ({ x: Date.parse(s.at), y: s.ms, err: s.ok ? 0 : 1, n: 1 }))
            .filter((s) => !isNaN(s.x)),
        }))
        .filter((s) => s.pts.length);
    }
    const desc = series.length
      ? series.map((x) => {
        const last = x.pts[x.pts.length - 1];
        return x.name + ': ' + x.pts.length + (perMinute ? ' minutes' : ' requests') + ', latest ' + last.y + ' ms' +
          (last.y2 !== undefined ? ' (p95 ' + last.y2 + ' ms)' : '');
      }).join('; ')
      : 'no data in this range';
    const g = frame(box, 'latency-svg', box.previousSibling.textContent, desc);
    const all = series.flatMap((x) => x.pts);
    let x0 = now - rangeMs();
    let x1 = now;
    if (!perMinute && all.length) {
      x0 = Math.min(...all.map((p) => p.x));
      x1 = Math.max(...all.map((p) => p.x));
      if (x1 - x0 < 60000) {
        x0 -= 30000;
        x1 += 30000;
      }
    }
    const ymax = niceCeil(Math.max(1, ...all.map((p) => Math.max(p.y || 0, p.y2 || 0))));
    const Y = axes(g, x0, x1, ymax, fmtMs);
    const X = (x) => g.L + ((x - x0) / (x1 - x0 || 1)) * (g.W - g.L - g.R);
    if (!all.length) {
      g.svg.append(svg('text', { x: g.W / 2, y: g.H / 2, 'text-anchor': 'middle', class: 'none' }, 'No requests in this range yet'));
    }
    series.forEach((ser, i) => {
      const c = 'c' + (i % 6);
      if (perMinute) {
        for (const [key, extra] of [['y', ''], ['y2', ' p95']]) {
          let d = '';
          let prev = null;
          for (const p of ser.pts) {
            const gap = prev === null || p.x - prev > 1.5 * bucket;
            d += (gap ? 'M' : 'L') + X(p.x).toFixed(1) + ' ' + Y(p[key]).toFixed(1) + ' ';
            prev = p.x;
          }
          g.svg.append(svg('path', { d: d.trim(), class: 'line ' + c + extra, 'data-provider': ser.name }));
        }
        // A minute with no neighbour would be invisible as a line: a dot.
        ser.pts.forEach((p, j) => {
          const before = j > 0 && p.x - ser.pts[j - 1].x <= 1.5 * bucket;
          const after = j + 1 < ser.pts.length && ser.pts[j + 1].x - p.x <= 1.5 * bucket;
          if (!before && !after) g.svg.append(svg('circle', { cx: X(p.x).toFixed(1), cy: Y(p.y).toFixed(1), r: 2.5, class: c }));
        });
      }
      for (const p of ser.pts) {
        if (!perMinute) {
          g.svg.append(svg('circle', { cx: X(p.x).toFixed(1), cy: Y(p.y).toFixed(1), r: 3, class: p.err ? 'err' : c }));
        } else if (p.err) {
          g.svg.append(svg('circle', { cx: X(p.x).toFixed(1), cy: Y(p.y2 ?? p.y).toFixed(1), r: 4, class: 'err' }));
        }
      }
      const last = ser.pts[ser.pts.length - 1];
      legend.append(el('li', {}, el('span', { class: 'sw ' + c, 'aria-hidden': 'true' }), ser.name,
        el('span', { class: 'meta' }, ' latest ' + last.y + ' ms' + (last.y2 !== undefined ? ', p95 ' + last.y2 + ' ms' : ''))));
    });
  }

  function niceCeil(v) {
    const e = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * e >= v) return m * e;
    return 10 * e;
  }

  function fmtMs(v) {
    return v >= 1000 ? (v / 1000).toFixed(v % 1000 ? 1 : 0) + ' s' : Math.round(v) + ' ms';
  }

  function renderBlocked(bans) {
    const rows = bans.map((b) => {
      const btn = el('button', { type: 'button', class: 'small', 'aria-label': 'Unblock ' + b.target, 'data-target': b.target }, 'Unblock');
      btn.addEventListener('click', () => unblock(b.target, btn));
      return el('tr', { 'data-target': b.target },
        td(el('code', {}, b.target)),
        td(el('span', {}, b.reason || '', el('br'),
          el('span', { class: 'meta' },
            (b.manual ? 'by an operator' : 'automatic, ' + b.offences + (b.offences === 1 ? ' offence' : ' offences')) + ' · since ',
            when(b.created_at))), 'detail'),
        td(b.expires_at ? when(b.expires_at) : 'lifted by hand', 'when'),
        td(btn, 'actions'));
    });
    fillTable('blocked', rows, 4, 'No address is blocked.');
  }

  async function unblock(target, btn) {
    btn.disabled = true;
    try {
      await call('security.blocked.remove', { target });
      announce('Unblocked ' + target + '.');
      const row = btn.closest('tr');
      if (row) row.remove();
      soon(100);
    } catch (e) {
      btn.disabled = false;
      announce('Cannot unblock ' + target + ': ' + e.message, true);
    }
  }

  async function block(e) {
    e.preventDefault();
    const f = e.target;
    const target = f.elements.target.value.trim();
    const params = { target };
    if (f.elements.reason.value.trim()) params.reason = f.elements.reason.value.trim();
    if (f.elements.for.value) params.duration_ms = Number(f.elements.for.value);
    const btn = f.querySelector('button');
    btn.disabled = true;
    try {
      const r = await call('security.blocked.add', params);
      announce('Blocked ' + ((r.blocked && r.blocked.target) || target) + '.');
      f.elements.target.value = '';
      f.elements.reason.value = '';
      soon(100);
    } catch (x) {
      announce('Cannot block ' + target + ': ' + x.message, true);
    } finally {
      btn.disabled = false;
    }
  }

  // The filter form's values as security.incidents.list parameters, or
  // null when nothing is filtered (the dashboard's own newest 50 then).
  function incidentQuery() {
    const f = st.filter;
    if (!f.since && !f.ip && !f.kind) return null;
    const q = { limit: 200 };
    if (f.since) q.since_ms = Date.now() - Number(f.since);
    if (f.ip) q.ip = f.ip;
    if (f.kind) q.kind = f.kind;
    return q;
  }

  function applyFilter(e) {
    if (e) e.preventDefault();
    const form = $('incident-filter');
    st.filter = {
      since: form.elements.since.value,
      ip: form.elements.ip.value.trim(),
      kind: form.elements.kind.value,
    };
    soon(0);
  }

  function clearFilter() {
    const form = $('incident-filter');
    form.reset();
    applyFilter();
  }

  function filterByIp(ip) {
    $('f-ip').value = ip;
    applyFilter();
  }

  // The kinds the gateway knows, once (a select keeps the user's choice).
  function renderKinds(kinds) {
    const sel = $('f-kind');
    if (sel.options.length > 1 || !kinds.length) return;
    for (const k of kinds) sel.append(el('option', { value: k }, k));
  }

  // `filtered` is the answer to the filter form's query, or null.
  function renderIncidents(list, filtered) {
    const seen = st.seenIncidents || new Set();
    const first = !st.seenIncidents;
    const next = new Set();
    const rows = list.map((i) => {
      next.add(i.id);
      const detail = el('span', {}, i.detail || '');
      if (i.rule) detail.append(' ', el('span', { class: 'meta' }, 'rule ' + i.rule));
      if (i.request_id) detail.append(' ', el('span', { class: 'meta' }, i.request_id));
      let client = '–';
      if (i.client_ip) {
        client = el('button', { type: 'button', class: 'link-button', title: 'Show only ' + i.client_ip, 'data-ip': i.client_ip }, el('code', {}, i.client_ip));
        client.addEventListener('click', () => filterByIp(i.client_ip));
      }
      return el('tr', { class: !first && !seen.has(i.id) ? 'fresh' : null, 'data-kind': i.kind, 'data-ts': i.ts },
        td(when(i.ts), 'when'),
        td(el('code', {}, i.kind)),
        td(i.action),
        td(client),
        td(detail, 'detail'));
    });
    st.seenIncidents = next;
    const f = st.filter;
    const meta = $('incidents-meta');
    if (filtered && filtered.error) {
      meta.textContent = 'Cannot filter: ' + filtered.error;
    } else if (filtered) {
      const parts = [];
      if (f.kind) parts.push('kind ' + f.kind);
      if (f.ip) parts.push('client ' + f.ip);
      if (f.since) parts.push($('f-since').selectedOptions[0].textContent);
      meta.textContent = list.length + (list.length === 1 ? ' incident' : ' incidents') + ' (' + parts.join(', ') + '), newest first.';
    } else {
      meta.textContent = 'The newest ' + list.length + ', newest first. Click an address to see only its incidents.';
    }
    fillTable('incidents', rows, 5, filtered ? 'No incidents match these filters.' : 'No incidents recorded.');
  }

  function renderConnections(summary, conns, d) {
    const open = conns ? conns.open : summary.open;
    const max = conns ? conns.max : summary.max;
    $('conn-count').textContent = open + ' open of ' + max + ' allowed';
    $('session-count').textContent = String(d.sessions ?? '–');
    $('dropped').textContent = String(d.dropped_incidents ?? 0);
    const now = Date.now();
    const rows = ((conns && conns.connections) || []).map((c) => el('tr', {},
      td(String(c.id), 'num'),
      td(el('code', {}, c.peer)),
      td(duration(now - c.opened_at), 'num')));
    fillTable('connections', rows, 3, conns ? 'No open connections.' : 'Connection list unavailable.');
  }

  // -------------------------------------------------------------- toggles

  async function toggle(name) {
    const btn = $(name);
    const on = !st.modes[name];
    btn.disabled = true;
    try {
      const m = await call('security.' + name + '.toggle', { on });
      renderModes(m);
      announce((name === 'lockdown' ? 'Lockdown' : 'Kill switch') + ' is now ' + (m[name] ? 'on' : 'off') + '.');
      soon(100);
    } catch (e) {
      announce('Cannot switch ' + name + ': ' + e.message, true);
    } finally {
      btn.disabled = false;
    }
  }

  // ---------------------------------------------------------------- start

  async function start() {
    $('login-form').addEventListener('submit', login);
    $('key-form').addEventListener('submit', keyLogin);
    $('logout').addEventListener('click', logout);
    $('block-form').addEventListener('submit', block);
    $('lockdown').addEventListener('click', () => toggle('lockdown'));
    $('emergency').addEventListener('click', () => toggle('emergency'));
    $('range').addEventListener('change', () => soon(0));
    $('incident-filter').addEventListener('submit', applyFilter);
    $('f-clear').addEventListener('click', clearFilter);
    let resize = null;
    window.addEventListener('resize', () => {
      clearTimeout(resize);
      resize = setTimeout(() => {
        if (st.last) renderCharts(st.last.d, st.last.act);
      }, 150);
    });
    document.addEventListener('visibilitychange', () => {
      if (!document.hidden && st.authed) soon(0);
    });
    try {
      await enter();
    } catch (e) {
      if (e.unauthorized) showLogin('');
      else {
        showLogin('');
        $('login-error').textContent = e.message;
      }
    }
  }

  // Test hooks (read-only): the connection state, for scripted checks.
  window.moltgateDashboard = {
    get live() {
      return st.wsReady;
    },
    get updated() {
      return st.updated ? st.updated.getTime() : 0;
    },
  };

  start();
})();
