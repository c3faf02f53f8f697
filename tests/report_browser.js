#!/usr/bin/env node
// Opens a `caliprox report` page in headless Chromium (Debian's /usr/bin/chromium,
// driven by playwright-core from tests/browser/) from a file:// URL, as a person
// would, and prints one JSON object: console errors, requests that left the
// file (there must be none), and for every figure whether it was drawn and how
// many data marks of each kind its SVG holds next to how many the page expects.
// Writes a full-page screenshot.
//
//   node report_browser.js PAGE.html SCREENSHOT.png
'use strict';

const path = require('path');
const { chromium } = require(path.join(__dirname, 'browser', 'node_modules', 'playwright-core'));

async function main() {
  const [page_path, shot] = process.argv.slice(2);
  if (!page_path || !shot) throw new Error('usage: report_browser.js PAGE.html SCREENSHOT.png');
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    // As root in a container Chromium needs --no-sandbox; the rest keeps it
    // from reaching for the network on its own.
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
           '--disable-component-update', '--disable-sync'],
  });
  const out = { console_errors: [], requests: [], figures: [] };
  try {
    const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
    page.on('console', (m) => { if (m.type() === 'error') out.console_errors.push(m.text()); });
    page.on('pageerror', (e) => out.console_errors.push(`uncaught: ${e.message}`));
    page.on('request', (r) => { if (!r.url().startsWith('file:')) out.requests.push(r.url()); });
    await page.goto('file://' + path.resolve(page_path), { waitUntil: 'load' });
    // Every plot drawn, or marked as failed, within a minute.
    await page.waitForFunction(() => Array.from(document.querySelectorAll('div.plot')).every(
      (e) => e.getAttribute('data-drawn') === 'yes' || e.textContent.startsWith('This plot could not')),
    null, { timeout: 60000 }).catch((e) => out.console_errors.push(`waiting for the plots: ${e.message}`));
    out.figures = await page.evaluate(() => {
      const doc = JSON.parse(document.getElementById('caliprox-report-data').textContent);
      return doc.figures.map((f) => {
        const el = document.getElementById('plot-' + f.id);
        const svg = el ? el.querySelector('svg') : null;
        const counts = {};
        for (const kind of Object.keys(f.marks))
          counts[kind] = svg ? svg.querySelectorAll(`g.mark-${kind}.role-mark > *`).length : 0;
        const box = svg ? svg.getBoundingClientRect() : { width: 0, height: 0 };
        return { id: f.id, drawn: el ? el.getAttribute('data-drawn') === 'yes' : false, text: el ? el.textContent.slice(0, 200) : '',
                 expected: f.marks, counts, width: box.width, height: box.height };
      });
    });
    await page.screenshot({ path: shot, fullPage: true });
  } finally {
    await browser.close();
  }
  process.stdout.write(JSON.stringify(out) + '\n');
}

main().catch((e) => { process.stderr.write(`report_browser: ${e.stack || e}\n`); process.exit(1); });
