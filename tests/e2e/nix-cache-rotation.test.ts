// A binary-cache key rotated by a trust-root rotation, end to end through nginx with real Nix hosts
// (own /nix each, `nixfleet agent --once` in its own mount namespace), releases published with the
// real cache check. What is tested, precisely:
//   before: root v1 lists only the OLD cache key; release 1 sends a and b to v2 (closure signed by OLD):
//           both accept it (generation 2).
//   rotate: `nixfleet trust rotate --cache-key NEW --reject-before T` writes root v2 listing only NEW, with
//           rejectBefore = T (the old key is treated as compromised). CI re-signs the closures it still
//           serves with NEW (`nix store sign -r`) and pushes v4 signed by NEW.
//   (1) rejectBefore: `cp sync` of a tree carrying root v2 and the release signed before T is refused
//       (Revoked): nothing signed before the rotation can be installed again.
//   (2) new key accepted: release 2 (a -> v4, signed only by NEW, checked by the publisher against root
//       v2): a's agent, pinned at root v1, walks to root v2 and installs v4 as generation 3.
//   (3) old key refused: a closure signed ONLY by OLD (pushed after the rotation, as a holder of the
//       compromised key could) is refused by the publisher's check against root v2, and by b's Nix (b
//       accepted OLD-signed v2 under root v1): UntrustedKey, failed ack, generation 2 kept. Release 3 is
//       therefore published without the cache check, on purpose.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { copyFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { requireTool } from '../support/skip.ts';
import { runCli } from '../support/cli.ts';
import { NixE2e } from '../support/nix-e2e.ts';
import { buildSandbox, cacheKey, cleanupNixHosts } from '../support/nix-hosts.ts';
import { run } from '../nix/nix-env.ts';
import { writePrivateKey } from '../../protocol/keys.ts';
import { isoTime } from '../../protocol/schemas/common.ts';
import { rootPath } from '../../protocol/layout.ts';
import { PublishRefused } from '../../publisher/errors.ts';
import type { OnceResult } from '../support/e2e-stack.ts';

test.after(() => cleanupNixHosts());

function outcome(r: OnceResult): string {
  return `${String(r.outcome?.['decision'])}/${String(r.outcome?.['acted'])}`;
}

test('cache key rotated by a root rotation: new key accepted after the walk, old key refused, pre-rotation release not installable', async () => {
  if (
    !requireTool('nix', 'real Nix hosts') ||
    !requireTool('unshare', 'a /nix per host') ||
    !requireTool('nginx', 'e2e through nginx') ||
    !requireTool('openssl', 'fleet PKI')
  )
    return;
  const e2e = await NixE2e.create({ hosts: ['a', 'b'] });
  const { stack, sys } = e2e;
  const lab = stack.lab;
  const channel = (hosts: Record<string, string>) =>
    e2e.fleet({ prod: { hosts, waves: [{ soakSeconds: 0 }], confirmDeadlineSeconds: 60 } });
  try {
    await e2e.seed(sys.v1);

    // Before: root v1 trusts OLD; v2 signed by OLD is accepted by both hosts.
    await e2e.push([sys.v2], e2e.key);
    await e2e.publish(channel({ a: sys.v2, b: sys.v2 }));
    await stack.startControlPlane();
    await stack.waitAckEndpointPrimed('a');
    const before = await Promise.all(['a', 'b'].map((h) => stack.runAgentOnce(h, {}, 90_000)));
    for (const r of before)
      assert.is(outcome(r), 'activate/confirmed', JSON.stringify(r.events.slice(-5)));
    for (const h of ['a', 'b']) assert.equal(e2e.host(h).generations(), [1, 2]);

    // Rotate: root v2 lists only NEW, rejectBefore = now. CI re-signs what it serves with NEW.
    const next = await cacheKey('fleet-cache-2');
    await e2e.push([sys.v4], next);
    const resign = await run(
      'nix',
      [
        'store',
        'sign',
        '--store',
        `file://${e2e.ciCacheDir}`,
        '--key-file',
        next.secretFile,
        '-r',
        sys.v2,
        sys.v4,
      ],
      { env: buildSandbox().env },
    );
    assert.is(resign.code, 0, resign.stderr);
    await e2e.push([sys.unhealthy], e2e.key); // signed by OLD only, after the rotation
    const rootKeyFile = join(stack.dir, 'root.key');
    writePrivateKey(rootKeyFile, lab.rootKey);
    const rotatedAt = Math.floor(Date.now() / 1000) * 1000;
    const rotate = await runCli(
      'trust',
      'rotate',
      '--trust',
      lab.trustDir,
      '--old-root-key',
      rootKeyFile,
      '--root-key',
      rootKeyFile,
      '--cache-key',
      next.publicKey,
      '--reject-before',
      isoTime(rotatedAt),
      '--out',
      lab.trustDir,
    );
    assert.is(rotate.code, 0, rotate.err);
    const root2 = JSON.parse(readFileSync(join(lab.trustDir, rootPath(2)), 'utf8')) as {
      signed: { cacheKeys: string[]; rejectBefore: string };
    };
    assert.equal(root2.signed.cacheKeys, [next.publicKey]);
    assert.is(root2.signed.rejectBefore, isoTime(rotatedAt));

    // (1) The release signed before the rotation, under root v2: cp sync refuses it.
    await new Promise((r) => setTimeout(r, Math.max(0, rotatedAt + 1000 - Date.now()))); // next publish after T
    copyFileSync(join(lab.trustDir, rootPath(2)), join(lab.treeDir, rootPath(2)));
    const stale = await stack.sync().then(
      () => null,
      (e: unknown) => e as Error,
    );
    assert.ok(
      stale && stale.name === 'Revoked',
      `cp sync of the pre-rotation release: ${String(stale)}`,
    );

    // (2) Release 2: a -> v4 (signed by NEW only), checked against root v2; a walks to root v2 and installs it.
    const r2 = await e2e.publish(channel({ a: sys.v4, b: sys.v2 }));
    assert.ok(
      !r2.cacheCheck.skipped && r2.cacheCheck.keysUsed.join() === next.publicKey,
      JSON.stringify(r2.cacheCheck),
    );
    const [a2, b2] = await Promise.all(['a', 'b'].map((h) => stack.runAgentOnce(h, {}, 90_000)));
    assert.ok(
      a2!.events.some((e) => e['event'] === 'trust-root-updated'),
      JSON.stringify(a2!.events.slice(0, 8)),
    );
    assert.is(outcome(a2!), 'activate/confirmed', JSON.stringify(a2!.events.slice(-5)));
    assert.equal(e2e.host('a').generations(), [1, 2, 3]);
    assert.is(e2e.host('a').profileGeneration(), 3);
    assert.equal(e2e.host('a').switchLog().at(-1), `switch ${sys.v4}`);
    assert.is(b2!.outcome?.['decision'], 'converged', JSON.stringify(b2!.events.slice(-5)));

    // (3) A closure signed only by OLD: the publisher's check refuses it against root v2...
    const fleet3 = channel({ a: sys.v4, b: sys.unhealthy });
    const refused = await e2e.publish(fleet3).then(
      () => null,
      (e: unknown) => e,
    );
    assert.instance(refused, PublishRefused);
    assert.match(
      (refused as Error).message,
      `${sys.unhealthy}: signed only by keys not in the trust root`,
    );
    // ...and, published without the check, b's Nix refuses it: only NEW is trusted now.
    await e2e.publishUnchecked(fleet3);
    const b3 = await stack.runAgentOnce('b', {}, 90_000);
    assert.is(outcome(b3), 'activate/failed', JSON.stringify(b3.events.slice(-5)));
    const event = b3.events.find((e) => e['event'] === 'closure-refused');
    assert.is(event?.['code'], 'UntrustedKey', JSON.stringify(event));
    assert.is(event?.['storePath'], sys.unhealthy);
    const last = stack.acksOf('b').at(-1)!;
    assert.is(last.kind, 'failed');
    assert.match(last.reason!, 'closure refused (UntrustedKey)');
    assert.equal(e2e.host('b').generations(), [1, 2]);
    assert.is(e2e.host('b').profileGeneration(), 2);
    const [valid] = await e2e.host('b').driver([{ op: 'valid', path: sys.unhealthy }]);
    assert.equal(valid, { ok: true, value: false });
  } catch (e) {
    throw stack.explain(e);
  } finally {
    await e2e.close();
  }
});

test.run();
