// Boards on the player page in Debian's headless Chromium, through the edge worker in workerd:
// a watcher (a phone) and a player (a desktop) pick boards, follow one live, and page below its
// top 10. Driven by tests/tests/it/page.rs, which first creates the boards and their entries and
// answers the control line "control: faster-run" (someone else posts a time of 20 on `time`).
//
// Usage: EDGE_URL=http://127.0.0.1:8787 node tests/browser/boards.test.mjs
// Needs an aggregator with the boards `coins` ("Coins", desc, sum: Coin0..Coin13 with 100 to
// 1,400), `time` ("Time", asc, best: Runner0..Runner3 with 30, 40, 60, 70) and `last-run`
// ("Last run", desc, latest), and an edge whose catalog has `race` (45, instant) on
// ["global", "time"].
import assert from 'node:assert/strict';
import { close, control, launch, step } from './driver.mjs';

const base = process.env.EDGE_URL;
assert.ok(base, 'EDGE_URL is required');
const TIMEOUT = 20_000;

/** Every EventSource a page opens, so the test can tell which ones are still open. */
function trackStreams() {
  const Native = window.EventSource;
  window.__streams = [];
  window.EventSource = class extends Native {
    constructor(...args) {
      super(...args);
      window.__streams.push(this);
    }
  };
}

async function openStreams(page) {
  return page.evaluate(() => window.__streams
    .filter((s) => s.readyState !== EventSource.CLOSED)
    .map((s) => new URL(s.url).pathname));
}

/** The rows of a table body as [rank, name, score] texts. */
async function rows(page, tbody) {
  return page.locator(`${tbody} tr`).evaluateAll((trs) => trs.map((tr) =>
    [...tr.querySelectorAll('td.rank, td.name, td.score')].map((td) => td.textContent)));
}

/** Waits until the table body's rows are `expected` ([rank, name, score] texts). */
async function rowsAre(page, tbody, expected) {
  const deadline = Date.now() + TIMEOUT;
  let seen;
  for (;;) {
    seen = await rows(page, tbody);
    if (JSON.stringify(seen) === JSON.stringify(expected)) return;
    if (Date.now() > deadline) break;
    await page.waitForTimeout(100);
  }
  assert.deepEqual(seen, expected, `the rows of ${tbody}`);
}

const browser = await launch();
const dialogs = [];
const pageErrors = [];
try {
  // en-US: the scores below are written with its digit grouping (1,400).
  const watcherContext = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, locale: 'en-US' });
  const playerContext = await browser.newContext({ viewport: { width: 1200, height: 900 }, locale: 'en-US' });
  const watcher = await watcherContext.newPage();
  const player = await playerContext.newPage();
  for (const context of [watcherContext, playerContext]) await context.addInitScript(trackStreams);
  for (const p of [watcher, player]) {
    p.setDefaultTimeout(TIMEOUT);
    p.on('dialog', async (d) => { dialogs.push(d.message()); await d.dismiss(); });
    p.on('pageerror', (e) => pageErrors.push(String(e)));
  }

  step('the picker lists every board with its rules in words, the global board first and chosen');
  const res = await watcher.goto(base + '/');
  assert.equal(res.status(), 200);
  assert.match(res.headers()['content-security-policy'], /script-src 'self'/);
  await watcher.locator('#connection[data-state="live"]').waitFor();
  const picker = watcher.getByLabel('Board');
  await watcher.locator('#board-picker option[value="time"]').waitFor({ state: 'attached' });
  const options = await picker.locator('option').evaluateAll((os) => os.map((o) => [o.value, o.textContent]));
  assert.deepEqual(options, [
    ['global', 'All time — Higher is better · points add up'],
    ['coins', 'Coins — Higher is better · points add up'],
    ['last-run', 'Last run — Higher is better · last result counts'],
    ['time', 'Time — Lower is better · best run counts'],
  ]);
  assert.equal(await picker.inputValue(), 'global');
  assert.equal(await watcher.locator('#board-rule').textContent(), 'Higher is better · points add up');
  assert.deepEqual(await openStreams(watcher), ['/api/boards/global/stream']);

  step('picking "time" shows its top 10 over its own stream, lowest first, and puts it in the URL');
  await picker.focus();
  await picker.selectOption('time');
  assert.equal(new URL(watcher.url()).searchParams.get('board'), 'time');
  await rowsAre(watcher, '#board-rows', [
    ['1', 'Runner0', '30'], ['2', 'Runner1', '40'], ['3', 'Runner2', '60'], ['4', 'Runner3', '70'],
  ]);
  await watcher.locator('#connection[data-state="live"]').waitFor();
  assert.match(await watcher.locator('#board-title').textContent(), /Time/);
  assert.equal(await watcher.locator('#board-rule').textContent(), 'Lower is better · best run counts');
  assert.deepEqual(await openStreams(watcher), ['/api/boards/time/stream'], 'the global stream was closed');
  assert.equal(await watcher.locator('#more-button').isHidden(), true, 'nothing below a top 10 of four');
  const versionBefore = Number(await watcher.locator('#board').getAttribute('data-version'));

  step('a page opened on ?board=time starts there; the player signed in has no entry on it yet');
  await player.goto(base + '/?board=time');
  assert.equal(await player.getByLabel('Board').inputValue(), 'time');
  await player.locator('#board-rows tr').first().waitFor();
  await player.getByLabel('Your name').fill('Racer');
  await player.getByRole('button', { name: 'Play as guest' }).click();
  await player.locator('#player').waitFor({ state: 'visible' });
  await player.locator('#me-none').filter({ hasText: 'No entry yet on this board.' }).waitFor();
  assert.equal(await player.locator('#me-board').textContent(), 'Time');
  assert.equal(await player.locator('#me-rank').textContent(), '–');
  assert.equal(await player.locator('#around').isHidden(), true);
  const race = player.locator('#actions button[data-action="race"]');
  await race.locator('.detail').filter({ hasText: 'All time, Time' }).waitFor();
  const playerId = await player.evaluate(() => state.session.player_id);

  step('a race counts on "time": rank and neighbours on the player page, the row live on the watcher');
  await race.click();
  await player.locator('#message.ok').filter({ hasText: '+45 for race! Your score on Time is 45, rank #3.' }).waitFor();
  assert.equal(await player.locator('#me-score').textContent(), '45');
  assert.equal(await player.locator('#me-rank').textContent(), '#3');
  assert.equal(await player.locator('#me-none').isHidden(), true);
  await rowsAre(player, '#around-rows', [
    ['1', 'Runner0', '30'], ['2', 'Runner1', '40'], ['3', 'Racer (you)', '45'], ['4', 'Runner2', '60'], ['5', 'Runner3', '70'],
  ]);
  assert.equal(await player.locator('#around-rows tr[aria-current="true"]').getAttribute('data-player'), playerId);
  // The watcher never reloaded: the row arrived over the stream.
  await rowsAre(watcher, '#board-rows', [
    ['1', 'Runner0', '30'], ['2', 'Runner1', '40'], ['3', 'Racer', '45'], ['4', 'Runner2', '60'], ['5', 'Runner3', '70'],
  ]);
  assert.ok(Number(await watcher.locator('#board').getAttribute('data-version')) > versionBefore);
  assert.equal(await watcher.locator(`#board-rows tr[data-player="${playerId}"] td.move`).textContent(), 'new');

  step('someone runs faster: both pages move without a reload, and so does the player\'s rank');
  await control('faster-run');
  await rowsAre(watcher, '#board-rows', [
    ['1', 'Sprinter', '20'], ['2', 'Runner0', '30'], ['3', 'Runner1', '40'], ['4', 'Racer', '45'], ['5', 'Runner2', '60'], ['6', 'Runner3', '70'],
  ]);
  await player.locator('#me-rank').filter({ hasText: '#4' }).waitFor();
  await rowsAre(player, '#around-rows', [
    ['2', 'Runner0', '30'], ['3', 'Runner1', '40'], ['4', 'Racer (you)', '45'], ['5', 'Runner2', '60'], ['6', 'Runner3', '70'],
  ]);

  step('on "coins" the player has no entry; "Load more" pages ranks 11 to 14, then hides');
  await player.getByLabel('Board').selectOption('coins');
  assert.equal(new URL(player.url()).searchParams.get('board'), 'coins');
  await player.locator('#me-none').filter({ hasText: 'No entry yet on this board.' }).waitFor();
  assert.equal(await player.locator('#me-board').textContent(), 'Coins');
  assert.equal(await player.locator('#me-rank').textContent(), '–');
  const top = [];
  for (let i = 13; i >= 4; i--) top.push([String(14 - i), `Coin${i}`, new Intl.NumberFormat('en-US').format(100 * (i + 1))]);
  await rowsAre(player, '#board-rows', top);
  await player.locator('#connection[data-state="live"]').waitFor();
  assert.deepEqual(await openStreams(player), ['/api/boards/coins/stream']);
  const more = player.getByRole('button', { name: 'Load more' });
  await more.waitFor();
  assert.equal(await player.locator('#more').isHidden(), true);
  await more.click();
  await rowsAre(player, '#more-rows', [['11', 'Coin3', '400'], ['12', 'Coin2', '300'], ['13', 'Coin1', '200'], ['14', 'Coin0', '100']]);
  await more.waitFor({ state: 'hidden' });
  assert.equal(await player.locator('#more-status').textContent(), 'That is everyone on this board.');
  assert.equal(await player.evaluate(() => document.activeElement.id), 'more-status', 'focus moved to the words, not lost');

  step('back on the global board the list below is gone and the player is first');
  await player.getByLabel('Board').selectOption('global');
  assert.equal(new URL(player.url()).searchParams.get('board'), null);
  await rowsAre(player, '#board-rows', [['1', 'Racer (you)', '45']]);
  await player.locator('#me-rank').filter({ hasText: '#1' }).waitFor();
  assert.equal(await player.locator('#more').isHidden(), true);
  assert.equal(await player.locator('#more-rows tr').count(), 0);
  assert.equal(await player.locator('#more-button').isHidden(), true);
  assert.deepEqual(await openStreams(player), ['/api/boards/global/stream']);

  step('a reload keeps the board chosen; an unknown board in the URL falls back to the global one');
  await watcher.reload();
  assert.equal(await watcher.getByLabel('Board').inputValue(), 'time');
  await rowsAre(watcher, '#board-rows', [
    ['1', 'Sprinter', '20'], ['2', 'Runner0', '30'], ['3', 'Runner1', '40'], ['4', 'Racer', '45'], ['5', 'Runner2', '60'], ['6', 'Runner3', '70'],
  ]);
  await watcher.locator('#connection[data-state="live"]').waitFor();
  await watcher.goto(base + '/?board=no-such-board');
  await watcher.locator('#board-picker option[value="time"]').waitFor({ state: 'attached' });
  await watcher.locator('#connection[data-state="live"]').waitFor();
  assert.equal(await watcher.getByLabel('Board').inputValue(), 'global');
  assert.equal(new URL(watcher.url()).searchParams.get('board'), null);
  await rowsAre(watcher, '#board-rows', [['1', 'Racer', '45']]);

  const fits = await watcher.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth);
  assert.ok(fits, 'the page with its picker fits a phone screen without scrolling sideways');
  if (process.env.SCREENSHOT) await player.screenshot({ path: process.env.SCREENSHOT, fullPage: true });
  assert.deepEqual(dialogs, [], 'no dialog was opened');
  assert.deepEqual(pageErrors, [], 'no script error on the pages');
  step('passed');
} finally {
  await browser.close();
  close();
}
