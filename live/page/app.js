// SPDX-License-Identifier: MIT
// The live flamegraph page.  Invariants:
// - One EventSource at a time, on events?metric=M&window=W (the view); a
//   metric or window switch closes it and opens the new one (the server
//   keeps everything: switching clears nothing).  Each event is the ior JSON
//   {n,v,t,c} of the view's tree; the tree shown is the last one received
//   unless paused (then it is kept aside and shown on resume).
// - Zoom is the path of names from the root and the search a RegExp: both
//   are the user's, never reset by an update or a switch; the zoomed node
//   shown is the deepest existing node along the path (its nearest ancestor
//   while it is gone, the node again when it comes back).
// - Names (frames, metrics, fields, error reasons) are untrusted: they only
//   ever reach the page through textContent, never as markup.
// - /api/status is read once a second, one request at a time, each bounded
//   by a timeout; state changes are same-origin POSTs (mark, reset, order).
// - body.dataset says what is shown, for the tests: events (the stream's
//   URL), view (its parameters), received/shown (versions), total, polls,
//   boxes, elements and renderMs (the last render's size and time),
//   pushDropped (the pusher's dropped intervals, when it pushes).
'use strict';
(function () {
  const q = new URLSearchParams(location.search);
  const token = q.get('token');
  const withToken = (u) => token ? u + (u.includes('?') ? '&' : '?') + 'token=' + encodeURIComponent(token) : u;
  const $ = (id) => document.getElementById(id);
  const chart = $('chart'), boxes = $('boxes'), canvas = $('thin'), status = $('status'), crumbs = $('crumbs'), tip = $('tip');
  const selMetric = $('metric'), selWindow = $('window'), ds = document.body.dataset;
  const ROW = 18, MIN_PX = 0.3, MAX_BOXES = 200000, LABEL_PX = 24;
  let root = null, version = 0, shownView = '', paused = false, pending = null;
  let zoomPath = [];           // names from the root to the zoomed node
  let search = null;           // RegExp or null
  let metric = q.get('metric') || '', win = q.get('window') || 'all';
  let es = null, showNext = false, retry = null, metricNames = [];

  function hue(name) {
    let h = 0;
    for (let i = 0; i < name.length; i++) h = (h * 31 + name.charCodeAt(i)) | 0;
    return h;
  }
  function color(name) {
    const h = hue(name);
    return 'hsl(' + (10 + (h & 0x1f)) + ',' + (70 + ((h >> 5) & 0xf)) + '%,' + (60 + ((h >> 9) & 0xf)) + '%)';
  }
  function fmt(n) { return n.toLocaleString('en-US'); }
  function bytes(n) { return n >= 1048576 ? (n / 1048576).toFixed(1) + ' MiB' : Math.ceil(n / 1024) + ' KiB'; }
  function note(text) { $('note').textContent = text; }

  // ---------------------------------------------------------------- chart

  // The zoomed node's chain from the root: the deepest along zoomPath that
  // exists now (a node with nothing in this window counts as gone).
  function resolveZoom() {
    const chain = [root];
    let node = root;
    for (const name of zoomPath) {
      const next = (node.c || []).find((k) => k.n === name && k.t > 0);
      if (!next) break;
      chain.push(next);
      node = next;
    }
    return chain;
  }

  function matches(name) { return search !== null && search.test(name); }

  function windowLabel() {
    const o = selWindow.selectedOptions[0];
    return o ? o.textContent : win;
  }

  // Boxes wide enough for a label are elements (.f, text through
  // textContent); narrower ones are painted on a canvas under them, so a
  // tree of many thin frames costs rectangles, not elements.  A box is
  // {n: node, d: depth, x, w, up: parent box or null, path: for the zoomed
  // node and its ancestors}; rows[depth] lists the painted ones (hover, click).
  let rows = [];
  function pathOf(b) {
    const names = [];
    for (; b.up; b = b.up) names.push(b.n.n);
    return b.path.concat(names.reverse());
  }

  function render() {
    if (!root) return;
    const t0 = performance.now();
    const chain = resolveZoom();
    const zoom = chain[chain.length - 1];
    const width = chart.clientWidth || 800;
    const frag = document.createDocumentFragment(), thin = [];
    let count = 0, maxDepth = chain.length - 1, matched = 0;
    function element(b) {
      const d = document.createElement('div');
      d.className = 'f';
      if (search !== null) d.classList.add(matches(b.n.n) ? 'm' : 'dim');
      d.style.left = b.x + 'px';
      d.style.top = (b.d * ROW) + 'px';
      d.style.width = b.w + 'px';
      d.style.background = b.n === root ? '#ccc' : color(b.n.n);
      d.textContent = b.n === root ? 'all' : b.n.n;
      d.dataset.t = b.n.t;
      d._box = b;
      frag.appendChild(d);
    }
    // Ancestors of the zoomed node span the full width.
    for (let i = 0; i < chain.length - 1; i++) element({ n: chain[i], d: i, x: 0, w: width, up: null, path: chain.slice(1, i + 1).map((k) => k.n) });
    const scale = zoom.t > 0 ? width / zoom.t : 0;
    // The walk skips subtrees narrower than MIN_PX and stops at MAX_BOXES.
    const stack = [[{ n: zoom, d: chain.length - 1, x: 0, w: zoom.t * scale, up: null, path: zoomPath.slice(0, chain.length - 1) }, false]];
    while (stack.length && count < MAX_BOXES) {
      const [b, under] = stack.pop();
      const hit = !under && b.n !== root && matches(b.n.n);
      if (hit) matched += b.n.t;
      if (b.w > LABEL_PX) element(b); else thin.push(b);
      count++;
      if (b.d > maxDepth) maxDepth = b.d;
      let cx = b.x;
      for (const k of b.n.c || []) {
        const kw = k.t * scale;
        if (kw >= MIN_PX) stack.push([{ n: k, d: b.d + 1, x: cx, w: kw, up: b, path: null }, under || hit]);
        cx += kw;
      }
    }
    const height = (maxDepth + 1) * ROW;
    paint(thin, width, height);
    boxes.replaceChildren(frag);
    chart.style.height = (height + 4) + 'px';
    crumbs.textContent = chain.length > 1 ? 'zoom: ' + chain.slice(1).map((k) => k.n).join(' \u203a ') : '';
    let s = (paused ? 'paused \u2014 ' : '') + 'version ' + version + ', total ' + fmt(root.t);
    if (search !== null) s += ', matched ' + fmt(matched) + ' (' + (root.t ? (100 * matched / root.t).toFixed(2) : '0') + '%)';
    status.textContent = s + ' \u2014 ' + (selMetric.value || metricNames[0] || 'metric 0') + ', ' + windowLabel();
    ds.shown = version;
    ds.total = root.t;
    ds.view = shownView;
    ds.renderMs = Math.round(performance.now() - t0);
    ds.boxes = count;
    ds.elements = boxes.childElementCount;
  }

  // The thin boxes, on the canvas (device pixels); a match is solid magenta.
  function paint(thin, width, height) {
    const dpr = devicePixelRatio || 1, ctx = canvas.getContext('2d');
    canvas.width = Math.ceil(width * dpr);
    canvas.height = Math.ceil(height * dpr);
    canvas.style.width = width + 'px';
    canvas.style.height = height + 'px';
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    rows = [];
    for (const b of thin) {
      const m = matches(b.n.n);
      ctx.globalAlpha = search !== null && !m ? 0.35 : 1;
      ctx.fillStyle = m ? '#d0f' : color(b.n.n);
      ctx.fillRect(b.x, b.d * ROW + 1, b.w > 2 ? b.w - 1 : b.w, ROW - 2);
      (rows[b.d] = rows[b.d] || []).push(b);
    }
  }

  // The box under the pointer: an element's, or a painted one's.
  function boxAt(ev) {
    const d = ev.target.closest('.f');
    if (d) return d._box;
    const r = chart.getBoundingClientRect(), x = ev.clientX - r.left;
    return (rows[Math.floor((ev.clientY - r.top) / ROW)] || []).find((b) => x >= b.x - 0.5 && x < b.x + b.w + 0.5);
  }

  // At most one render per animation frame, however fast events come.
  let frame = 0;
  function schedule() {
    if (frame) return;
    frame = requestAnimationFrame(() => { frame = 0; render(); });
  }

  // ---------------------------------------------------------------- stream

  function viewParams() {
    const p = new URLSearchParams();
    if (metric) p.set('metric', metric);
    if (win !== 'all') p.set('window', win);
    return p.toString();
  }

  function setConn(state, text) {
    ds.conn = state;
    $('conn').textContent = text;
    $('conn').className = state;
  }

  // Open the stream for the current view (closing the previous one).
  function connect() {
    if (es) es.close();
    clearTimeout(retry);
    const params = viewParams();
    const url = withToken('events' + (params ? '?' + params : ''));
    ds.events = url;
    setConn('connecting', 'connecting\u2026');
    const mine = es = new EventSource(url);
    mine.onopen = () => setConn('open', 'live');
    mine.onmessage = (ev) => onSnapshot(ev.data, ev.lastEventId, params);
    mine.onerror = () => {
      if (mine !== es) return;
      if (mine.readyState === EventSource.CONNECTING) { setConn('connecting', 'reconnecting\u2026'); return; }
      // Closed for good: an error answer.  Say why; try again later unless
      // the server refused this view (4xx: a bad metric or window).
      setConn('closed', 'disconnected');
      explain(url).then((refused) => { if (!refused && mine === es) retry = setTimeout(connect, 5000); });
    };
  }

  // Why the stream was refused: the same request once more, its reason read.
  // Resolves to true when the server refused the view itself (4xx).
  function explain(url) {
    const ac = new AbortController();
    const timer = setTimeout(() => ac.abort(), 5000);
    return fetch(url, { signal: ac.signal }).then((r) => {
      if (r.ok) { ac.abort(); return false; }
      return r.text().then((t) => { note('events: ' + r.status + ' ' + t.trim()); return r.status < 500; });
    }).catch(() => false).finally(() => clearTimeout(timer));
  }

  function onSnapshot(data, v, params) {
    let tree;
    try { tree = JSON.parse(data); } catch (e) { note('bad event: ' + e.message); return; }
    ds.received = v; // the last version received, shown or not
    if (paused && !showNext) { pending = [tree, v, params]; return; }
    showNext = false;
    root = tree;
    version = v;
    shownView = params;
    schedule();
  }

  // A metric or window switch: a new stream, its first tree shown even when paused.
  function switchView() {
    const u = new URL(location.href);
    u.searchParams.set('window', win);
    if (metric) u.searchParams.set('metric', metric);
    history.replaceState(null, '', u);
    pending = null;
    showNext = true;
    status.textContent = 'loading ' + windowLabel() + '\u2026';
    connect();
  }

  function setPaused(p) {
    paused = p;
    document.body.classList.toggle('paused', p);
    $('pause').textContent = p ? 'resume' : 'pause';
    if (!p && pending) { [root, version, shownView] = pending; pending = null; }
    render();
  }

  // ---------------------------------------------------------------- requests

  // fetch, bounded by a timeout: {status, text}, or {status: 0, text: why}.
  function request(path, opts) {
    const ac = new AbortController();
    const timer = setTimeout(() => ac.abort(), 10000);
    return fetch(withToken(path), Object.assign({ signal: ac.signal, cache: 'no-store' }, opts || {}))
      .then((r) => r.text().then((text) => ({ status: r.status, text })))
      .catch((e) => ({ status: 0, text: e.name === 'AbortError' ? 'timed out' : e.message }))
      .finally(() => clearTimeout(timer));
  }
  // A state change (mark, reset): a same-origin POST; a refusal is shown.
  function post(path) {
    return request(path, { method: 'POST' }).then((r) => {
      if (r.status !== 200) note(path + ' failed: ' + (r.status || '') + ' ' + r.text.trim());
      return r;
    });
  }

  function mark() {
    post('mark').then((r) => {
      if (r.status !== 200) return;
      let m = {};
      try { m = JSON.parse(r.text); } catch (e) { /* the mark is set anyway */ }
      note('mark ' + m.mark + ' set at version ' + m.version + ': showing what comes after it');
      win = selWindow.value = 'mark';
      switchView(); // also when already on "since mark": the new mark's window
    });
  }

  // Reset discards data (ior's semantics): it takes a second, explicit click.
  let confirmTimer = null;
  function askReset(on) {
    clearTimeout(confirmTimer);
    $('reset').hidden = on;
    $('reset-yes').hidden = $('reset-no').hidden = !on;
    if (on) confirmTimer = setTimeout(() => askReset(false), 8000);
  }
  function reset() {
    askReset(false);
    post('reset').then((r) => { if (r.status === 200) note('reset: the data recorded so far was discarded'); });
  }

  // ---------------------------------------------------------------- field order

  let fields = [];
  function drawFields() {
    const box = $('fields');
    box.replaceChildren();
    fields.forEach((name, i) => {
      const f = document.createElement('span');
      f.className = 'field';
      const left = document.createElement('button');
      left.type = 'button';
      left.textContent = '\u25c2';
      left.title = 'move left';
      left.disabled = i === 0;
      left.onclick = () => { [fields[i - 1], fields[i]] = [fields[i], fields[i - 1]]; drawFields(); };
      const label = document.createElement('span');
      label.textContent = name;
      f.append(left, label);
      box.append(f);
    });
  }
  function showOrder(r) {
    let j = null;
    try { j = JSON.parse(r.text); } catch (e) { /* not an order */ }
    if (r.status !== 200 || !j || !Array.isArray(j.fields)) {
      $('order').hidden = true;
      ds.order = r.status === 404 ? 'none' : 'error';
      return false;
    }
    fields = j.fields.map(String);
    drawFields();
    $('order').hidden = false;
    ds.order = 'fields';
    return true;
  }
  function applyOrder() {
    $('order-why').textContent = '';
    request('order', { method: 'POST', headers: { 'Content-Type': 'application/json' },
                       body: JSON.stringify({ fields }) }).then((r) => {
      if (r.status === 200) { showOrder(r); note('field order: ' + fields.join(', ')); }
      else $('order-why').textContent = (r.status || '') + ' ' + r.text.trim();
    });
  }

  // ---------------------------------------------------------------- figures

  function setMetrics(names) {
    if (names.join('\n') === metricNames.join('\n')) return;
    metricNames = names;
    selMetric.replaceChildren(...names.map((n) => { const o = document.createElement('option'); o.textContent = n; o.value = n; return o; }));
    selMetric.value = names.includes(metric) ? metric : names[0];
  }

  // The rate is the shown metric's total per second (folded counts and perf
  // samples are samples; another metric is named); a reset starts it over.
  let last = null, polls = 0;
  function figures(s) {
    const now = performance.now(), out = [];
    const mi = Math.max(0, metricNames.indexOf(selMetric.value)), name = metricNames[mi] || 'samples';
    const total = Array.isArray(s.total) ? Number(s.total[mi]) || 0 : 0;
    if (last && last.mi === mi && now > last.time && total >= last.total) {
      out.push(fmt(Math.round((total - last.total) * 1000 / (now - last.time))) + ' ' +
               (/^(count|samples)$/.test(name) ? 'samples' : name) + '/s');
    }
    last = { time: now, total, mi };
    out.push('v' + s.version);
    for (const k of Object.keys(s)) if (/dropped|lost/.test(k) && typeof s[k] === 'number') out.push(k.replace(/_/g, ' ') + ' ' + fmt(s[k]));
    if (s.memory) out.push('snapshot ' + bytes(s.memory.snapshot));
    if (s.window_ring) out.push('windows ' + bytes(s.window_ring.bytes) + ' (' + s.window_ring.snapshots + ' kept)');
    if (s.marks) out.push('marks ' + s.marks);
    $('figures').textContent = out.join(' \u00b7 ');
    pushFigures(s.push);
  }

  // The pusher's figures when the source pushes (--push: a "push" object in
  // /api/status): where to, what went, what waits, what was lost.  Dropped
  // intervals and a failure newer than the last success are warnings.
  function pushFigures(p) {
    const el = $('push');
    if (!p || typeof p !== 'object') { el.hidden = true; el.replaceChildren(); delete ds.pushDropped; return; }
    const num = (v) => Number(v) || 0, parts = [];
    const add = (text, warn) => {
      const e = document.createElement('span');
      e.textContent = text;
      if (warn) e.className = 'warn';
      parts.push(e);
    };
    add('push ' + String(p.url || '') + ': ' + fmt(num(p.sent)) + ' sent (' + bytes(num(p.sent_bytes)) + ')');
    add(fmt(num(p.queued)) + ' queued');
    add(fmt(num(p.retries)) + ' retries');
    const dropped = num(p.dropped);
    add(fmt(dropped) + ' dropped' + (dropped ? ' (' + fmt(num(p.dropped_value)) + ')' : ''), dropped > 0);
    parts[parts.length - 1].id = 'push-dropped';
    if (num(p.rejected)) add(fmt(num(p.rejected)) + ' refused', true);
    const ok = num(p.last_success), bad = num(p.last_failure), now = Date.now() / 1000;
    if (ok) add('last sent ' + Math.max(0, Math.round(now - ok)) + ' s ago');
    if (bad > ok && p.last_error) add('failing: ' + String(p.last_error), true);
    const sep = [];
    parts.forEach((e, i) => { if (i) sep.push(document.createTextNode(' \u00b7 ')); sep.push(e); });
    el.replaceChildren(...sep);
    el.title = p.last_error ? 'last error: ' + String(p.last_error) : '';
    el.hidden = false;
    ds.pushDropped = dropped;
  }

  // One /api/status at a time, about once a second.
  function poll() {
    const t0 = performance.now();
    request('api/status').then((r) => {
      let s = null;
      if (r.status === 200) { try { s = JSON.parse(r.text); } catch (e) { /* below */ } }
      if (s) {
        if (Array.isArray(s.metrics)) setMetrics(s.metrics.map(String));
        figures(s);
        ds.polls = ++polls;
        if (ds.conn === 'down') setConn(es && es.readyState === EventSource.OPEN ? 'open' : 'connecting', 'live');
      } else {
        setConn('down', 'server unreachable' + (r.status ? ' (' + r.status + ')' : '') + '; retrying\u2026');
      }
      setTimeout(poll, Math.max(0, 1000 - (performance.now() - t0)));
    });
  }

  // ---------------------------------------------------------------- input

  chart.addEventListener('click', (ev) => {
    const b = boxAt(ev);
    if (!b) return;
    zoomPath = pathOf(b);
    render();
  });
  chart.addEventListener('mousemove', (ev) => {
    const b = boxAt(ev);
    if (!b) { tip.hidden = true; return; }
    const n = b.n, pct = root.t ? (100 * n.t / root.t).toFixed(2) : '0';
    tip.textContent = (n === root ? 'all' : n.n) + '\ntotal ' + fmt(n.t) + ' (' + pct + '%), self ' + fmt(n.v);
    tip.style.left = Math.min(ev.clientX + 12, innerWidth - 300) + 'px';
    tip.style.top = (ev.clientY + 14) + 'px';
    tip.hidden = false;
  });
  chart.addEventListener('mouseleave', () => { tip.hidden = true; });
  $('search').addEventListener('input', (ev) => {
    const v = ev.target.value;
    if (!v) search = null;
    else {
      try { search = new RegExp(v); } catch (e) { search = new RegExp(v.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')); }
    }
    render();
  });
  // A select gives the keyboard back once chosen (space, r, Esc are the page's).
  selMetric.addEventListener('change', () => { metric = selMetric.value; selMetric.blur(); switchView(); });
  selWindow.addEventListener('change', () => { win = selWindow.value; selWindow.blur(); switchView(); });
  $('pause').addEventListener('click', () => setPaused(!paused));
  $('mark').addEventListener('click', mark);
  $('reset').addEventListener('click', () => askReset(true));
  $('reset-no').addEventListener('click', () => askReset(false));
  $('reset-yes').addEventListener('click', reset);
  $('order-apply').addEventListener('click', applyOrder);
  $('unzoom').addEventListener('click', () => { zoomPath = []; render(); });
  document.addEventListener('keydown', (ev) => {
    const tag = ev.target && ev.target.tagName;
    if (tag === 'INPUT' || tag === 'SELECT' || ev.ctrlKey || ev.metaKey || ev.altKey) return;
    if (tag === 'BUTTON' && (ev.key === ' ' || ev.key === 'Enter')) return; // the button's own click
    if (ev.key === ' ') { ev.preventDefault(); setPaused(!paused); }
    else if (ev.key === 'r') mark();
    else if (ev.key === 'Escape') { zoomPath = []; askReset(false); render(); }
  });
  addEventListener('resize', schedule);

  if (![...selWindow.options].some((o) => o.value === win)) {
    if (/^[1-9][0-9]*s$/.test(win)) selWindow.add(new Option('last ' + win.slice(0, -1) + ' s', win));
    else win = 'all';
  }
  selWindow.value = win;
  connect();
  poll();
  request('order').then(showOrder);
}());
