// The live page of shoredaq: polls /status and /ratemap.json every 2 s and draws the run state, the
// rate map (DU x floor), the trigger rates of the last 10 minutes, the drops, the store, spool and
// transfer state and the last error. Plain DOM + Chart.js (served by the daemon).
'use strict';

const POLL_MS = 2000;
// Colour scale of the map: the DOM's mean PMT rate, logarithmic between these (kHz).
const SCALE_LOW_KHZ = 3;
const SCALE_HIGH_KHZ = 30;
// Viridis-like stops, low to high.
const SCALE_STOPS = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];
const TRIGGER_COLOURS = { '3d_muon': '#1f77b4', '3d_shower': '#d62728', 'mx_shower': '#2ca02c', 'all': '#555555' };
const MARK_NAMES = { missing: 'missing', incomplete: 'incomplete', hrv: 'high-rate veto', wr_unlocked: 'White Rabbit unlocked' };

const $ = (id) => document.getElementById(id);
let selectedDom = null;   // DOM id shown in the PMT chart
let mapLayout = '';       // the detector the grid was built for
let latestMap = null;
let triggerChart = null;
let pmtChart = null;

window.addEventListener('error', (e) => showPageError(`page error: ${e.message}`));

function showPageError(text) {
  const el = $('page-error');
  el.textContent = text;
  el.hidden = false;
}

function colourFor(meanPmtKhz) {
  if (!(meanPmtKhz > 0)) return 'rgb(40, 40, 40)';
  const f = Math.min(1, Math.max(0, Math.log(meanPmtKhz / SCALE_LOW_KHZ) / Math.log(SCALE_HIGH_KHZ / SCALE_LOW_KHZ)));
  const x = f * (SCALE_STOPS.length - 1);
  const i = Math.min(SCALE_STOPS.length - 2, Math.floor(x));
  const t = x - i;
  const c = SCALE_STOPS[i].map((v, k) => Math.round(v + t * (SCALE_STOPS[i + 1][k] - v)));
  return `rgb(${c[0]}, ${c[1]}, ${c[2]})`;
}

function textColourFor(meanPmtKhz) {
  // The bright (yellow-green) end of the scale needs dark text.
  return meanPmtKhz > 0 && Math.log(meanPmtKhz / SCALE_LOW_KHZ) / Math.log(SCALE_HIGH_KHZ / SCALE_LOW_KHZ) > 0.6 ? '#111' : '#fff';
}

function formatDuration(seconds) {
  const s = Math.floor(seconds);
  const d = Math.floor(s / 86400);
  const hms = [Math.floor(s / 3600) % 24, Math.floor(s / 60) % 60, s % 60].map((v) => String(v).padStart(2, '0')).join(':');
  return d > 0 ? `${d} d ${hms}` : hms;
}

function formatBytes(bytes) {
  if (bytes === undefined || bytes === null) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = bytes;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) { v /= 1024; u += 1; }
  return `${v.toFixed(u === 0 ? 0 : 1)} ${units[u]}`;
}

function formatCount(n) {
  return n === undefined || n === null ? '–' : Number(n).toLocaleString('en-US');
}

function setRows(table, rows) {
  // rows: [label, value, className?]; a row with a single cell is a sub-heading.
  table.replaceChildren(...rows.map(([label, value, cls]) => {
    const tr = document.createElement('tr');
    if (value === undefined) {
      const th = document.createElement('th');
      th.colSpan = 2;
      th.textContent = label;
      tr.append(th);
    } else {
      const td1 = document.createElement('td');
      const td2 = document.createElement('td');
      td1.textContent = label;
      td2.textContent = value;
      td2.className = 'num';
      if (cls) tr.className = cls;
      tr.append(td1, td2);
    }
    return tr;
  }));
}

// ---- the rate map ----

function buildGrid(map) {
  const grid = $('rate-map');
  const dus = map.dus || [];
  grid.style.gridTemplateColumns = `3.2em repeat(${dus.length}, minmax(2.6em, 4.5em))`;
  const cells = [];
  const column = new Map(dus.map((du, i) => [du, i + 2]));
  for (let floor = map.max_floor; floor >= 1; floor -= 1) {
    const label = document.createElement('div');
    label.className = 'axis floor-label';
    label.textContent = `F${floor}`;
    label.style.gridRow = String(map.max_floor - floor + 1);
    label.style.gridColumn = '1';
    cells.push(label);
  }
  dus.forEach((du) => {
    const label = document.createElement('div');
    label.className = 'axis du-label';
    label.textContent = `DU ${du}`;
    label.style.gridRow = String(map.max_floor + 1);
    label.style.gridColumn = String(column.get(du));
    cells.push(label);
  });
  for (const dom of map.doms) {
    const cell = document.createElement('button');
    cell.type = 'button';
    cell.className = 'dom';
    cell.dataset.domId = String(dom.id);
    cell.dataset.du = String(dom.du);
    cell.dataset.floor = String(dom.floor);
    cell.style.gridRow = String(map.max_floor - dom.floor + 1);
    cell.style.gridColumn = String(column.get(dom.du));
    cell.addEventListener('click', () => selectDom(dom.id));
    cells.push(cell);
  }
  grid.replaceChildren(...cells);
}

function updateGrid(map) {
  const layout = `${map.detector_id}:${map.doms.map((d) => d.id).join(',')}`;
  if (layout !== mapLayout) {
    buildGrid(map);
    mapLayout = layout;
  }
  const byId = new Map(map.doms.map((d) => [String(d.id), d]));
  for (const cell of $('rate-map').querySelectorAll('.dom')) {
    const dom = byId.get(cell.dataset.domId);
    const meanKhz = dom.rate_hz / 31 / 1000;
    const flags = dom.flags || [];
    cell.dataset.flags = flags.join(' ');
    cell.classList.toggle('missing', flags.includes('missing'));
    cell.classList.toggle('incomplete', flags.includes('incomplete'));
    cell.classList.toggle('hrv', flags.includes('hrv'));
    cell.classList.toggle('wr-unlocked', flags.includes('wr_unlocked'));
    cell.classList.toggle('selected', String(selectedDom) === cell.dataset.domId);
    cell.classList.toggle('no-data', map.frame_index === null);
    cell.style.backgroundColor = flags.includes('missing') || map.frame_index === null ? '' : colourFor(meanKhz);
    cell.style.color = flags.includes('missing') ? '' : textColourFor(meanKhz);
    cell.textContent = flags.includes('missing') ? '✕' : (dom.rate_hz > 0 ? (dom.rate_hz / 1000).toFixed(0) : '');
    const marks = flags.map((f) => MARK_NAMES[f] || f).join(', ');
    cell.title = `DOM ${dom.id} · DU ${dom.du} floor ${dom.floor} · ${(dom.rate_hz / 1000).toFixed(1)} kHz` +
      ` (${meanKhz.toFixed(2)} kHz per PMT)${marks ? ` · ${marks}` : ''}`;
  }
}

function selectDom(id) {
  selectedDom = id;
  if (latestMap) {
    updateGrid(latestMap);
    updatePmtChart(latestMap);
  }
}

function updatePmtChart(map) {
  const dom = map.doms.find((d) => d.id === selectedDom);
  if (!dom) return;
  const flags = (dom.flags || []).map((f) => MARK_NAMES[f] || f).join(', ');
  $('dom-title').textContent = `DOM ${dom.id} · DU ${dom.du} floor ${dom.floor} · ` +
    `${(dom.rate_hz / 1000).toFixed(1)} kHz${flags ? ` · ${flags}` : ''}`;
  const rates = dom.pmt_khz.length ? dom.pmt_khz : new Array(31).fill(0);
  const vetoed = (channel) => ((dom.hrv_mask || 0) >>> channel) & 1;
  const colours = rates.map((_, ch) => (vetoed(ch) ? '#d62728' : '#3b528b'));
  if (!pmtChart) {
    pmtChart = new Chart($('pmt-chart'), {
      type: 'bar',
      data: { labels: rates.map((_, ch) => String(ch)), datasets: [{ label: 'PMT rate (kHz)', data: rates, backgroundColor: colours }] },
      options: {
        animation: false, maintainAspectRatio: false,
        plugins: { legend: { display: false } },
        scales: { x: { title: { display: true, text: 'PMT channel (red: high-rate veto)' } },
                  y: { beginAtZero: true, title: { display: true, text: 'kHz' } } },
      },
    });
  } else {
    pmtChart.data.datasets[0].data = rates;
    pmtChart.data.datasets[0].backgroundColor = colours;
    pmtChart.update();
  }
}

function updateMap(map) {
  latestMap = map;
  $('frame-index').textContent = map.frame_index === null ? '–' : formatCount(map.frame_index);
  const noDetector = !map.doms || map.doms.length === 0;
  $('map-note').hidden = !noDetector;
  $('dom-detail').hidden = noDetector;
  if (noDetector) {
    $('rate-map').replaceChildren();
    mapLayout = '';
    return;
  }
  if (selectedDom === null || !map.doms.some((d) => d.id === selectedDom)) {
    // Until the shifter picks one: the first DOM with a mark that still sends data, else the first.
    const flagged = map.doms.find((d) => d.pmt_khz.length > 0 && d.flags.length > 0);
    selectedDom = (flagged || map.doms[0]).id;
  }
  updateGrid(map);
  updatePmtChart(map);
}

// ---- status ----

function updateTriggerChart(history) {
  if (!history) return;
  const nowS = Date.now() / 1000;
  const datasets = history.series.map((name, i) => ({
    label: name === 'all' ? 'all events' : name,
    data: history.points.map((p) => ({ x: (p[0] - nowS) / 60, y: p[i + 1] })),
    borderColor: TRIGGER_COLOURS[name] || '#888',
    backgroundColor: TRIGGER_COLOURS[name] || '#888',
    borderWidth: 2, pointRadius: 0, tension: 0.2,
  }));
  if (!triggerChart) {
    triggerChart = new Chart($('trigger-chart'), {
      type: 'line',
      data: { datasets },
      options: {
        animation: false, maintainAspectRatio: false, parsing: false,
        scales: {
          x: { type: 'linear', min: -history.window_s / 60, max: 0,
               title: { display: true, text: 'minutes ago' }, ticks: { callback: (v) => String(Math.abs(v)) } },
          y: { beginAtZero: true, title: { display: true, text: 'events / s' } },
        },
        plugins: { legend: { position: 'top' } },
      },
    });
  } else {
    triggerChart.data.datasets.forEach((ds, i) => { ds.data = datasets[i].data; });
    triggerChart.update();
  }
}

function updateDrops(status) {
  const drops = Object.entries(status.drops || {}).filter(([, n]) => n > 0).sort((a, b) => b[1] - a[1]);
  const loss = status.loss;
  $('loss').textContent = loss
    ? `lost in the last ${loss.window_s} s: ${(100 * loss.datagram_fraction).toFixed(3)} % of datagrams, ` +
      `${(100 * loss.slice_fraction).toFixed(3)} % of slices`
    : '';
  setRows($('drops'), drops.length ? drops.map(([cause, n]) => [cause, formatCount(n), 'bad'])
    : [['nothing dropped', '0']]);
}

function updateStorage(status) {
  const rows = [];
  const store = status.store;
  rows.push(['Event store']);
  if (store) {
    rows.push(['used / map size', `${formatBytes(store.used_bytes)} / ${formatBytes(store.map_bytes)}`]);
    rows.push(['disk free', formatBytes(store.disk_free_bytes)]);
    rows.push(['events · runs', `${formatCount(store.events)} · ${formatCount(store.runs)}`]);
    const refused = (store.refused_cap || 0) + (store.refused_disk_reserve || 0);
    rows.push(['slices refused (cap, disk reserve)', formatCount(refused), refused > 0 ? 'bad' : '']);
  } else {
    rows.push(['state', 'not open (node not initialised)']);
  }
  rows.push(['Tier-0 spool']);
  const spool = status.spool;
  if (spool) {
    rows.push(['parts sealed', formatCount(spool.parts_sealed)]);
    rows.push(['written', `${formatBytes(spool.bytes_written)} · ${formatCount(spool.events_written)} events`]);
    const errors = (spool.write_errors || 0) + (spool.slices_lost || 0);
    rows.push(['write errors · slices lost', `${formatCount(spool.write_errors)} · ${formatCount(spool.slices_lost)}`, errors > 0 ? 'bad' : '']);
  } else {
    rows.push(['state', 'not open']);
  }
  rows.push(['Transfer (shore-transfer)']);
  const transfer = status.transfer;
  if (transfer) {
    rows.push(['files waiting', `${formatCount(transfer.files_waiting)} (${formatBytes(transfer.bytes_waiting)})`]);
    rows.push(['in progress · failing', `${formatCount(transfer.files_in_progress)} · ${formatCount(transfer.files_failing)}`,
      transfer.files_failing > 0 ? 'bad' : '']);
    rows.push(['transferred', `${formatCount(transfer.counters.files_transferred)} files, ${formatBytes(transfer.counters.bytes_transferred)}`]);
    if (transfer.alarm) rows.push(['alarm', transfer.alarm, 'bad']);
    if (transfer.last_error) rows.push(['last error', transfer.last_error, 'bad']);
    rows.push(['updated', transfer.updated_utc]);
  } else {
    rows.push(['state', 'no status from the transfer agent']);
  }
  setRows($('storage'), rows);
}

function updateLastError(status) {
  const el = $('last-error');
  const e = status.last_error;
  if (!e) {
    el.textContent = 'none since the daemon started';
    el.className = 'muted';
    return;
  }
  const ago = formatDuration(Math.max(0, Date.now() / 1000 - e.unix_ns / 1e9));
  el.className = 'error-text';
  el.textContent = `${e.level}: ${e.message} (${ago} ago; ${formatCount(e.errors_total)} errors since start)`;
}

function updateStatus(status) {
  const state = $('state');
  state.textContent = status.state || '?';
  state.className = `state state-${String(status.state || 'unknown').toLowerCase()}`;
  $('run-number').textContent = status.run === undefined ? '–' : String(status.run);
  $('uptime').textContent = formatDuration(status.uptime_s || 0);
  $('detector').textContent = status.detector_id === undefined ? '–' : String(status.detector_id);
  const alarm = $('alarm');
  alarm.hidden = !status.alarm;
  alarm.textContent = status.alarm ? `ALARM: ${status.alarm}` : '';
  updateTriggerChart(status.trigger_rates);
  updateDrops(status);
  updateStorage(status);
  updateLastError(status);
}

async function fetchJson(path) {
  const reply = await fetch(path, { cache: 'no-store' });
  if (!reply.ok) throw new Error(`${path}: HTTP ${reply.status}`);
  return reply.json();
}

async function poll() {
  try {
    const [status, map] = await Promise.all([fetchJson('/status'), fetchJson('/ratemap.json')]);
    updateStatus(status);
    updateMap(map);
    $('updated').textContent = `updated ${new Date().toLocaleTimeString()}`;
    $('updated').classList.remove('stale');
  } catch (err) {
    $('updated').textContent = `daemon unreachable: ${err.message}`;
    $('updated').classList.add('stale');
  }
  setTimeout(poll, POLL_MS);
}

function drawScale() {
  $('scale-low').textContent = `${SCALE_LOW_KHZ} kHz`;
  $('scale-high').textContent = `${SCALE_HIGH_KHZ} kHz`;
  const stops = SCALE_STOPS.map((c) => `rgb(${c[0]}, ${c[1]}, ${c[2]})`).join(', ');
  $('scale').style.backgroundImage = `linear-gradient(to right, ${stops})`;
}

$('host').textContent = window.location.host;
drawScale();
poll();
