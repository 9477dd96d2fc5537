// Takes the README's pictures of the page from a running stack (`scripts/dev --seed-demo`):
//   node tests/browser/screenshot.mjs http://127.0.0.1:8787 docs
// It signs a guest in and completes one action, so the pictures show a signed-in player.
import { chromium } from 'playwright-core';

const [base = 'http://127.0.0.1:8787', out = 'docs'] = process.argv.slice(2);
const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: ['--no-sandbox'] });
try {
  const desktop = await browser.newPage({ viewport: { width: 1100, height: 760 } });
  await desktop.goto(base + '/');
  await desktop.locator('#connection[data-state="live"]').waitFor();
  await desktop.getByLabel('Your name').fill(`Visitor ${Math.floor(Math.random() * 1000)}`);
  await desktop.getByRole('button', { name: 'Play as guest' }).click();
  await desktop.locator('#actions button[data-action="coin"]').click();
  await desktop.locator('#message.ok').waitFor();
  await desktop.waitForTimeout(300);
  await desktop.screenshot({ path: `${out}/page.png` });
  const phone = await browser.newPage({ viewport: { width: 390, height: 844 }, isMobile: true });
  await phone.goto(base + '/');
  await phone.locator('#connection[data-state="live"]').waitFor();
  await phone.screenshot({ path: `${out}/page-phone.png` });
} finally {
  await browser.close();
}
