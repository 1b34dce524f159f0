// The dashboard in a real Chromium (playwright-core driving /usr/bin/chromium): pages load from file://
// with no console errors and no request leaving the site, the SVG timelines render with a real size,
// hostile free text stays text, and a screenshot is kept for a human look.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { requireTool } from '../support/skip.ts';
import { buildSite } from '../../site-gen/build.ts';
import { HOSTILE_REASON, NOW, createSiteFixture, type SiteFixture } from './fixture.ts';

const CHROMIUM = '/usr/bin/chromium';
const ARGS = ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'];

let fx: SiteFixture | null = null;
test.after(() => fx?.cleanup());

test('chromium renders the dashboard: no console errors, no outside requests, SVG timelines with a size', async () => {
  if (!requireTool('chromium', 'the dashboard browser test')) return;
  fx = createSiteFixture();
  await buildSite({ treeDir: fx.treeDir, pinnedRoot: fx.root, outDir: fx.outDir, now: NOW });
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS, timeout: 60_000 });
  try {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, javaScriptEnabled: false });
    const page = await context.newPage();
    const problems: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warning') problems.push(`console ${m.type()}: ${m.text()}`);
    });
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    page.on('requestfailed', (r) => problems.push(`request failed: ${r.url()}`));
    const requests: string[] = [];
    page.on('request', (r) => requests.push(r.url()));

    const site = pathToFileURL(fx.outDir).href;
    const pages = ['index.html', 'hosts.html', 'trust.html', 'documents.html', 'channels/ch-0.html', 'channels/ch-1.html', `hosts/${fx.roles.failed}.html`];
    for (const p of pages) {
      const res = await page.goto(`${site}/${p}`);
      assert.ok(res === null || res.ok(), `${p} did not load`);
      assert.match(await page.title(), 'NixFleet');
    }
    assert.equal(problems, []);
    const outside = requests.filter((u) => !u.startsWith(site + '/'));
    assert.equal(outside, [], 'every request stays inside the site');

    // channel ch-0: the timeline and the wave chart draw with a real size, one lane per host
    await page.goto(`${site}/channels/ch-0.html`);
    const box = await page.locator('svg.timeline').first().boundingBox();
    assert.ok(box && box.width > 500 && box.height > 40, `timeline box ${JSON.stringify(box)}`);
    const waves = await page.locator('svg.waves').first().boundingBox();
    assert.ok(waves && waves.width > 500 && waves.height > 20);
    const lanes = await page.locator('svg.timeline text.lane').count();
    assert.is(lanes, Object.keys(fx.plans['ch-0']!.hosts).length);
    const soakedBar = page.locator(`svg.timeline rect:has(title:text-matches("${fx.roles.soaked}: soaked at"))`);
    const bar = await soakedBar.boundingBox();
    assert.ok(bar && bar.width > 10, 'the soaked span is visible');
    await page.screenshot({ path: join(fx.dir, 'channel-ch-0.png'), fullPage: true });

    // the failed host: its hostile reason is shown as text, no element was injected
    await page.goto(`${site}/hosts/${fx.roles.failed}.html`);
    assert.is(await page.locator('main script, main img').count(), 0);
    assert.match(await page.locator('main').innerText(), HOSTILE_REASON);
    await page.goto(`${site}/index.html`);
    assert.match(await page.locator('#verification').innerText(), 'verified: release 1 of fleet generated');
    await page.screenshot({ path: join(fx.dir, 'index.png'), fullPage: true });
    for (const shot of ['channel-ch-0.png', 'index.png']) assert.ok(existsSync(join(fx.dir, shot)) && statSync(join(fx.dir, shot)).size > 10_000);
    if (process.env.SITE_GEN_KEEP_SCREENSHOTS) {
      const { cpSync } = await import('node:fs');
      cpSync(join(fx.dir, 'channel-ch-0.png'), join(process.env.SITE_GEN_KEEP_SCREENSHOTS, 'channel-ch-0.png'));
      cpSync(join(fx.dir, 'index.png'), join(process.env.SITE_GEN_KEEP_SCREENSHOTS, 'index.png'));
    }
    await context.close();
  } finally {
    await browser.close();
  }
});

test.run();
