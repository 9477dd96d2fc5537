// What the browser scripts share: the control lines to the driving Rust test
// (tests/tests/it/page.rs answers "control: <what>" with "done" on stdin once it is done),
// step lines, and Debian's headless Chromium.
import { chromium } from 'playwright-core';
import assert from 'node:assert/strict';
import { createInterface } from 'node:readline';

const stdin = createInterface({ input: process.stdin });
const lines = stdin[Symbol.asyncIterator]();

/** Asks the driving test to do something to the stack and waits until it is done. */
export async function control(what) {
  console.log(`control: ${what}`);
  const { value, done } = await lines.next();
  assert.ok(!done && value.trim() === 'done', `control ${what} answered ${value}`);
}

export function step(text) { console.log(`step: ${text}`); }

export function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    // Root in a container has no user namespaces for Chromium's sandbox.
    args: ['--no-sandbox'],
  });
}

/** Lets the driving test's stdin go, so node can exit. */
export function close() { stdin.close(); }
