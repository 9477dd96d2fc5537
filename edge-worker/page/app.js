// The scoreboard page: a board picker (`?board=` in the URL), the chosen board's live top 10
// over EventSource with a "Load more" list below it (keyset pages), guest sign-in, the player's
// standing on the chosen board with the entries around them, and one button per catalog action
// that mints an action token, waits out its minimum duration and redeems it.
// No build step and no framework: the worker serves this file as it is. Every name and title
// from the server goes into the page through textContent, never as HTML.
'use strict';

const SESSION_KEY = 'scoreboard.session';
const DEFAULT_BOARD = 'global';
/** DESIGN.md's board id: anything else in `?board=` is ignored rather than requested. */
const BOARD_ID = /^[a-z0-9][a-z0-9_-]{0,31}$/;
/** Rows per "Load more" page; the first page is the top 10 the stream already shows. */
const PAGE_SIZE = 10;
/** Entries above and below the player in their standing. */
const AROUND = 2;
const $ = (id) => document.getElementById(id);

const state = {
  session: loadSession(),
  catalog: [],
  boards: new Map(), // id -> the board as GET /api/boards lists it, global first
  boardsRetry: 5000,
  boardsTimer: null,
  board: boardFromUrl(),
  period: null, // period id of the last snapshot shown
  countdown: null, // the timer of the next-reset countdown
  periodEnd: null, // the instant (ms) it counts down to
  fresh: true, // no snapshot of this board and period shown yet: nothing to mark as moved
  ranks: new Map(), // player_id -> rank in the last snapshot shown
  scores: new Map(), // player_id -> score in the last snapshot shown
  version: 0,
  topFull: false, // the last snapshot had a whole top 10, so there may be more below it
  more: newMore(),
  stream: null,
  retryDelay: 1000,
  retryTimer: null,
  meTimer: null,
  meSeq: 0, // the latest standing request; older answers (another board, a race) are dropped
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

// ---- boards -----------------------------------------------------------------------------

function boardFromUrl() {
  const id = new URLSearchParams(location.search).get('board');
  return id && BOARD_ID.test(id) ? id : DEFAULT_BOARD;
}

const ORDER_WORDS = { desc: 'Higher is better', asc: 'Lower is better' };
const OPERATOR_WORDS = { sum: 'points add up', best: 'best run counts', latest: 'last result counts' };
const RESET_WORDS = {
  hourly: 'resets every hour',
  daily: 'resets every day',
  weekly: 'resets every Monday',
  monthly: 'resets on the 1st of each month',
};

/** A board's rules in words: "Higher is better · points add up". */
function rules(b) {
  const words = [ORDER_WORDS[b.order], OPERATOR_WORDS[b.operator]];
  if (b.reset && b.reset !== 'never') words.push(RESET_WORDS[b.reset] || 'resets on a schedule');
  return words.filter(Boolean).join(' · ');
}

function boardTitle(id) {
  const b = state.boards.get(id);
  return b ? b.title : id;
}

async function loadBoards() {
  clearTimeout(state.boardsTimer);
  const r = await api('GET', '/api/boards');
  if (r.status !== 200 || !Array.isArray(r.body && r.body.boards)) {
    // The picker keeps what it has (at least the board on screen); the list comes later.
    state.boardsTimer = setTimeout(loadBoards, state.boardsRetry);
    state.boardsRetry = Math.min(state.boardsRetry * 2, 60_000);
    showPicker();
    return;
  }
  state.boardsRetry = 5000;
  const list = r.body.boards.filter((b) => b && typeof b.id === 'string');
  list.sort((a, b) => (b.id === DEFAULT_BOARD) - (a.id === DEFAULT_BOARD));
  state.boards = new Map(list.map((b) => [b.id, b]));
  if (!state.boards.has(state.board)) {
    // A board in the URL that does not exist (any more), or is hidden.
    const fallback = state.boards.has(DEFAULT_BOARD) ? DEFAULT_BOARD : list.length ? list[0].id : null;
    if (fallback) {
      say(`There is no board "${state.board}"; showing ${boardTitle(fallback)}.`, 'error');
      chooseBoard(fallback);
    }
  }
  showPicker();
  labelActions();
}

function showPicker() {
  const select = $('board-picker');
  const ids = [...state.boards.keys()];
  if (!state.boards.has(state.board)) ids.unshift(state.board);
  select.replaceChildren(...ids.map((id) => {
    const o = document.createElement('option');
    o.value = id;
    const b = state.boards.get(id);
    o.textContent = b ? `${b.title} — ${rules(b)}` : id;
    return o;
  }));
  select.value = state.board;
  describeBoard();
}

function describeBoard() {
  const b = state.boards.get(state.board);
  const title = boardTitle(state.board);
  $('board-title').textContent = `Top 10 · ${title}`;
  $('me-board').textContent = title;
  $('board-rule').textContent = b ? rules(b) : '';
  showPeriod(b && b.period, b && b.next_reset_at);
}

// ---- periods ----------------------------------------------------------------------------

/** "2 Dec, 00:00 – 3 Dec, 00:00" in the player's own time zone (with seconds for periods
 * shorter than an hour). */
function span(p) {
  if (!p || !p.starts_at || !p.ends_at) return '';
  const [from, to] = [new Date(p.starts_at), new Date(p.ends_at)];
  const timeStyle = to - from < 3_600_000 ? 'medium' : 'short';
  const when = (d) => d.toLocaleString(undefined, { dateStyle: 'medium', timeStyle });
  return `${when(from)} – ${when(to)}`;
}

/** "1d 2h 03m", "2h 03m 04s", "4s". */
function remaining(ms) {
  const s = Math.max(0, Math.ceil(ms / 1000));
  const [d, h, m, sec] = [Math.floor(s / 86400), Math.floor(s / 3600) % 24, Math.floor(s / 60) % 60, s % 60];
  const two = (n) => String(n).padStart(2, '0');
  if (d > 0) return `${d}d ${h}h ${two(m)}m`;
  if (h > 0) return `${h}h ${two(m)}m ${two(sec)}s`;
  if (m > 0) return `${m}m ${two(sec)}s`;
  return `${sec}s`;
}

/** The chosen board's period `p` and a countdown to its next reset `next` (boards that reset
 * only). Each snapshot carries both, so the countdown follows the stream, not the list. */
function showPeriod(p, next) {
  const end = next ? new Date(next).getTime() : NaN;
  const resets = Boolean(p && p.starts_at) && !Number.isNaN(end);
  // Already counting down to it, or an older answer (a list from an instance not turned yet).
  if (resets && state.periodEnd !== null && end <= state.periodEnd) return;
  clearInterval(state.countdown);
  state.periodEnd = resets ? end : null;
  $('board-period').hidden = !resets;
  if (!resets) return;
  $('board-period').dataset.period = p.id;
  $('period-span').textContent = span(p);
  const tick = () => {
    const left = end - Date.now();
    $('period-countdown').textContent = left > 0 ? `resets in ${remaining(left)}` : 'resetting…';
  };
  tick();
  state.countdown = setInterval(tick, 1000);
}

/** The chosen board's last closed period and its winners, when it has one. */
async function loadPrevious() {
  const board = state.board;
  const r = await api('GET', `/api/boards/${encodeURIComponent(board)}/periods?limit=1`);
  if (board !== state.board) return;
  const last = r.status === 200 && r.body && Array.isArray(r.body.periods) ? r.body.periods[0] : null;
  $('previous').hidden = !last;
  if (!last) return;
  $('previous-when').textContent = span(last);
  const top = Array.isArray(last.top) ? last.top : [];
  $('previous-top').replaceChildren(...top.map((e) => {
    const li = document.createElement('li');
    li.textContent = `${e.name} — ${fmt(e.score)}`;
    return li;
  }));
  $('previous-empty').hidden = top.length > 0;
}

/** Shows board `id`: its URL, its stream (the old one is closed), its "more" list, the
 * player's standing on it. */
function chooseBoard(id) {
  if (id === state.board) return;
  state.board = id;
  const url = new URL(location.href);
  if (id === DEFAULT_BOARD) url.searchParams.delete('board');
  else url.searchParams.set('board', id);
  history.replaceState(null, '', url);
  clearBoard();
  // The closed period on screen is the old board's; the new board's is listed when it answers.
  $('previous').hidden = true;
  showPicker();
  setConnection('connecting');
  state.retryDelay = 1000;
  connect();
  showNoStanding('');
  refreshMe();
  loadPrevious();
}

/** Empties what the page shows of the previous board (or period). */
function clearBoard() {
  state.period = null;
  state.periodEnd = null;
  state.version = 0;
  state.fresh = true;
  state.topFull = false;
  state.ranks = new Map();
  state.scores = new Map();
  $('board-rows').replaceChildren();
  $('board-empty').hidden = true;
  $('board-caption').textContent = 'Waiting for the first update…';
  $('board-changes').textContent = '';
  delete $('board').dataset.version;
  resetMore();
}

$('board-picker').addEventListener('change', (e) => {
  say(''); // what the last message said was about the board left behind
  chooseBoard(e.target.value);
});

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
  const es = new EventSource(`/api/boards/${encodeURIComponent(state.board)}/stream`);
  state.stream = es;
  es.addEventListener('open', () => {
    if (es === state.stream) setConnection('live');
  });
  es.addEventListener('leaderboard', (e) => {
    if (es !== state.stream) return;
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

/** A table row of rank, name (as text) and score, marked when it is the player's own. */
function entryRow(entry) {
  const me = state.session && state.session.player_id;
  const tr = document.createElement('tr');
  tr.dataset.player = entry.player_id;
  const rank = document.createElement('td');
  rank.className = 'rank';
  rank.textContent = String(entry.rank);
  const name = document.createElement('td');
  name.className = 'name';
  name.textContent = entry.name;
  if (entry.player_id === me) {
    tr.classList.add('me');
    const you = document.createElement('span');
    you.className = 'visually-hidden';
    you.textContent = ' (you)';
    name.append(you);
  }
  const score = document.createElement('td');
  score.className = 'score';
  score.textContent = fmt(entry.score);
  tr.append(rank, name, score);
  return tr;
}

function render(snap) {
  // A frame of the board that was on screen before a switch is not this board's.
  if (!snap || (snap.board !== undefined && snap.board !== state.board)) return;
  const period = snap.period && snap.period.id;
  if (period !== undefined && period !== state.period) {
    // A new period starts empty, with versions of its own: nothing carries over.
    if (state.period !== null) {
      clearBoard();
      loadBoards(); // the next reset moved on
      // The period that just closed: its results may take a moment to be listed.
      setTimeout(loadPrevious, 1500);
    }
    state.period = period;
  }
  if (snap.period) showPeriod(snap.period, snap.next_reset_at);
  if (typeof snap.version !== 'number' || !Array.isArray(snap.top) || snap.version < state.version) return;
  state.version = snap.version;
  const me = state.session && state.session.player_id;
  const rows = document.createDocumentFragment();
  const changes = [];
  const firstSnapshot = state.fresh;
  state.fresh = false;
  for (const entry of snap.top) {
    const tr = entryRow(entry);
    const before = state.ranks.get(entry.player_id);
    const scoreBefore = state.scores.get(entry.player_id);
    if (!firstSnapshot && scoreBefore !== entry.score) tr.classList.add('changed');
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
    tr.append(move);
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
  state.topFull = snap.top.length >= 10;
  showMoreButton();
  // The player's own rank can move when others score: refresh it, at most once a second.
  if (me && !state.meTimer) {
    state.meTimer = setTimeout(() => { state.meTimer = null; refreshMe(); }, 1000);
  }
}

// ---- below the top 10 -------------------------------------------------------------------

function newMore() {
  return { started: false, next: null, loading: false, count: 0 };
}

function resetMore() {
  state.more = newMore();
  $('more-rows').replaceChildren();
  $('more').hidden = true;
  $('more-status').textContent = '';
  showMoreButton();
}

/** "Load more" is offered while the list may go on: before the first page when the top 10 is
 * full, then as long as the last page had a cursor. */
function showMoreButton() {
  const m = state.more;
  const button = $('more-button');
  button.hidden = !(m.loading || (m.started ? m.next !== null : state.topFull));
  // Not `disabled` while a page loads (loadMore ignores a second click): a disabled button
  // would drop the keyboard focus.
  if (m.loading) button.setAttribute('aria-busy', 'true');
  else button.removeAttribute('aria-busy');
}

function entriesPath(board, after) {
  const q = new URLSearchParams({ limit: String(PAGE_SIZE) });
  if (after) q.set('after', after);
  return `/api/boards/${encodeURIComponent(board)}/entries?${q}`;
}

async function loadMore() {
  const m = state.more;
  const board = state.board;
  if (m.loading) return;
  m.loading = true;
  showMoreButton();
  $('more-status').textContent = '';
  try {
    let after = m.next;
    if (!m.started) {
      // The first page is the top 10 already on screen: it is read for its cursor only.
      const first = await api('GET', entriesPath(board, null));
      if (state.more !== m) return;
      if (first.status !== 200 || !first.body) {
        $('more-status').textContent = explain(first);
        return;
      }
      if (!first.body.next) {
        m.started = true;
        $('more-status').textContent = 'No one below the top 10 yet.';
        return;
      }
      after = first.body.next;
    }
    const r = await api('GET', entriesPath(board, after));
    if (state.more !== m) return; // the board changed meanwhile
    if (r.status !== 200 || !r.body || !Array.isArray(r.body.entries)) {
      // The cursor is kept: the same page can be asked for again.
      $('more-status').textContent = explain(r);
      return;
    }
    m.started = true;
    m.next = r.body.next || null;
    const rows = document.createDocumentFragment();
    for (const entry of r.body.entries) rows.append(entryRow(entry));
    $('more-rows').append(rows);
    m.count += r.body.entries.length;
    $('more').hidden = m.count === 0;
    if (m.next === null) {
      $('more-status').textContent = m.count === 0 ? 'No one below the top 10 yet.' : 'That is everyone on this board.';
    } else if (r.body.entries.length) {
      $('more-status').textContent = `Showing ranks 11 to ${fmt(r.body.entries[r.body.entries.length - 1].rank)}.`;
    }
  } finally {
    if (state.more === m) {
      m.loading = false;
      const button = $('more-button');
      const focused = document.activeElement === button;
      showMoreButton();
      // A keyboard user whose button went away at the end is told why, not left on nothing.
      if (focused && button.hidden) $('more-status').focus();
    }
  }
}

$('more-button').addEventListener('click', loadMore);

// ---- the player -------------------------------------------------------------------------

function showPlayer() {
  const s = state.session;
  $('signin').hidden = !!s;
  $('player').hidden = !s;
  if (s) {
    $('me-name').textContent = s.name;
    showNoStanding('');
    refreshMe();
  }
}

function showMe(score, rank) {
  $('me-score').textContent = fmt(score);
  $('me-rank').textContent = rank ? `#${fmt(rank)}` : '–';
  $('me-none').hidden = true;
}

/** The player has no entry on the board (yet), or it is not known yet (`note` empty). */
function showNoStanding(note) {
  $('me-score').textContent = '–';
  $('me-rank').textContent = '–';
  $('me-none').textContent = note;
  $('me-none').hidden = !note;
  $('around').hidden = true;
  $('around-rows').replaceChildren();
}

function showAround(entries) {
  const rows = document.createDocumentFragment();
  for (const entry of entries) {
    const tr = entryRow(entry);
    if (tr.classList.contains('me')) tr.setAttribute('aria-current', 'true');
    rows.append(tr);
  }
  $('around-rows').replaceChildren(rows);
  $('around').hidden = entries.length === 0;
}

/** The player's standing on the board on screen, with the entries around them. */
async function refreshMe() {
  const s = state.session;
  if (!s) return;
  const board = state.board;
  const seq = ++state.meSeq;
  const r = await api('GET',
    `/api/boards/${encodeURIComponent(board)}/players/${encodeURIComponent(s.player_id)}?around=${AROUND}`);
  if (seq !== state.meSeq || state.session !== s || state.board !== board) return;
  const code = r.body && r.body.error && r.body.error.code;
  if (r.status === 200 && r.body) {
    showMe(r.body.score, r.body.rank);
    showAround(Array.isArray(r.body.around) ? r.body.around : []);
  } else if (r.status === 404 && code === 'PLAYER_NOT_FOUND') {
    showNoStanding('No entry yet on this board.');
  } else if (r.status === 404 && code === 'BOARD_NOT_FOUND') {
    loadBoards(); // the board went away: the list says where to go instead
  }
  // Other failures (429, 503, offline) leave the last standing shown; the next update retries.
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
  let detail = a.min_seconds > 0 ? `takes ${seconds(a.min_seconds)}` : 'instant';
  // Without boards of its own an action counts on the global board only.
  if (Array.isArray(a.boards)) detail += ` · ${a.boards.map(boardTitle).join(', ')}`;
  buttonLabel(button, `${a.label} +${fmt(a.points)}`, detail);
}

/** Relabels idle action buttons, e.g. once the board titles are known. */
function labelActions() {
  for (const a of state.catalog) {
    const b = document.querySelector(`#actions button[data-action="${CSS.escape(a.action)}"]`);
    if (b && !b.disabled && !b.dataset.pending) idleLabel(b, a);
  }
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
        scored(a, r.body);
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

/** A score answer: the standing on the board on screen when the action counted there (else on
 * its first board), in words and in the player's panel, then the entries around them. */
function scored(a, body) {
  const standings = Array.isArray(body.boards) && body.boards.length
    ? body.boards
    : [{ board: DEFAULT_BOARD, score: body.score, rank: body.rank }];
  const here = standings.find((b) => b.board === state.board);
  const shown = here || standings[0];
  const on = shown.board === DEFAULT_BOARD ? '' : ` on ${boardTitle(shown.board)}`;
  let words = `+${fmt(a.points)} for ${a.action}! Your score${on} is ${fmt(shown.score)}, rank #${fmt(shown.rank)}.`;
  if (!here) words += ` It does not count on ${boardTitle(state.board)}.`;
  say(words, 'ok');
  if (here) {
    state.meSeq++; // a standing read before this answer is older than it
    showMe(here.score, here.rank);
  }
  refreshMe();
}

function fail(r, a) {
  say(explain(r, a.action), 'error');
  if (r.status === 401) saveSession(null);
  if (r.status === 409) refreshMe();
}

// ---- start ------------------------------------------------------------------------------

showPicker();
connect();
loadBoards();
loadPrevious();
loadCatalog();
showPlayer();
