// The scoreboard page: the live top 10 over EventSource, guest sign-in, and one button per
// catalog action that mints an action token, waits out its minimum duration and redeems it.
// No build step and no framework: the worker serves this file as it is. Every name from the
// server goes into the page through textContent, never as HTML.
'use strict';

const SESSION_KEY = 'scoreboard.session';
const $ = (id) => document.getElementById(id);

const state = {
  session: loadSession(),
  catalog: [],
  ranks: new Map(), // player_id -> rank in the last snapshot shown
  scores: new Map(), // player_id -> score in the last snapshot shown
  version: 0,
  stream: null,
  retryDelay: 1000,
  retryTimer: null,
  meTimer: null,
};

// ---- session ---------------------------------------------------------------------------

function loadSession() {
  try {
    const s = JSON.parse(localStorage.getItem(SESSION_KEY) || 'null');
    if (s && s.token && s.player_id && Date.parse(s.expires_at) > Date.now() + 60_000) return s;
  } catch (_) { /* a damaged entry is the same as none */ }
  localStorage.removeItem(SESSION_KEY);
  return null;
}

function saveSession(s) {
  state.session = s;
  if (s) localStorage.setItem(SESSION_KEY, JSON.stringify(s));
  else localStorage.removeItem(SESSION_KEY);
  showPlayer();
}

// ---- talking to the API ----------------------------------------------------------------

/** A JSON request; resolves to {status, body, retryAfter}; network failures give status 0. */
async function api(method, path, body) {
  const headers = { accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (state.session) headers.authorization = `Bearer ${state.session.token}`;
  let res;
  try {
    res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (_) {
    return { status: 0, body: null, retryAfter: null };
  }
  let parsed = null;
  try { parsed = await res.json(); } catch (_) { /* 204 or not JSON */ }
  const ra = parseInt(res.headers.get('retry-after') || '', 10);
  return { status: res.status, body: parsed, retryAfter: Number.isFinite(ra) ? ra : null };
}

function seconds(n) {
  return n === 1 ? '1 second' : `${n} seconds`;
}

/** Words for a failed request: what happened and what the player can do. */
function explain(r, action) {
  const code = r.body && r.body.error && r.body.error.code;
  const wait = r.retryAfter != null ? seconds(Math.max(1, r.retryAfter)) : 'a moment';
  switch (r.status) {
    case 0: return 'No connection to the server. Check your network; nothing was counted yet.';
    case 401: return 'Your session has ended. Please sign in again.';
    case 403: return code === 'PLAYER_BANNED'
      ? 'This player has been banned from the scoreboard.'
      : 'That action token belongs to another player.';
    case 409: return code === 'NAME_TAKEN'
      ? 'That name is taken. Pick another one.'
      : `That ${action || 'action'} was already counted once and is not counted again.` +
        (r.body && r.body.score != null ? ` Your score is ${fmt(r.body.score)}.` : '');
    case 422: return code === 'ACTION_TOKEN_EXPIRED'
      ? `The ${action || 'action'} took too long and expired. Try it again.`
      : code === 'UNKNOWN_ACTION' ? 'That action is not available any more.'
      : code === 'ACTION_TOKEN_INVALID' ? 'The action could not be verified. Try it again.'
      : (r.body && r.body.error && r.body.error.message) || 'The request was refused.';
    case 429: return `Slow down: too many requests. Try again in ${wait}.`;
    case 503: return `The scoreboard cannot be reached right now; nothing was lost. Try again in ${wait}.`;
    default:
      if (r.status >= 500) return 'Something went wrong on our side. Try again in a moment.';
      return (r.body && r.body.error && r.body.error.message) || `The request failed (${r.status}).`;
  }
}

function say(text, kind) {
  const m = $('message');
  m.textContent = text;
  m.className = `message ${kind || ''}`;
}

const numberFormat = new Intl.NumberFormat();
function fmt(n) { return numberFormat.format(n); }

// ---- the live board ---------------------------------------------------------------------

function setConnection(s) {
  const el = $('connection');
  if (el.dataset.state === s) return;
  el.dataset.state = s;
  $('connection-text').textContent = {
    connecting: 'Connecting…',
    live: 'Live',
    reconnecting: 'Reconnecting…',
    offline: 'Offline: retrying',
  }[s];
}

function connect() {
  clearTimeout(state.retryTimer);
  if (state.stream) state.stream.close();
  const es = new EventSource('/api/leaderboard/stream');
  state.stream = es;
  es.addEventListener('open', () => setConnection('live'));
  es.addEventListener('leaderboard', (e) => {
    state.retryDelay = 1000;
    setConnection('live');
    try { render(JSON.parse(e.data)); } catch (_) { /* a bad frame is skipped, the next is whole */ }
  });
  es.addEventListener('error', () => {
    if (es !== state.stream) return;
    if (es.readyState === EventSource.CONNECTING) {
      // The browser retries by itself (the server sends `retry: 3000`).
      setConnection(navigator.onLine === false ? 'offline' : 'reconnecting');
      return;
    }
    // Closed for good (e.g. a 503 while the region is away): retry ourselves, backing off.
    es.close();
    setConnection(navigator.onLine === false ? 'offline' : 'reconnecting');
    const delay = state.retryDelay * (0.75 + Math.random() / 2);
    state.retryDelay = Math.min(state.retryDelay * 2, 30_000);
    state.retryTimer = setTimeout(connect, delay);
  });
}

window.addEventListener('offline', () => setConnection('offline'));
window.addEventListener('online', () => {
  state.retryDelay = 1000;
  connect();
});

function render(snap) {
  if (typeof snap.version !== 'number' || snap.version < state.version) return;
  state.version = snap.version;
  const me = state.session && state.session.player_id;
  const rows = document.createDocumentFragment();
  const changes = [];
  const firstSnapshot = state.ranks.size === 0 && state.scores.size === 0;
  for (const entry of snap.top) {
    const tr = document.createElement('tr');
    tr.dataset.player = entry.player_id;
    const before = state.ranks.get(entry.player_id);
    const scoreBefore = state.scores.get(entry.player_id);
    if (entry.player_id === me) tr.classList.add('me');
    if (!firstSnapshot && scoreBefore !== entry.score) tr.classList.add('changed');

    const rank = document.createElement('td');
    rank.className = 'rank';
    rank.textContent = String(entry.rank);
    const name = document.createElement('td');
    name.className = 'name';
    name.textContent = entry.name;
    if (entry.player_id === me) {
      const you = document.createElement('span');
      you.className = 'visually-hidden';
      you.textContent = ' (you)';
      name.append(you);
    }
    const score = document.createElement('td');
    score.className = 'score';
    score.textContent = fmt(entry.score);
    const move = document.createElement('td');
    move.className = 'move';
    if (!firstSnapshot) {
      if (before === undefined) {
        move.textContent = 'new';
        move.classList.add('new');
        move.title = 'new in the top 10';
        changes.push(`${entry.name} entered the top 10 at rank ${entry.rank}`);
      } else if (entry.rank < before) {
        move.textContent = `▲${before - entry.rank}`;
        move.classList.add('up');
        move.title = `up ${before - entry.rank}`;
        changes.push(`${entry.name} moved up to rank ${entry.rank}`);
      } else if (entry.rank > before) {
        move.textContent = `▼${entry.rank - before}`;
        move.classList.add('down');
        move.title = `down ${entry.rank - before}`;
      }
    }
    tr.append(rank, name, score, move);
    rows.append(tr);
  }
  $('board-rows').replaceChildren(rows);
  state.ranks = new Map(snap.top.map((e) => [e.player_id, e.rank]));
  state.scores = new Map(snap.top.map((e) => [e.player_id, e.score]));
  $('board-empty').hidden = snap.top.length > 0;
  const at = new Date(snap.updated_at);
  $('board-caption').textContent =
    `Top ${snap.top.length} players, updated ${Number.isNaN(at.getTime()) ? 'just now' : at.toLocaleTimeString()} (version ${snap.version})`;
  $('board').dataset.version = String(snap.version);
  if (changes.length) $('board-changes').textContent = changes.join('. ');
  // The player's own rank can move when others score: refresh it, at most once a second.
  if (me && !state.meTimer) {
    state.meTimer = setTimeout(() => { state.meTimer = null; refreshMe(); }, 1000);
  }
}

// ---- the player -------------------------------------------------------------------------

function showPlayer() {
  const s = state.session;
  $('signin').hidden = !!s;
  $('player').hidden = !s;
  if (s) {
    $('me-name').textContent = s.name;
    refreshMe();
  }
}

function showMe(score, rank) {
  $('me-score').textContent = fmt(score);
  $('me-rank').textContent = rank ? `#${fmt(rank)}` : '–';
}

async function refreshMe() {
  const s = state.session;
  if (!s) return;
  const r = await api('GET', `/api/players/${encodeURIComponent(s.player_id)}`);
  if (r.status === 200 && state.session === s) showMe(r.body.score, r.body.rank);
}

$('signin').addEventListener('submit', async (e) => {
  e.preventDefault();
  const input = $('name');
  const name = input.value.trim();
  if (!name) {
    say('Type a name first.', 'error');
    input.focus();
    return;
  }
  const button = $('signin-button');
  button.disabled = true;
  const r = await api('POST', '/api/auth/guest', { name });
  button.disabled = false;
  if (r.status === 201) {
    saveSession({ token: r.body.token, player_id: r.body.player_id, name: r.body.name, expires_at: r.body.expires_at });
    say(`Welcome, ${r.body.name}! Pick an action to score.`, 'ok');
    const first = document.querySelector('#actions button');
    if (first) first.focus();
  } else {
    say(explain(r), 'error');
    input.focus();
  }
});

$('signout').addEventListener('click', async () => {
  await api('POST', '/api/auth/logout');
  saveSession(null);
  say('Signed out.', 'ok');
  $('name').focus();
});

// ---- actions ----------------------------------------------------------------------------

function sleep(ms) { return new Promise((resolve) => setTimeout(resolve, ms)); }

function buttonLabel(button, title, detail) {
  button.querySelector('.title').textContent = title;
  button.querySelector('.detail').textContent = detail;
}

function idleLabel(button, a) {
  buttonLabel(button, `${a.label} +${fmt(a.points)}`,
    a.min_seconds > 0 ? `takes ${seconds(a.min_seconds)}` : 'instant');
}

async function loadCatalog() {
  const r = await api('GET', '/api/actions');
  if (r.status !== 200 || !Array.isArray(r.body && r.body.actions)) {
    say('The list of actions could not be loaded. Reload the page to try again.', 'error');
    return;
  }
  state.catalog = r.body.actions;
  const list = $('actions');
  list.replaceChildren();
  for (const a of state.catalog) {
    a.label = a.action.charAt(0).toUpperCase() + a.action.slice(1);
    const b = document.createElement('button');
    b.type = 'button';
    b.dataset.action = a.action;
    const title = document.createElement('span');
    title.className = 'title';
    const detail = document.createElement('span');
    detail.className = 'detail';
    b.append(title, detail);
    idleLabel(b, a);
    b.addEventListener('click', () => perform(a, b));
    list.append(b);
  }
}

/** Mint a token for the action, wait out its minimum duration, redeem it. */
async function perform(a, button) {
  if (button.disabled) return;
  button.disabled = true;
  button.setAttribute('aria-busy', 'true');
  try {
    let token = button.dataset.pending; // a token kept after a 503 or a network error
    if (!token) {
      const minted = await api('POST', '/api/actions', { action: a.action });
      if (minted.status !== 201) return fail(minted, a);
      token = minted.body.action_token;
      // The wait comes from the catalog, not from the clocks: the player's clock may be off.
      for (let left = a.min_seconds; left > 0; left--) {
        buttonLabel(button, `${a.label}…`, `${seconds(left)} left`);
        say(`Completing ${a.action}: ${seconds(left)} left.`);
        await sleep(1000);
      }
    }
    for (let attempt = 0; ; attempt++) {
      buttonLabel(button, `${a.label}…`, 'submitting');
      const r = await api('POST', '/api/scores', { action_token: token });
      if (r.status === 425 && attempt < 3) {
        // Not valid yet by the server's clock: wait what it says and try the same token.
        await sleep(1000 * Math.max(1, r.retryAfter || 1));
        continue;
      }
      if (r.status === 200) {
        delete button.dataset.pending;
        showMe(r.body.score, r.body.rank);
        say(`+${fmt(a.points)} for ${a.action}! Your score is ${fmt(r.body.score)}, rank #${fmt(r.body.rank)}.`, 'ok');
        return;
      }
      if (r.status === 503 || r.status === 0) {
        // The token was not consumed: the same one may be redeemed later, at most once.
        button.dataset.pending = token;
      } else {
        delete button.dataset.pending;
      }
      return fail(r, a);
    }
  } finally {
    button.disabled = false;
    button.removeAttribute('aria-busy');
    if (button.dataset.pending) buttonLabel(button, `Retry ${a.action}`, 'not counted yet');
    else idleLabel(button, a);
  }
}

function fail(r, a) {
  say(explain(r, a.action), 'error');
  if (r.status === 401) saveSession(null);
  if (r.status === 409) refreshMe();
}

// ---- start ------------------------------------------------------------------------------

connect();
loadCatalog();
showPlayer();
