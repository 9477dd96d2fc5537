// The player page in Debian's headless Chromium, through the edge worker in workerd: one page
// watches, another signs in as a guest with a hostile name and scores. Driven by
// tests/tests/it/page.rs, which starts the stack and answers the control lines this script prints
// ("control: stop-aggregator" / "control: start-aggregator") with a line on stdin.
//
// Usage: EDGE_URL=http://127.0.0.1:8787 node tests/browser/page.test.mjs
// Needs an edge whose catalog has `coin` (0 s) and `quest` (2 s), and a small per-player limit.
import assert from 'node:assert/strict';
import { close, control, launch, step } from './driver.mjs';

const base = process.env.EDGE_URL;
assert.ok(base, 'EDGE_URL is required');
const HOSTILE = '<img src=x onerror=alert(1)>';
const TIMEOUT = 20_000;

const browser = await launch();
const dialogs = [];
const pageErrors = [];
try {
  // The watcher is a phone; the player a desktop. Separate contexts: separate storage.
  const watcherContext = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
  const playerContext = await browser.newContext({ viewport: { width: 1200, height: 900 } });
  const watcher = await watcherContext.newPage();
  const player = await playerContext.newPage();
  for (const p of [watcher, player]) {
    p.setDefaultTimeout(TIMEOUT);
    p.on('dialog', async (d) => { dialogs.push(d.message()); await d.dismiss(); });
    p.on('pageerror', (e) => pageErrors.push(String(e)));
  }

  step('both pages load and go live');
  for (const p of [watcher, player]) {
    const res = await p.goto(base + '/');
    assert.equal(res.status(), 200);
    assert.match(res.headers()['content-security-policy'], /script-src 'self'/);
    await p.locator('#connection[data-state="live"]').waitFor();
    await p.locator('#board[data-version]').waitFor({ state: 'attached' });
  }
  assert.equal(await watcher.locator('#connection-text').textContent(), 'Live');
  const fits = await watcher.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth);
  assert.ok(fits, 'the page fits a phone screen without scrolling sideways');
  // Semantic tables (the top 10, the list below it, the player's neighbours): each with a
  // caption and column headers.
  assert.equal(await watcher.locator('#board caption').count(), 1);
  assert.equal(await watcher.locator('#board thead th[scope="col"]').count(), 4);
  const tables = await watcher.locator('table').evaluateAll((ts) => ts.map((t) =>
    [t.querySelectorAll('caption').length, t.querySelectorAll('thead th[scope="col"]').length > 0]));
  assert.deepEqual(tables, tables.map(() => [1, true]));
  const versionBefore = Number(await watcher.locator('#board').getAttribute('data-version'));

  step('the player signs in as a guest with the keyboard only');
  const nameBox = player.getByLabel('Your name');
  await nameBox.focus();
  await player.keyboard.type(HOSTILE);
  await player.keyboard.press('Enter');
  await player.locator('#player').waitFor({ state: 'visible' });
  assert.equal(await player.locator('#me-name').textContent(), HOSTILE);
  const playerId = await player.evaluate(() => state.session.player_id);
  assert.ok(playerId);

  step('an instant action scores; the watcher sees the new row without reloading');
  const coin = player.locator('#actions button[data-action="coin"]');
  await coin.focus();
  await player.keyboard.press('Enter');
  await player.locator('#message.ok').filter({ hasText: '+1 for coin' }).waitFor();
  assert.equal(await player.locator('#me-score').textContent(), '1');
  const row = watcher.locator(`#board-rows tr[data-player="${playerId}"]`);
  await row.waitFor();
  assert.equal(await row.locator('td.name').textContent(), HOSTILE, 'the name shows as text');
  assert.equal(await watcher.locator('#board img, #board-rows img').count(), 0, 'no element was made from the name');
  assert.equal(await row.locator('td.score').textContent(), '1');
  assert.ok(Number(await watcher.locator('#board').getAttribute('data-version')) > versionBefore);
  const rankAfterCoin = Number(await row.locator('td.rank').textContent());

  step('an action with a minimum duration counts down before it is redeemed');
  await player.locator('#actions button[data-action="quest"]').click();
  await player.locator('#actions button[data-action="quest"] .detail').filter({ hasText: 'seconds left' }).waitFor();
  assert.equal(await player.locator('#actions button[data-action="quest"]').isDisabled(), true);
  await player.locator('#message.ok').filter({ hasText: '+50 for quest' }).waitFor();
  await watcher.locator(`#board-rows tr[data-player="${playerId}"] td.score`).filter({ hasText: '51' }).waitFor();
  const rankAfterQuest = Number(await watcher.locator(`#board-rows tr[data-player="${playerId}"] td.rank`).textContent());
  assert.ok(rankAfterQuest <= rankAfterCoin);
  // On the player's own page the row is marked as theirs and flashes when it changes.
  await player.locator(`#board-rows tr.me.changed[data-player="${playerId}"]`).waitFor();

  step('a replayed token is explained in words, with the score');
  const replay = await player.evaluate(async () => {
    const m = await api('POST', '/api/actions', { action: 'coin' });
    const first = await api('POST', '/api/scores', { action_token: m.body.action_token });
    const again = await api('POST', '/api/scores', { action_token: m.body.action_token });
    return { first: first.status, again: again.status, words: explain(again, 'coin') };
  });
  assert.deepEqual([replay.first, replay.again], [200, 409]);
  assert.match(replay.words, /already counted once.*Your score is 52\./);

  step('the aggregator goes away: the score is refused with 503 in words, and kept for a retry');
  await control('stop-aggregator');
  await coin.click();
  await player.locator('#message.error').filter({ hasText: 'cannot be reached right now' }).waitFor();
  await player.locator('#actions button[data-action="coin"] .title').filter({ hasText: 'Retry coin' }).waitFor();
  await control('start-aggregator');
  // The retried token is the same one, applied once now that the region is back.
  await coin.click();
  await player.locator('#message.ok').filter({ hasText: 'Your score is 53' }).waitFor();
  await watcher.locator(`#board-rows tr[data-player="${playerId}"] td.score`).filter({ hasText: '53' }).waitFor({ timeout: 40_000 });

  step('too many actions: 429 in words');
  let refused = false;
  for (let i = 0; i < 12 && !refused; i++) {
    await coin.click();
    await player.locator('#actions button[data-action="coin"]:not([disabled])').waitFor();
    refused = /Slow down: too many requests\. Try again in \d+ seconds?\./.test(await player.locator('#message').textContent());
  }
  assert.ok(refused, 'the per-player limit was reached and explained');

  step('the watcher goes offline and comes back by itself');
  await watcherContext.setOffline(true);
  await watcher.locator('#connection[data-state="offline"]').waitFor();
  await watcherContext.setOffline(false);
  await watcher.locator('#connection[data-state="live"]').waitFor();

  step('a reload keeps the session; signing out returns to the form');
  await player.reload();
  await player.locator('#player').waitFor({ state: 'visible' });
  assert.equal(await player.locator('#me-name').textContent(), HOSTILE);
  await player.getByRole('button', { name: 'Sign out' }).click();
  await player.getByLabel('Your name').waitFor();

  if (process.env.SCREENSHOT) await watcher.screenshot({ path: process.env.SCREENSHOT, fullPage: true });
  assert.deepEqual(dialogs, [], 'no dialog was opened (no script ran from a name)');
  assert.deepEqual(pageErrors, [], 'no script error on the pages');
  step('passed');
} finally {
  await browser.close();
  close();
}
