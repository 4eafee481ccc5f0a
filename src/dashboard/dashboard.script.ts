/**
 * The dashboard's browser script, inlined into the page. Plain ES2017 with no dependencies: it reads
 * `/dashboard/stream` with fetch (so it can send the admin key as a header, which EventSource cannot),
 * reconnects on its own, and draws the charts as inline SVG. Written without backticks or `${` because
 * it lives inside a template literal.
 */
export const DASHBOARD_SCRIPT = String.raw`
(function () {
  'use strict';
  var KEY_STORE = 'bulwark-dashboard-key';
  var WINDOW_MS = 120000;
  var state = { config: null, history: [] };
  var PRIORITY = [['high', '#c92a2a'], ['normal', '#1c7ed6'], ['low', '#868e96']];
  var PALETTE = ['#e67700', '#c92a2a', '#862e9c', '#0b7285', '#a61e4d', '#5f3dc4', '#495057', '#5c940d'];
  var reasonColors = {};
  var SVGNS = 'http://www.w3.org/2000/svg';

  function $(id) { return document.getElementById(id); }
  function text(id, value) { var node = $(id); if (node) node.textContent = String(value); }
  function num(n, digits) { return n === null || n === undefined ? '–' : Number(n).toFixed(digits || 0); }
  function mmss(s) { s = Math.max(0, Math.round(s)); return Math.floor(s / 60) + ':' + String(s % 60).padStart(2, '0'); }
  function colorOf(reason) {
    if (!reasonColors[reason]) reasonColors[reason] = PALETTE[Object.keys(reasonColors).length % PALETTE.length];
    return reasonColors[reason];
  }
  function lastNonNull(key) {
    for (var i = state.history.length - 1; i >= 0; i--) {
      var v = state.history[i][key];
      if (v !== null && v !== undefined) return v;
    }
    return null;
  }
  function svgNode(name, attrs, content) {
    var node = document.createElementNS(SVGNS, name);
    Object.keys(attrs).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (content !== undefined) node.textContent = content;
    return node;
  }
  function niceMax(v) {
    if (!(v > 0)) return 1;
    var p = Math.pow(10, Math.floor(Math.log10(v)));
    var steps = [1, 2, 2.5, 5, 10];
    for (var i = 0; i < steps.length; i++) if (steps[i] * p >= v) return steps[i] * p;
    return 10 * p;
  }

  /** Draws line series (values may be null: gaps) over the last two minutes. */
  function chart(id, legendId, series, opts) {
    var svg = $(id);
    var W = Math.max(200, Math.round(svg.clientWidth || 600)), H = 170, L = 40, R = 8, T = 8, B = 18;
    svg.setAttribute('viewBox', '0 0 ' + W + ' ' + H);
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    var times = state.history.map(function (s) { return s.t; });
    var now = times.length ? times[times.length - 1] : Date.now();
    var peak = 0;
    series.forEach(function (s) { s.values.forEach(function (v) { if (v !== null && v > peak) peak = v; }); });
    var max = opts && opts.max ? opts.max : niceMax(peak);
    var x = function (t) { return L + (1 - (now - t) / WINDOW_MS) * (W - L - R); };
    var y = function (v) { return T + (1 - Math.min(v, max) / max) * (H - T - B); };
    [0, 0.5, 1].forEach(function (f) {
      svg.appendChild(svgNode('line', { x1: L, x2: W - R, y1: y(max * f), y2: y(max * f), class: 'grid' }));
      svg.appendChild(svgNode('text', { x: L - 4, y: y(max * f) + 3, 'text-anchor': 'end', class: 'axis' }, String(+(max * f).toFixed(2))));
    });
    ((opts && opts.marks) || []).forEach(function (m) {
      svg.appendChild(svgNode('line', { x1: L, x2: W - R, y1: y(m[0]), y2: y(m[0]), stroke: m[1], 'stroke-dasharray': '3 4', 'stroke-width': 1 }));
    });
    svg.appendChild(svgNode('text', { x: L, y: H - 4, class: 'axis' }, '-2 min'));
    svg.appendChild(svgNode('text', { x: W - R, y: H - 4, 'text-anchor': 'end', class: 'axis' }, 'now'));
    series.forEach(function (s) {
      var d = '', pen = false;
      s.values.forEach(function (v, i) {
        if (v === null || v === undefined || now - times[i] > WINDOW_MS) { pen = false; return; }
        d += (pen ? ' L' : ' M') + x(times[i]).toFixed(1) + ' ' + y(v).toFixed(1);
        pen = true;
      });
      if (d) svg.appendChild(svgNode('path', { d: d, fill: 'none', stroke: s.color, 'stroke-width': 2, 'stroke-dasharray': s.dashed ? '5 3' : 'none' }));
    });
    var legend = $(legendId);
    legend.textContent = '';
    series.forEach(function (s) {
      var item = document.createElement('span');
      var swatch = document.createElement('i');
      swatch.style.background = s.color;
      item.appendChild(swatch);
      var last = null;
      for (var i = s.values.length - 1; i >= 0; i--) if (s.values[i] !== null && s.values[i] !== undefined) { last = s.values[i]; break; }
      item.appendChild(document.createTextNode(s.name + ' ' + (last === null ? '–' : +last.toFixed(2))));
      legend.appendChild(item);
    });
  }

  function render() {
    var h = state.history, s = h[h.length - 1];
    if (!s) return;
    var cfg = state.config || {};
    var badge = $('strategy');
    badge.textContent = s.strategy;
    badge.className = 'badge s-' + s.strategy;
    text('health-score', num(s.healthScore, 2));
    text('updated', new Date(s.t).toLocaleTimeString());
    text('queue-total', s.waiting);
    text('q-high', s.queue.high); text('q-normal', s.queue.normal); text('q-low', s.queue.low);
    text('q-max', cfg.max_queue_size === undefined ? '–' : cfg.max_queue_size);
    text('inflight', s.active);
    text('inflight-max', cfg.max_concurrent === undefined ? '–' : cfg.max_concurrent);
    text('admitted-rate', num(s.admittedPerS, 1));
    text('admitted-total', s.totals.admitted);
    text('refused-rate', num(s.refusedPerS, 1));
    text('refused-total', s.totals.refused);
    text('refused-reasons', Object.keys(s.refusedByReason).map(function (r) { return r + ' ' + s.refusedByReason[r]; }).join(' · '));
    text('latency', num(lastNonNull('upstreamLatencyMs')));
    text('ttft', num(lastNonNull('ttftMs')));
    text('abandoned', s.abandoned);
    text('abandoned-capacity', num(s.abandonedCapacityPercent, 1));
    text('reset-in', mmss(s.timeUntilResetS));
    if (s.batches) {
      text('batch-waiting', s.batches.linesWaiting);
      text('batch-active', s.batches.activeBatches);
      text('batch-running', s.batches.linesRunning);
      text('batch-done', s.batches.linesDone.completed + s.batches.linesDone.failed);
    }

    var col = function (key) { return h.map(function (p) { return p[key]; }); };
    chart('chart-queue', 'legend-queue', PRIORITY.map(function (p) {
      return { name: p[0], color: p[1], values: h.map(function (q) { return q.queue[p[0]]; }) };
    }).concat([{ name: 'in flight', color: '#2f9e44', dashed: true, values: col('active') }]));
    var reasons = {};
    h.forEach(function (p) { Object.keys(p.refusedByReason).forEach(function (r) { reasons[r] = true; }); });
    chart('chart-admission', 'legend-admission', [{ name: 'admitted', color: '#2f9e44', values: col('admittedPerS') }].concat(
      Object.keys(reasons).sort().map(function (r) {
        return { name: 'refused ' + r, color: colorOf(r), values: h.map(function (p) { return p.refusedByReason[r] || 0; }) };
      })));
    chart('chart-latency', 'legend-latency', [
      { name: 'upstream latency', color: '#1c7ed6', values: col('upstreamLatencyMs') },
      { name: 'time to first token', color: '#862e9c', values: col('ttftMs') },
    ]);
    chart('chart-health', 'legend-health', [{ name: 'health score', color: '#1f2328', values: col('healthScore') }],
      { max: 1, marks: [[0.8, '#fab005'], [0.6, '#e67700'], [0.35, '#c92a2a']] });

    var keys = $('keys');
    keys.textContent = '';
    (s.waitingByKey || []).forEach(function (k) {
      var row = document.createElement('tr');
      [k.name, String(k.waiting)].forEach(function (v) {
        var cell = document.createElement('td');
        cell.textContent = v;
        row.appendChild(cell);
      });
      keys.appendChild(row);
    });
    if (!keys.firstChild) keys.innerHTML = '<tr><td colspan="2" class="small">nothing waiting</td></tr>';

    var budgets = $('budgets');
    if ((s.tokenBudgets || []).length) {
      budgets.textContent = '';
      s.tokenBudgets.forEach(function (b) {
        var row = document.createElement('tr');
        [b.name, 'per ' + b.period, String(b.remaining), String(b.limit)].forEach(function (v) {
          var cell = document.createElement('td');
          cell.textContent = v;
          row.appendChild(cell);
        });
        budgets.appendChild(row);
      });
    }

    var ups = $('upstreams');
    if (s.upstreams && s.upstreams.length) {
      ups.textContent = '';
      s.upstreams.forEach(function (u) {
        var row = document.createElement('tr');
        var pct = function (v) { return v === null || v === undefined ? '–' : Math.round(v * 100) + ' %'; };
        [u.name, u.inFlight === null ? '–' : u.inFlight, u.waiting === null ? '–' : u.waiting, pct(u.kvCacheUsage) + (u.kvCachePressure ? ' (pressure)' : ''), pct(u.prefixCacheHitRate)].forEach(function (v, i) {
          var cell = document.createElement('td');
          cell.textContent = v;
          if (i === 3 && u.kvCachePressure) cell.className = 'st-open';
          row.appendChild(cell);
        });
        ups.appendChild(row);
      });
    }

    var background = $('background');
    if (s.backgroundResponses) {
      background.textContent = '';
      ['queued', 'in_progress', 'completed', 'incomplete', 'failed', 'cancelled'].forEach(function (status) {
        var cell = document.createElement('td');
        cell.textContent = String(s.backgroundResponses[status] || 0);
        background.appendChild(cell);
      });
    }

    var body = $('breakers');
    if (s.breakers.length) {
      body.textContent = '';
      s.breakers.forEach(function (b) {
        var row = document.createElement('tr');
        [b.key, b.state.replace('_', '-'), b.failures + ' / ' + b.calls, b.retryInMs > 0 ? Math.ceil(b.retryInMs / 1000) + ' s' : '–'].forEach(function (v, i) {
          var cell = document.createElement('td');
          cell.textContent = v;
          if (i === 1) cell.className = 'st-' + b.state;
          row.appendChild(cell);
        });
        body.appendChild(row);
      });
    }
  }

  function accept(event, data) {
    var parsed;
    try { parsed = JSON.parse(data); } catch (e) { return; }
    if (event === 'history') {
      state.config = parsed.config;
      state.history = parsed.history || [];
    } else {
      state.history.push(parsed);
      if (state.history.length > 130) state.history.splice(0, state.history.length - 130);
    }
    render();
  }

  function setConn(ok, label) {
    var c = $('conn');
    c.textContent = label || (ok ? 'live' : 'reconnecting');
    c.className = ok ? 'conn-ok' : 'conn-bad';
  }

  function headers() {
    var key = sessionStorage.getItem(KEY_STORE);
    return key ? { 'x-api-key': key } : {};
  }

  function needKey() {
    setConn(false, 'admin key needed');
    $('auth').className = 'panel shown';
  }

  $('auth-form').addEventListener('submit', function (e) {
    e.preventDefault();
    sessionStorage.setItem(KEY_STORE, $('auth-key').value);
    $('auth').className = 'panel';
    connect();
  });

  async function connect() {
    var ctl = new AbortController();
    var watchdog = null;
    var pet = function () { clearTimeout(watchdog); watchdog = setTimeout(function () { ctl.abort(); }, 5000); };
    pet();
    try {
      var res = await fetch('/dashboard/stream', { headers: headers(), signal: ctl.signal, cache: 'no-store' });
      if (res.status === 401 || res.status === 403) { clearTimeout(watchdog); needKey(); return; }
      if (!res.ok || !res.body) throw new Error('HTTP ' + res.status);
      setConn(true);
      var reader = res.body.getReader(), decoder = new TextDecoder(), buffer = '';
      for (;;) {
        var chunk = await reader.read();
        if (chunk.done) break;
        pet();
        buffer += decoder.decode(chunk.value, { stream: true });
        var end;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          var block = buffer.slice(0, end), event = 'message', data = [];
          buffer = buffer.slice(end + 2);
          block.split('\n').forEach(function (line) {
            if (line.indexOf('event:') === 0) event = line.slice(6).trim();
            else if (line.indexOf('data:') === 0) data.push(line.slice(5).replace(/^ /, ''));
          });
          if (data.length) accept(event, data.join('\n'));
        }
      }
    } catch (e) {
      // Dropped, timed out or refused: fall through to the reconnect below.
    }
    clearTimeout(watchdog);
    ctl.abort();
    setConn(false);
    setTimeout(connect, 2000);
  }

  window.addEventListener('resize', render);
  connect();
})();
`;
