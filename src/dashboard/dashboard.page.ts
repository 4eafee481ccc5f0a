import { DASHBOARD_SCRIPT } from './dashboard.script';

const STYLE = `
:root{--bg:#f6f7f9;--card:#fff;--ink:#1f2328;--muted:#5c6670;--line:#d8dde3;--ok:#2f9e44;--warn:#e67700;--bad:#c92a2a;--info:#1c7ed6}
*{box-sizing:border-box}
body{margin:0;font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;background:var(--bg);color:var(--ink)}
header{display:flex;flex-wrap:wrap;gap:12px;align-items:center;padding:12px 20px;background:#1f2328;color:#fff}
header h1{font-size:18px;margin:0 12px 0 0}
header .meta{color:#c8ced6;font-size:13px}
.badge{display:inline-block;padding:2px 10px;border-radius:12px;font-weight:600;text-transform:uppercase;font-size:12px;letter-spacing:.04em}
.s-healthy{background:var(--ok);color:#fff}.s-stressed{background:#fab005;color:#1f2328}.s-degraded{background:var(--warn);color:#fff}.s-critical{background:var(--bad);color:#fff}
main{padding:16px 20px;display:grid;gap:16px}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(180px,1fr));gap:12px}
.card,.panel{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:12px 14px}
.card h2,.panel h2{margin:0 0 6px;font-size:12px;font-weight:600;color:var(--muted);text-transform:uppercase;letter-spacing:.05em}
.big{font-size:28px;font-weight:650;font-variant-numeric:tabular-nums}
.small{color:var(--muted);font-size:12px;font-variant-numeric:tabular-nums}
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(520px,1fr));gap:12px}
svg{width:100%;height:170px;display:block}
svg .grid{stroke:#eef0f3}svg .axis{fill:var(--muted);font-size:10px}
.legend{display:flex;flex-wrap:wrap;gap:10px;font-size:12px;color:var(--muted);margin-top:4px}
.legend i{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:4px;vertical-align:-1px}
table{width:100%;border-collapse:collapse;font-variant-numeric:tabular-nums}
th,td{text-align:left;padding:5px 8px;border-bottom:1px solid var(--line)}th{color:var(--muted);font-weight:600;font-size:12px}
.st-closed{color:var(--ok);font-weight:600}.st-half_open{color:var(--warn);font-weight:600}.st-open{color:var(--bad);font-weight:700}
#auth{display:none}#auth.shown{display:block}
#auth input{font:inherit;padding:4px 8px;width:280px}#auth button{font:inherit;padding:4px 12px}
.conn-ok{color:#8ce99a}.conn-bad{color:#ffa8a8}
`;

const BODY = `
<header>
  <h1>Bulwark</h1>
  <span id="strategy" class="badge s-healthy">…</span>
  <span class="meta">health score <b id="health-score">…</b></span>
  <span class="meta">updated <span id="updated">never</span></span>
  <span class="meta">stream <span id="conn" class="conn-bad">connecting</span></span>
</header>
<main>
  <section id="auth" class="panel">
    <h2>Admin key needed</h2>
    <p>This gateway shows its figures to the admin key only (HEALTH_DETAILS=admin). The key stays in this tab.</p>
    <form id="auth-form"><input id="auth-key" type="password" autocomplete="off" placeholder="admin key"> <button>Show</button></form>
  </section>
  <section class="cards">
    <div class="card"><h2>Queue waiting</h2><div class="big" id="queue-total">–</div>
      <div class="small">high <span id="q-high">–</span> · normal <span id="q-normal">–</span> · low <span id="q-low">–</span> · of <span id="q-max">–</span></div></div>
    <div class="card"><h2>In flight</h2><div class="big" id="inflight">–</div><div class="small">of <span id="inflight-max">–</span> concurrent</div></div>
    <div class="card"><h2>Admitted / s</h2><div class="big" id="admitted-rate">–</div><div class="small"><span id="admitted-total">0</span> since start</div></div>
    <div class="card"><h2>Refused / s</h2><div class="big" id="refused-rate">–</div><div class="small"><span id="refused-total">0</span> since start</div><div class="small" id="refused-reasons"></div></div>
    <div class="card"><h2>Upstream latency</h2><div class="big"><span id="latency">–</span><span class="small"> ms</span></div><div class="small">time to first token <span id="ttft">–</span> ms</div></div>
    <div class="card"><h2>Batch lines waiting</h2><div class="big" id="batch-waiting">–</div><div class="small"><span id="batch-active">–</span> batches · running here <span id="batch-running">–</span> · done here <span id="batch-done">–</span></div></div>
    <div class="card"><h2>Abandoned</h2><div class="big" id="abandoned">–</div><div class="small"><span id="abandoned-capacity">–</span> % of capacity · reset in <span id="reset-in">–</span></div></div>
  </section>
  <section class="charts">
    <div class="panel"><h2>Queue depth by priority, and in flight</h2><svg id="chart-queue" viewBox="0 0 600 170" preserveAspectRatio="none"></svg><div class="legend" id="legend-queue"></div></div>
    <div class="panel"><h2>Admitted vs refused per second, by reason</h2><svg id="chart-admission" viewBox="0 0 600 170" preserveAspectRatio="none"></svg><div class="legend" id="legend-admission"></div></div>
    <div class="panel"><h2>Upstream latency and time to first token (ms)</h2><svg id="chart-latency" viewBox="0 0 600 170" preserveAspectRatio="none"></svg><div class="legend" id="legend-latency"></div></div>
    <div class="panel"><h2>Health score</h2><svg id="chart-health" viewBox="0 0 600 170" preserveAspectRatio="none"></svg><div class="legend" id="legend-health"></div></div>
  </section>
  <section class="panel"><h2>Waiting by client key (fair share within a priority)</h2>
    <table><thead><tr><th>key</th><th>waiting</th></tr></thead><tbody id="keys"><tr><td colspan="2" class="small">nothing waiting</td></tr></tbody></table>
  </section>
  <section class="panel"><h2>Token budgets by client key (across instances)</h2>
    <table><thead><tr><th>key</th><th>period</th><th>remaining</th><th>limit</th></tr></thead><tbody id="budgets"><tr><td colspan="4" class="small">no key has token limits</td></tr></tbody></table>
  </section>
  <section class="panel"><h2>Upstreams (in flight everywhere; KV cache and prefix cache from their own /metrics)</h2>
    <table><thead><tr><th>upstream</th><th>in flight</th><th>queued there</th><th>KV cache</th><th>prefix-cache hits</th></tr></thead><tbody id="upstreams"><tr><td colspan="5" class="small">no upstream figures yet</td></tr></tbody></table>
  </section>
  <section class="panel"><h2>Background responses (whole cluster: queued and in progress now, the rest so far)</h2>
    <table><thead><tr><th>queued</th><th>in progress</th><th>completed</th><th>incomplete</th><th>failed</th><th>cancelled</th></tr></thead><tbody><tr id="background"><td colspan="6" class="small">–</td></tr></tbody></table>
  </section>
  <section class="panel"><h2>Circuit breakers</h2>
    <table><thead><tr><th>upstream:model</th><th>state</th><th>failures / calls</th><th>probes in</th></tr></thead><tbody id="breakers"><tr><td colspan="4" class="small">none yet: a breaker appears with its first upstream call</td></tr></tbody></table>
  </section>
</main>
`;

/**
 * The dashboard page: one self-contained HTML document (inline CSS and script, no external fetch of
 * any kind) that reads `/dashboard/stream`. Built by a function, not at import time.
 */
export function dashboardHtml(): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>Bulwark dashboard</title><style>${STYLE}</style></head>
<body>${BODY}<script>${DASHBOARD_SCRIPT}</script></body></html>`;
}

/** The inline script, for the page's Content-Security-Policy hash. */
export function dashboardScript(): string {
  return DASHBOARD_SCRIPT;
}
