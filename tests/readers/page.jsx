// SPDX-License-Identifier: MIT
// The page tests/test_readers.c renders in headless Chromium: Pyroscope's own
// flamegraph component (@pyroscope/flamegraph, pinned in package.json) draws
// each flamebearer profile of window.ST_PROFILES ([{id, profile}]) with its
// table, then this script writes what the UI shows into <pre id="st-results">
// as JSON, for the test to compare with the input:
//   {id: {rows: [[cell, ...], ...],   the table's rows as text
//         rowData: [...],             each row's data-row attribute
//         tooltip: "...",             the tooltip of the "total" row
//         warnings: [...], error}}    console.warn/error while it rendered
// '<', '>' and '&' are written as \u escapes so the text needs no unescaping.
import React from 'react';
import { createRoot } from 'react-dom/client';
import { flushSync } from 'react-dom';
import { FlamegraphRenderer } from '@pyroscope/flamegraph';
import '@pyroscope/flamegraph/dist/index.css';

const results = {};
let current = null;
for (const level of ['warn', 'error']) {
  const orig = console[level];
  console[level] = (...args) => {
    if (current) current.warnings.push(args.map(String).join(' '));
    orig.apply(console, args);
  };
}

class Boundary extends React.Component {
  constructor(props) {
    super(props);
    this.state = { error: null };
  }

  static getDerivedStateFromError(error) {
    return { error };
  }

  render() {
    if (this.state.error) return <p className="st-error">{String(this.state.error)}</p>;
    return this.props.children;
  }
}

function rowsOf(box) {
  return Array.from(box.querySelectorAll('table tbody tr')).map((tr) =>
    Array.from(tr.querySelectorAll('td')).map((td) => td.textContent.trim())
  );
}

const boxes = [];
for (const { id, profile } of window.ST_PROFILES) {
  const box = document.createElement('div');
  box.id = `st-${id}`;
  document.body.appendChild(box);
  const r = { rows: [], rowData: [], tooltip: '', warnings: [], error: null };
  results[id] = r;
  current = r;
  try {
    flushSync(() =>
      createRoot(box).render(
        <Boundary>
          <FlamegraphRenderer profile={profile} onlyDisplay="both" showToolbar={false} />
        </Boundary>
      )
    );
  } catch (e) {
    r.error = String(e);
  }
  const err = box.querySelector('.st-error');
  if (err) r.error = err.textContent;
  r.rows = rowsOf(box);
  r.rowData = Array.from(box.querySelectorAll('table tbody tr')).map((tr) => tr.dataset.row || '');
  boxes.push([box, r]);
}
current = null;

// Hover each table's "total" row: the table tooltip shows the total as time.
for (const [box, r] of boxes) {
  const tr = Array.from(box.querySelectorAll('table tbody tr')).find(
    (t) => t.querySelector('td') && t.querySelector('td').textContent.trim() === 'total'
  );
  if (!tr) continue;
  const td = tr.querySelectorAll('td')[1] || tr;
  const rect = td.getBoundingClientRect();
  current = r;
  flushSync(() =>
    td.dispatchEvent(
      new MouseEvent('mousemove', { bubbles: true, clientX: rect.left + 1, clientY: rect.top + 1 })
    )
  );
  current = null;
}

setTimeout(() => {
  for (const [box, r] of boxes) {
    const tips = Array.from(box.querySelectorAll('[data-testid="tooltip"]'))
      .map((t) => t.textContent.trim())
      .filter((t) => t);
    r.tooltip = tips.join(' | ');
  }
  const pre = document.createElement('pre');
  pre.id = 'st-results';
  pre.textContent = JSON.stringify(results).replace(
    /[<>&]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`
  );
  document.body.appendChild(pre);
}, 200);
