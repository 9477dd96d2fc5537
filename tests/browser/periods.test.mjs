// A board that resets on the player page in Debian's headless Chromium, through the edge worker
// in workerd: the chosen board shows its period and a live countdown to the next reset; at the
// boundary the top 10 empties, and the period that closed is shown with its winners. Driven by
// tests/tests/it/page.rs, which creates the board `sprint` ("Sprint", desc, sum, a reset every
// 6 seconds) and answers "control: score" (Dasher scores 30 on it, in the current period).
//
// Usage: EDGE_URL=http://127.0.0.1:8787 node tests/browser/periods.test.mjs
import assert from 'node:assert/strict';
import { close, control, launch, step } from './driver.mjs';

const base = process.env.EDGE_URL;
assert.ok(base, 'EDGE_URL is required');
const TIMEOUT = 20_000;

const browser = await launch();
const pageErrors = [];
try {
  const context = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, locale: 'en-US' });
  const page = await context.newPage();
  page.setDefaultTimeout(TIMEOUT);
  page.on('pageerror', (e) => pageErrors.push(String(e)));

  step('the board shows its period and a countdown that runs');
  await page.goto(base + '/?board=sprint');
  await page.locator('#connection[data-state="live"]').waitFor();
  await page.locator('#board-period').waitFor();
  assert.match(await page.locator('#board-rule').textContent(), /resets on a schedule/);
  const countdown = page.locator('#period-countdown');
  assert.match(await countdown.textContent(), /^(resets in [1-6]s|resetting…)$/);
  assert.equal(await countdown.getAttribute('role'), 'timer');
  assert.match(await page.locator('#period-span').textContent(), /\d:\d\d:\d\d.* – /, 'a short period shows seconds');
  const first = await page.locator('#board-period').getAttribute('data-period');

  step('a score in this period shows live; at the reset the top 10 empties and the period moves on');
  await control('score');
  await page.locator('#board-rows tr', { hasText: 'Dasher' }).waitFor();
  await page.locator('#board-empty').waitFor();
  await page.waitForFunction((before) => document.getElementById('board-period').dataset.period !== before, first);

  step('the period that closed is shown with its winner');
  const previous = page.locator('#previous');
  await previous.waitFor();
  assert.equal(await page.locator('#previous-title').textContent(), 'Previous period');
  await page.locator('#previous-top li', { hasText: 'Dasher — 30' }).waitFor();
  assert.match(await page.locator('#previous-when').textContent(), / – /);

  step('a board that never resets shows neither');
  await page.getByLabel('Board').selectOption('global');
  await page.locator('#connection[data-state="live"]').waitFor();
  assert.equal(await page.locator('#board-period').isHidden(), true);
  assert.equal(await previous.isHidden(), true);
  assert.deepEqual(pageErrors, [], 'no script error on the page');
  step('passed');
} finally {
  await browser.close();
  close();
}
