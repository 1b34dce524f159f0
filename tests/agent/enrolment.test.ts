// The agent's side of enrolment (agent/enrolment.ts) that the end-to-end test does not reach: when a
// renewal is due (2/3 of the lifetime), that nothing happens without a token, and that a crash between
// storing the issued certificate and installing it is finished by the next run (key and certificate
// always a pair).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AgentConfig } from '../../agent/config.ts';
import { ensureCertificate, renewalDue } from '../../agent/enrolment.ts';
import { StateDir } from '../../agent/state-dir.ts';
import { createLogger } from '../../agent/log.ts';
import { newSigningKey } from '../../protocol/keys.ts';
import { requireTool } from '../support/skip.ts';

const dirs: string[] = [];
test.after.each(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function selfSigned(dir: string, name: string, days: number): { cert: string; key: string } {
  const key = join(dir, `${name}.key`);
  const cert = join(dir, `${name}.crt`);
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-keyout',
      key,
      '-out',
      cert,
      '-days',
      String(days),
      '-subj',
      `/O=ops/OU=agent/CN=${name}`,
    ],
    { stdio: 'ignore' },
  );
  return { cert, key };
}

function config(dir: string, token: string | null) {
  return AgentConfig.parse({
    controlPlaneUrl: 'https://127.0.0.1:1/',
    caFile: join(dir, 'ca.crt'),
    certFile: join(dir, 'tls.crt'),
    keyFile: join(dir, 'tls.key'),
    host: 'web-1',
    enrolmentTokenFile: token,
    hostKeyFile: join(dir, 'host.key'),
    trustRootFile: join(dir, 'root.json'),
    stateDir: join(dir, 'state'),
    activator: { kind: 'simulated', initialPath: '/nix/store/00000000000000000000000000000000-x' },
  });
}

const opts = (c: AgentConfig) => ({
  config: c,
  state: new StateDir(c.stateDir),
  hostKey: newSigningKey('web-1'),
  now: Date.now(),
  log: createLogger('web-1', () => {}),
});

test('renewal is due from 2/3 of the lifetime on, not before', () => {
  if (!requireTool('openssl', 'test certificates')) return;
  const dir = mkdtempSync(join(tmpdir(), 'nf-agent-enrol-'));
  dirs.push(dir);
  const { cert } = selfSigned(dir, 'web-1', 3);
  const x = new X509Certificate(readFileSync(cert));
  const from = Date.parse(x.validFrom);
  const life = Date.parse(x.validTo) - from;
  assert.not.ok(renewalDue(cert, from + life * 0.6));
  assert.ok(renewalDue(cert, from + life * 0.67));
  assert.ok(renewalDue(cert, from + life * 2));
});

test('no certificate and no token: nothing to do (the run fails as before, naming the missing certificate)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'nf-agent-enrol-'));
  dirs.push(dir);
  assert.is(await ensureCertificate(opts(config(dir, null))), 'no-certificate');
  assert.is(
    await ensureCertificate(opts(config(dir, join(dir, 'absent.token')))),
    'no-certificate',
  );
});

test('a crash after the issued certificate was stored and before it was installed is finished by the next run', async () => {
  if (!requireTool('openssl', 'test certificates')) return;
  const dir = mkdtempSync(join(tmpdir(), 'nf-agent-enrol-'));
  dirs.push(dir);
  const c = config(dir, null);
  const old = selfSigned(dir, 'old', 30);
  writeFileSync(c.certFile, readFileSync(old.cert));
  writeFileSync(c.keyFile, readFileSync(old.key));
  // What obtain() leaves when killed right after storing the answer: the pending key, CSR and certificate.
  const fresh = selfSigned(dir, 'web-1', 7);
  const state = new StateDir(c.stateDir);
  writeFileSync(state.path('enrolment-key.pem'), readFileSync(fresh.key));
  writeFileSync(state.path('enrolment.csr'), 'csr');
  writeFileSync(state.path('enrolment-issued.crt'), readFileSync(fresh.cert));
  assert.is(await ensureCertificate(opts(c)), 'valid');
  assert.equal(readFileSync(c.certFile), readFileSync(fresh.cert));
  assert.equal(readFileSync(c.keyFile), readFileSync(fresh.key));
  assert.not.ok(existsSync(state.path('enrolment-issued.crt')));
  assert.not.ok(existsSync(state.path('enrolment-key.pem')));
});

test.run();
