// The dashboard's compliance: each host page has a controls table (static from the verified manifest,
// runtime from the newest signed evidence, escaped by html``), and the overview's attention panel lists
// hosts failing controls in enforce channels.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { join } from 'node:path';
import { buildSite } from '../../site-gen/build.ts';
import { scene } from '../read-side/compliance-fixture.ts';
import { NOW, cleanupTempDirs } from '../read-side/fixture.ts';
import { hostSection, readSite } from './fixture.ts';
import { readPinnedRoot } from '../../protocol/pinned-root.ts';

test.after.each(cleanupTempDirs);

test('host pages show the controls table, escaped; the attention panel lists failing controls in enforce channels', async () => {
  const s = scene('site-compliance');
  const outDir = join(s.fx.dir, 'site');
  await buildSite({
    treeDir: s.fx.tree,
    pinnedRoot: readPinnedRoot(s.fx.rootFile),
    outDir,
    now: NOW,
    ackLogFile: s.fx.logFile,
  });
  const site = readSite(outDir);
  const page = hostSection(site, s.a);
  assert.match(page, '<h3>Compliance controls</h3>');
  assert.match(page, 'Mode <b>enforce</b>, frameworks cis.');
  const row = (control: string) =>
    page.split('<tr>').find((r) => r.includes(`data-l="control">${control}<`))!;
  assert.match(row('ssh-no-password'), '>ok<');
  assert.match(row('ssh-no-password'), 'services.openssh.settings.PasswordAuthentication = false');
  assert.match(row('aide'), 'FAILING');
  assert.match(row('aide'), 'ack seq 13, exit 1');
  // The host-signed excerpt is text, never markup.
  assert.match(row('aide'), '&lt;img src=x onerror=alert(1)&gt;');
  assert.not.ok(page.includes('<img src=x'));
  assert.match(row('auditd'), '>ok<');
  const other = Object.keys(s.fx.plans['ch-1']!.hosts)[0]!;
  assert.match(hostSection(site, other), 'names no compliance framework');
  const overview = site.get('index.html')!;
  assert.match(overview, '1 host(s) failing compliance controls in enforce channels');
  assert.match(overview, `${s.a} (cis/aide)`);
});

test.run();
