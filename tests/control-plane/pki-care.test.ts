// Certificate care with real openssl: a PKCS#12 bundle for the browser, renewal, listing by expiry and
// the expiry warning every `nixfleet pki` command prints on stderr.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requireTool } from '../support/skip.ts';
import { runCli } from '../support/cli.ts';

function pkiDir(): string {
  const dir = join(mkdtempSync(join(tmpdir(), 'nf-pkicare-')), 'pki');
  return dir;
}

test('issue-operator --p12: openssl reads the bundle back with the password; cert, key and CA inside', async () => {
  if (!requireTool('openssl', 'PKI')) return;
  const dir = pkiDir();
  assert.is((await runCli('pki', 'init', '--out', dir, '--fleet', 'lab')).code, 0);
  const pw = join(dir, '..', 'pw');
  writeFileSync(pw, 's3cret pass\n');
  const p12 = join(dir, '..', 'alice.p12');
  const r = await runCli(
    'pki',
    'issue-operator',
    '--pki',
    dir,
    '--name',
    'alice',
    '--p12',
    p12,
    '--p12-password-file',
    pw,
    '--json',
  );
  assert.is(r.code, 0, r.err + r.out);
  assert.is((JSON.parse(r.out) as { p12: string }).p12, p12);
  assert.is((statSync(p12).mode & 0o777).toString(8), '600');
  const pem = execFileSync('openssl', ['pkcs12', '-in', p12, '-passin', `file:${pw}`, '-nodes'], {
    encoding: 'utf8',
  });
  assert.is(
    (pem.match(/BEGIN CERTIFICATE/g) ?? []).length,
    2,
    'the operator certificate and the fleet CA',
  );
  assert.match(pem, /BEGIN PRIVATE KEY/);
  assert.match(pem, /OU ?= ?operator/);
  // A wrong password is refused: the bundle really is encrypted.
  writeFileSync(pw + '2', 'wrong\n');
  assert.throws(() =>
    execFileSync('openssl', ['pkcs12', '-in', p12, '-passin', `file:${pw}2`, '-nodes'], {
      stdio: 'pipe',
    }),
  );
  // Without a password file: an empty password.
  const p12b = join(dir, '..', 'bob.p12');
  assert.is(
    (await runCli('pki', 'issue-operator', '--pki', dir, '--name', 'bob', '--p12', p12b)).code,
    0,
  );
  assert.match(
    execFileSync('openssl', ['pkcs12', '-in', p12b, '-passin', 'pass:', '-nodes'], {
      encoding: 'utf8',
    }),
    /BEGIN PRIVATE KEY/,
  );
  const bad = await runCli('pki', 'issue-host', '--pki', dir, '--host', 'web1', '--p12', p12b);
  assert.is(bad.code, 2, 'hosts get no --p12');
});

test('list --expiring-within, the 30-day warning on stderr, and renew (same key; --new-key)', async () => {
  if (!requireTool('openssl', 'PKI')) return;
  const dir = pkiDir();
  assert.is((await runCli('pki', 'init', '--out', dir)).code, 0);
  const long = await runCli('pki', 'issue-host', '--pki', dir, '--host', 'web1');
  assert.is(long.code, 0);
  assert.is(long.err, '', 'nothing expires soon: no warning');
  const short = await runCli('pki', 'issue-host', '--pki', dir, '--host', 'web2', '--days', '10');
  assert.is(short.code, 0, short.err);
  assert.match(short.err, /warning: hosts\/web2\.crt .*expires in (9|10) days/);
  assert.not.match(short.err, /web1/);

  const listed = await runCli('pki', 'list', '--pki', dir, '--json');
  assert.is(listed.code, 0);
  const all = JSON.parse(listed.out) as { file: string; kind: string; daysLeft: number }[];
  assert.equal(all.map((c) => c.file).sort(), [
    'ca.crt',
    'hosts/web1.crt',
    'hosts/web2.crt',
    'server.crt',
  ]);
  const soon = await runCli('pki', 'list', '--pki', dir, '--expiring-within', '30', '--json');
  assert.is(soon.code, 1, 'a certificate expiring within the window: exit 1');
  assert.equal(
    (JSON.parse(soon.out) as { file: string }[]).map((c) => c.file),
    ['hosts/web2.crt'],
  );
  assert.is((await runCli('pki', 'list', '--pki', dir, '--expiring-within', '5')).code, 0);

  // Renew with the same key: new serial and expiry, same subject and public key; the old one set aside.
  const crt = join(dir, 'hosts', 'web2.crt');
  const before = new X509Certificate(readFileSync(crt));
  const keyBefore = readFileSync(join(dir, 'hosts', 'web2.key'), 'utf8');
  const renewed = await runCli('pki', 'renew', '--pki', dir, '--cert', crt, '--json');
  assert.is(renewed.code, 0, renewed.err + renewed.out);
  assert.is(renewed.err, '', 'nothing expires soon any more');
  const after = new X509Certificate(readFileSync(crt));
  assert.is(after.subject, before.subject);
  assert.is.not(after.serialNumber, before.serialNumber);
  assert.ok(Date.parse(after.validTo) - Date.now() > 300 * 86_400_000);
  assert.ok(after.publicKey.equals(before.publicKey), 'same key');
  assert.is(readFileSync(join(dir, 'hosts', 'web2.key'), 'utf8'), keyBefore);
  assert.ok(
    after.verify(new X509Certificate(readFileSync(join(dir, 'ca.crt'))).publicKey),
    'signed by the fleet CA',
  );
  assert.ok(
    existsSync(join(dir, 'hosts', `web2.renewed-${before.serialNumber.toUpperCase()}.crt`)),
  );
  assert.ok(after.checkPrivateKey((await import('node:crypto')).createPrivateKey(keyBefore)));
  // openssl verifies the new certificate against the CA.
  execFileSync('openssl', ['verify', '-CAfile', join(dir, 'ca.crt'), crt], { stdio: 'pipe' });

  // --new-key: a new key pair, the certificate matches it.
  const rk = await runCli('pki', 'renew', '--pki', dir, '--cert', crt, '--new-key');
  assert.is(rk.code, 0, rk.err);
  const fresh = new X509Certificate(readFileSync(crt));
  assert.not.ok(fresh.publicKey.equals(before.publicKey));
  assert.ok(
    fresh.checkPrivateKey(
      (await import('node:crypto')).createPrivateKey(readFileSync(join(dir, 'hosts', 'web2.key'))),
    ),
  );

  // The server certificate keeps its subject alternative names.
  const srv = join(dir, 'server.crt');
  const sanBefore = new X509Certificate(readFileSync(srv)).subjectAltName;
  assert.is((await runCli('pki', 'renew', '--pki', dir, '--cert', srv)).code, 0);
  assert.is(new X509Certificate(readFileSync(srv)).subjectAltName, sanBefore);

  // Refusals name what is wrong.
  const ca = await runCli('pki', 'renew', '--pki', dir, '--cert', join(dir, 'ca.crt'));
  assert.is(ca.code, 1);
  assert.match(ca.out, /the CA is renewed with a new pki init/);
  assert.is(
    (await runCli('pki', 'issue-host', '--pki', dir, '--host', 'web3', '--days', 'x')).code,
    2,
  );
});

test.run();
