// SPDX-License-Identifier: MIT
// The live flamegraph page: subscribes to /events (ior JSON {n,v,t,c} per
// new snapshot version) and draws an icicle chart (root on top) that updates
// in place.  Zoom is kept as the path of names from the root, so it survives
// updates (falling back to the nearest ancestor that still exists); the
// search is re-applied to each update.  Names are untrusted: they only ever
// reach the page through textContent, never as markup.
'use strict';
(function () {
  const q = new URLSearchParams(location.search);
  const token = q.get('token');
  const withToken = (u) => token ? u + (u.includes('?') ? '&' : '?') + 'token=' + encodeURIComponent(token) : u;
  const $ = (id) => document.getElementById(id);
  const chart = $('chart'), status = $('status'), crumbs = $('crumbs'), tip = $('tip');
  const ROW = 18, MIN_PX = 0.5, MAX_ELEMS = 20000;
  let root = null, version = 0, paused = false, pending = null;
  let zoomPath = [];           // names from the root to the zoomed node
  let search = null;           // RegExp or null

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

  // The zoomed node: the deepest node along zoomPath that exists now.
  // zoomPath itself stays what the user chose, so a node that comes back
  // (after a reset, say) is zoomed again.
  function resolveZoom() {
    const chain = [root];
    let node = root;
    for (const name of zoomPath) {
      const next = (node.c || []).find((k) => k.n === name);
      if (!next) break;
      chain.push(next);
      node = next;
    }
    return chain;
  }

  function matches(name) {
    return search !== null && search.test(name);
  }

  function render() {
    if (!root) return;
    const chain = resolveZoom();
    const zoom = chain[chain.length - 1];
    const width = chart.clientWidth || 800;
    const frag = document.createDocumentFragment();
    let elems = 0, maxDepth = 0, matched = 0;
    function box(node, depth, x, w, path) {
      if (elems >= MAX_ELEMS) return;
      const d = document.createElement('div');
      d.className = 'f';
      if (search !== null) d.classList.add(matches(node.n) ? 'm' : 'dim');
      d.style.left = x + 'px';
      d.style.top = (depth * ROW) + 'px';
      d.style.width = Math.max(w, 1) + 'px';
      d.style.background = node === root ? '#ccc' : color(node.n);
      d.textContent = w > 24 ? (node === root ? 'all' : node.n) : '';
      d.dataset.depth = String(depth);
      d._node = node;
      d._path = path;
      frag.appendChild(d);
      elems++;
      if (depth > maxDepth) maxDepth = depth;
    }
    // Ancestors of the zoomed node span the full width.
    for (let i = 0; i < chain.length - 1; i++) box(chain[i], i, 0, width, chain.slice(1, i + 1).map((k) => k.n));
    const base = chain.length - 1;
    const scale = zoom.t > 0 ? width / zoom.t : 0;
    // Breadth of the walk is bounded by MIN_PX: narrower subtrees are skipped.
    const stack = [[zoom, base, 0, chain.slice(1).map((k) => k.n), false]];
    while (stack.length && elems < MAX_ELEMS) {
      const [node, depth, x, path, under] = stack.pop();
      const w = node.t * scale;
      const hit = !under && matches(node.n) && node !== root;
      if (hit) matched += node.t;
      box(node, depth, x, w, path);
      let cx = x;
      for (const k of node.c || []) {
        const kw = k.t * scale;
        if (kw >= MIN_PX) stack.push([k, depth + 1, cx, path.concat([k.n]), under || hit]);
        cx += kw;
      }
    }
    chart.replaceChildren(frag);
    chart.style.height = ((maxDepth + 1) * ROW + 4) + 'px';
    crumbs.textContent = chain.length > 1 ? 'zoom: ' + chain.slice(1).map((k) => k.n).join(' \u203a ') : '';
    let s = (paused ? 'paused \u2014 ' : '') + 'version ' + version + ', total ' + fmt(root.t);
    if (search !== null) s += ', matched ' + fmt(matched) + ' (' + (root.t ? (100 * matched / root.t).toFixed(2) : '0') + '%)';
    status.textContent = s;
  }

  function onSnapshot(data, v) {
    let tree;
    try { tree = JSON.parse(data); } catch (e) { status.textContent = 'bad event: ' + e.message; return; }
    document.body.dataset.received = v; // the last version received, shown or not (tests)
    if (paused) { pending = [tree, v]; return; }
    root = tree;
    version = v;
    render();
  }

  function connect() {
    const es = new EventSource(withToken('events'));
    es.onmessage = (ev) => onSnapshot(ev.data, ev.lastEventId);
    es.onerror = () => { status.textContent = 'disconnected; reconnecting\u2026'; };
  }

  function setPaused(p) {
    paused = p;
    document.body.classList.toggle('paused', p);
    $('pause').textContent = p ? 'resume' : 'pause';
    if (!p && pending) { const [t, v] = pending; pending = null; root = t; version = v; }
    render();
  }

  function reset() {
    fetch(withToken('reset'), { method: 'POST' })
      .then((r) => r.ok ? r.json() : r.text().then((t) => { throw new Error(t); }))
      .then((tree) => { root = tree; render(); })
      .catch((e) => { status.textContent = 'reset failed: ' + e.message; });
  }

  let lastTotal = null, lastTime = 0;
  function poll() {
    fetch(withToken('api/status')).then((r) => r.json()).then((s) => {
      const now = performance.now(), total = s.total[0] || 0;
      let rate = '';
      if (lastTotal !== null && now > lastTime && total >= lastTotal) rate = fmt(Math.round((total - lastTotal) * 1000 / (now - lastTime))) + '/s, ';
      lastTotal = total; lastTime = now;
      const mem = s.memory.snapshot + s.memory.master + s.memory.shards + s.memory.intern;
      $('figures').textContent = rate + 'v' + s.version + ', ' + fmt(s.nodes) + ' nodes, dropped ' + fmt(s.dropped) +
        ', ' + (mem / 1048576).toFixed(1) + ' MiB';
    }).catch(() => {});
  }

  chart.addEventListener('click', (ev) => {
    const d = ev.target.closest('.f');
    if (!d) return;
    zoomPath = d._path;
    render();
  });
  chart.addEventListener('mousemove', (ev) => {
    const d = ev.target.closest('.f');
    if (!d) { tip.hidden = true; return; }
    const n = d._node, self = n.v, pct = root.t ? (100 * n.t / root.t).toFixed(2) : '0';
    tip.textContent = (n === root ? 'all' : n.n) + '\ntotal ' + fmt(n.t) + ' (' + pct + '%), self ' + fmt(self);
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
  $('pause').addEventListener('click', () => setPaused(!paused));
  $('reset').addEventListener('click', reset);
  $('unzoom').addEventListener('click', () => { zoomPath = []; render(); });
  document.addEventListener('keydown', (ev) => {
    if (ev.target && ev.target.tagName === 'INPUT') return;
    if (ev.key === ' ') { ev.preventDefault(); setPaused(!paused); }
    else if (ev.key === 'r') reset();
    else if (ev.key === 'Escape') { zoomPath = []; render(); }
  });
  addEventListener('resize', render);
  connect();
  poll();
  setInterval(poll, 1000);
}());
