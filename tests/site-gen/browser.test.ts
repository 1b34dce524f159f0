// The dashboard in a real Chromium (playwright-core driving /usr/bin/chromium): pages load from file://
// with no console errors and no request leaving the site, the SVG timelines render with a real size,
// hostile free text stays text; at 390x844 (a phone) and 1440x900 no page scrolls sideways and the
// phase of every host in a table is on screen; every text (badges included) has a WCAG contrast of at
// least 4.5:1, computed from the rendered colours; the optional search works with JavaScript and the
// lists work without; screenshots are kept for a human look.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Page } from 'playwright-core';
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { requireTool } from '../support/skip.ts';
import { buildSite } from '../../site-gen/build.ts';
import {
  HOSTILE_REASON,
  NOW,
  createSiteFixture,
  hostPagePath,
  readSite,
  type SiteFixture,
} from './fixture.ts';

/** The detail page holding `host`'s section in the built site. */
const detailOf = (host: string) => hostPagePath(readSite(fx!.outDir), host);

const CHROMIUM = '/usr/bin/chromium';
const ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];

let fx: SiteFixture | null = null;
test.after(() => fx?.cleanup());

test('chromium renders the dashboard: no console errors, no outside requests, SVG timelines with a size', async () => {
  if (!requireTool('chromium', 'the dashboard browser test')) return;
  fx = createSiteFixture();
  await buildSite({ treeDir: fx.treeDir, pinnedRoot: fx.root, outDir: fx.outDir, now: NOW });
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS, timeout: 60_000 });
  try {
    const context = await browser.newContext({
      viewport: { width: 1280, height: 900 },
      javaScriptEnabled: false,
    });
    const page = await context.newPage();
    const problems: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warning')
        problems.push(`console ${m.type()}: ${m.text()}`);
    });
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    page.on('requestfailed', (r) => problems.push(`request failed: ${r.url()}`));
    const requests: string[] = [];
    page.on('request', (r) => requests.push(r.url()));

    const site = pathToFileURL(fx.outDir).href;
    const pages = [
      'index.html',
      'hosts.html',
      'trust.html',
      'documents.html',
      'channels/ch-0.html',
      'channels/ch-1.html',
      detailOf(fx.roles.failed),
    ];
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
    const soakedBar = page.locator(
      `svg.timeline rect:has(title:text-matches("${fx.roles.soaked}: soaked at"))`,
    );
    const bar = await soakedBar.boundingBox();
    assert.ok(bar && bar.width > 10, 'the soaked span is visible');
    await page.screenshot({ path: join(fx.dir, 'channel-ch-0.png'), fullPage: true });

    // the failed host: its hostile reason is shown as text, no element was injected
    await page.goto(`${site}/${detailOf(fx.roles.failed)}#h-${fx.roles.failed}`);
    assert.is(await page.locator('main script, main img').count(), 0);
    assert.match(await page.locator('main').innerText(), HOSTILE_REASON);
    await page.goto(`${site}/index.html`);
    assert.match(
      await page.locator('#verification').innerText(),
      'verified: release 1 of fleet generated',
    );
    await page.screenshot({ path: join(fx.dir, 'index.png'), fullPage: true });
    for (const shot of ['channel-ch-0.png', 'index.png'])
      assert.ok(existsSync(join(fx.dir, shot)) && statSync(join(fx.dir, shot)).size > 10_000);
    if (process.env.SITE_GEN_KEEP_SCREENSHOTS) {
      const { cpSync } = await import('node:fs');
      cpSync(
        join(fx.dir, 'channel-ch-0.png'),
        join(process.env.SITE_GEN_KEEP_SCREENSHOTS, 'channel-ch-0.png'),
      );
      cpSync(join(fx.dir, 'index.png'), join(process.env.SITE_GEN_KEEP_SCREENSHOTS, 'index.png'));
    }
    await context.close();
  } finally {
    await browser.close();
  }
});

const VIEWPORTS = [
  { width: 390, height: 844 },
  { width: 1440, height: 900 },
];

/**
 * Runs in the page (plain JavaScript source: the test's own build would rename functions): every visible
 * text (an element with its own text, ::before labels, SVG text) and the WCAG 2 contrast ratio of its
 * colour on the background it is drawn on (the nearest opaque backgrounds up the tree, blended; for SVG
 * text inside a bar, the bar's fill, else the chart's background). Returns the texts under the minimum.
 */
const CONTRAST_PROBLEMS = `(minimum) => {
  const parse = (c) => {
    const m = /rgba?\\(([\\d.]+),\\s*([\\d.]+),\\s*([\\d.]+)(?:,\\s*([\\d.]+))?\\)/.exec(c);
    return m ? [Number(m[1]), Number(m[2]), Number(m[3]), m[4] === undefined ? 1 : Number(m[4])] : null;
  };
  const lum = (c) => {
    const [r, g, b] = c.slice(0, 3).map((v) => { const s = v / 255; return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4; });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  const ratio = (a, b) => { const [x, y] = [lum(a), lum(b)].sort((p, q) => q - p); return (x + 0.05) / (y + 0.05); };
  const over = (top, bottom) => top.slice(0, 3).map((v, i) => v * top[3] + bottom[i] * (1 - top[3])).concat(1);
  const background = (el) => {
    const layers = [];
    for (let e = el; e; e = e.parentElement) {
      const c = parse(getComputedStyle(e).backgroundColor);
      if (c && c[3] > 0) { layers.push(c); if (c[3] === 1) break; }
    }
    let bg = [255, 255, 255, 1];
    for (const l of layers.reverse()) bg = over(l, bg);
    return bg;
  };
  const visible = (el) => { const r = el.getBoundingClientRect(); return r.width > 0 && r.height > 0 && getComputedStyle(el).visibility !== 'hidden'; };
  const problems = [];
  let checked = 0;
  const check = (el, what, fg, bg) => {
    if (!fg) { problems.push(what + ': no parsable colour'); return; }
    checked++;
    const r = ratio(over(fg, bg), bg);
    if (r < minimum) problems.push(what + ' "' + (el.textContent || '').trim().slice(0, 40) + '": ' + r.toFixed(2) + ':1 (' + fg.join(',') + ' on ' + bg.join(',') + ')');
  };
  for (const el of Array.from(document.body.querySelectorAll('*'))) {
    if (el.closest('svg')) continue;
    const own = Array.from(el.childNodes).some((n) => n.nodeType === Node.TEXT_NODE && (n.textContent || '').trim() !== '');
    const name = el.tagName.toLowerCase() + (typeof el.className === 'string' && el.className ? '.' + el.className.replace(/ /g, '.') : '');
    if (own && visible(el)) check(el, name, parse(getComputedStyle(el).color), background(el));
    const before = getComputedStyle(el, '::before');
    if (before.content && before.content !== 'none' && before.content !== 'normal' && visible(el)) check(el, name + '::before', parse(before.color), background(el));
  }
  for (const t of Array.from(document.querySelectorAll('svg text'))) {
    if (!visible(t)) continue;
    const bar = t.classList.contains('inside') && t.parentElement ? t.parentElement.querySelector('rect.wave-bar') : null;
    const bg = bar ? parse(getComputedStyle(bar).fill) : background(t.closest('svg'));
    check(t, 'svg text.' + t.getAttribute('class'), parse(getComputedStyle(t).fill), bg);
  }
  return { problems, checked };
}`;

/** Runs in the page: sideways scrolling, and phase badges of host tables cut off on the right. */
const LAYOUT_PROBLEMS = `(label) => {
  const out = [];
  const doc = document.documentElement;
  if (doc.scrollWidth > window.innerWidth) out.push(label + ': page is ' + doc.scrollWidth + ' px wide in a ' + window.innerWidth + ' px viewport');
  for (const chip of Array.from(document.querySelectorAll('table.hosts .phase'))) {
    const r = chip.getBoundingClientRect();
    if (r.right > window.innerWidth || r.width === 0) out.push(label + ': phase "' + chip.textContent + '" at x=' + Math.round(r.right) + ' is off-screen');
  }
  return out;
}`;

async function layoutProblems(page: Page, label: string): Promise<string[]> {
  return page.evaluate(`(${LAYOUT_PROBLEMS})(${JSON.stringify(label)})`);
}

async function contrastProblems(page: Page): Promise<{ problems: string[]; checked: number }> {
  return page.evaluate(`(${CONTRAST_PROBLEMS})(4.5)`);
}

test('phone and desktop: no sideways scrolling, phases on screen, every text and badge at least 4.5:1 contrast', async () => {
  if (!requireTool('chromium', 'the dashboard browser test')) return;
  fx ??= createSiteFixture();
  await buildSite({ treeDir: fx.treeDir, pinnedRoot: fx.root, outDir: fx.outDir, now: NOW });
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS, timeout: 60_000 });
  try {
    const site = pathToFileURL(fx.outDir).href;
    const pages = [
      'index.html',
      'hosts.html',
      'lists/phase-pending_1.html',
      'trust.html',
      'documents.html',
      'channels/ch-0.html',
      'channels/ch-1.html',
      'channels/ch-2.html',
      detailOf(fx.roles.failed),
      detailOf(fx.roles.soaked),
    ];
    const problems: string[] = [];
    let badges = 0;
    let texts = 0;
    for (const vp of VIEWPORTS) {
      const context = await browser.newContext({ viewport: vp, javaScriptEnabled: false });
      const page = await context.newPage();
      for (const p of pages) {
        await page.goto(`${site}/${p}`);
        problems.push(...(await layoutProblems(page, `${p} at ${vp.width}`)));
        const contrast = await contrastProblems(page);
        problems.push(...contrast.problems.map((x) => `${p} at ${vp.width}: ${x}`));
        texts += contrast.checked;
        badges += await page.locator('.phase').count();
      }
      for (const [p, shot] of [
        ['index.html', 'index'],
        [detailOf(fx.roles.failed), 'host'],
        ['channels/ch-1.html', 'channel'],
        ['hosts.html', 'hosts'],
      ] as const) {
        await page.goto(`${site}/${p}`);
        await page.screenshot({ path: join(fx.dir, `${shot}-${vp.width}.png`), fullPage: true });
      }
      await context.close();
    }
    assert.equal(problems, []);
    assert.ok(badges > 50, `phase badges checked: ${badges}`);
    assert.ok(texts > 1000, `texts checked: ${texts}`);
    // the phone layout really is the phone layout: the host table is one block per host
    const context = await browser.newContext({ viewport: VIEWPORTS[0]!, javaScriptEnabled: false });
    const phone = await context.newPage();
    await phone.goto(`${site}/hosts.html`);
    assert.is(await phone.locator('table.hosts thead').isVisible(), false);
    // ...each cell labelled by its column (the stylesheet's per-column labels, not a per-cell attribute)
    const labels = (table: string): Promise<string[]> =>
      phone.evaluate(
        `Array.from(document.querySelector('table.${table} tbody tr').children).map((td) =>
          getComputedStyle(td, '::before').content.replace(/^"|"$/g, ''))`,
      );
    assert.equal(await labels('hosts'), [
      'none',
      ...['phase', 'channel', 'wave', 'last ack', 'why', 'current', 'target'].map((l) => `${l}: `),
    ]);
    await phone.goto(`${site}/${detailOf(fx.roles.failed)}`);
    assert.equal(await labels('acks'), [
      'none',
      ...['signed at', 'kind', 'release', 'rollout', 'current', 'healthy since', 'reason'].map(
        (l) => `${l}: `,
      ),
    ]);
    await context.close();
    if (process.env.SITE_GEN_KEEP_SCREENSHOTS) {
      const { cpSync } = await import('node:fs');
      for (const vp of VIEWPORTS)
        for (const shot of ['index', 'host', 'channel', 'hosts'])
          cpSync(
            join(fx.dir, `${shot}-${vp.width}.png`),
            join(process.env.SITE_GEN_KEEP_SCREENSHOTS, `${shot}-${vp.width}.png`),
          );
    }
  } finally {
    await browser.close();
  }
});

test('search: with JavaScript the hosts page finds a host by name; without it the form stays hidden and the lists page', async () => {
  if (!requireTool('chromium', 'the dashboard browser test')) return;
  fx ??= createSiteFixture();
  await buildSite({ treeDir: fx.treeDir, pinnedRoot: fx.root, outDir: fx.outDir, now: NOW });
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS, timeout: 60_000 });
  try {
    const site = pathToFileURL(fx.outDir).href;
    const withJs = await browser.newContext({ viewport: VIEWPORTS[0]!, javaScriptEnabled: true });
    const page = await withJs.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`${site}/lists/all_1.html`);
    await page.locator('#search input').fill(fx.roles.failed);
    const section = `h-${fx.roles.failed}`;
    const hit = page.locator(
      `#search-results a[href="../${detailOf(fx.roles.failed)}#${section}"]`,
    );
    await hit.waitFor({ timeout: 20_000 });
    assert.match(await page.locator('#search-results').innerText(), 'failed, channel ch-1');
    await hit.click();
    await page.waitForURL(`**#${section}`);
    assert.ok(await page.locator(`#${section}`).isVisible());
    assert.equal(errors, []);
    await withJs.close();

    const noJs = await browser.newContext({ viewport: VIEWPORTS[0]!, javaScriptEnabled: false });
    const plain = await noJs.newPage();
    await plain.goto(`${site}/hosts.html`);
    assert.is(await plain.locator('#search').isVisible(), false);
    // the failed badge leads to the list of failed hosts
    await plain.locator('.filters a.phase', { hasText: 'failed' }).click();
    assert.match(await plain.title(), 'Hosts in phase failed');
    assert.ok(await plain.locator(`#host-${fx.roles.failed}`).isVisible());
    // and its row to the host's section on its detail page, scrolled into view
    await plain.locator(`#host-${fx.roles.failed} a`).first().click();
    await plain.waitForURL(`**#h-${fx.roles.failed}`);
    assert.ok(await plain.locator(`#h-${fx.roles.failed}`).isVisible());
    const [top, viewport] = await plain
      .locator(`#h-${fx.roles.failed} h2`)
      .evaluate((e) => [
        e.getBoundingClientRect().top,
        e.ownerDocument.documentElement.clientHeight,
      ]);
    assert.ok(
      top! >= 0 && top! < viewport!,
      `the host section is scrolled into view (${top} of ${viewport})`,
    );
    await noJs.close();
  } finally {
    await browser.close();
  }
});

test.run();
