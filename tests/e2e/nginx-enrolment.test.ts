// Enrolment end to end through the production path (issue 13 section 2): the real nginx (client
// certificates from the fleet CA or the enrolment issuing CA, both CRLs), `nixfleet enrol serve` and
// the ack endpoint as child processes behind it, `cp sync` installing CI's tree. A host with only a
// token enrols on its first `nixfleet agent --once` and runs its cycle with the new certificate; the
// same token on another machine is refused; renewal over mTLS rotates the key; a host revoked by a
// signed release cannot renew; the endpoint killed -9 between its durable reservation and its answer
// is restarted and the agent's retry gets the reserved certificate (one certificate, not two).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  b64,
  keyIdOf,
  newSigningKey,
  writePrivateKey,
  type SigningKey,
} from '../../protocol/keys.ts';
import { isoTime } from '../../protocol/schemas/common.ts';
import { createRoot, signRoot, type SignedRoot } from '../../protocol/trust-root.ts';
import { envelopeBytes } from '../../protocol/envelope.ts';
import { publishRelease } from '../../publisher/publish.ts';
import { refreshTimestamp } from '../../publisher/refresh.ts';
import { mintEnrolmentToken } from '../../publisher/enrolment.ts';
import type { FleetInput } from '../../publisher/fleet-schema.ts';
import {
  issueHostCert,
  revokeCert,
  initPki,
  initIssuingCa,
  writeCrlChain,
  type PkiPaths,
  type IssuingCaPaths,
} from '../../control-plane/pki.ts';
import { renderNginxConfig } from '../../control-plane/nginx-config.ts';
import { ensureRevocationMaps, syncTree } from '../../control-plane/sync.ts';
import { AgentConfig } from '../../agent/config.ts';
import { ensureCertificate, renewCertificate, EnrolmentFailed } from '../../agent/enrolment.ts';
import { StateDir } from '../../agent/state-dir.ts';
import { createLogger } from '../../agent/log.ts';
import { requireTool } from '../support/skip.ts';
import {
  startNginx,
  freePort,
  makeRuntimeDir,
  removeRuntimeDir,
  type RunningNginx,
} from '../support/nginx.ts';
import { startCli, jsonLines, until, type CliProcess } from '../support/e2e-processes.ts';
import { req } from '../control-plane/http.ts';

const OLD = '/nix/store/00000000000000000000000000000000-nixos-system-old';
const DAY = 86_400_000;

class Stack {
  readonly ci: string;
  readonly cp: string;
  readonly rootFile: string;
  readonly pki: PkiPaths;
  readonly issuing: IssuingCaPaths;
  readonly release = newSigningKey('release');
  readonly enrolment = newSigningKey('enrol');
  readonly hostKeys: Record<string, SigningKey> = {
    'web-1': newSigningKey('web-1'),
    'web-2': newSigningKey('web-2'),
  };
  readonly root: SignedRoot;
  nginx: RunningNginx | null = null;
  enrol: CliProcess | null = null;
  acks: CliProcess | null = null;
  private enrolStarts = 0;
  readonly runtimeDir = makeRuntimeDir();

  constructor(
    readonly dir: string,
    readonly ports: { nginx: number; acks: number; enrol: number },
  ) {
    this.ci = join(dir, 'ci');
    this.cp = join(dir, 'cp');
    mkdirSync(this.cp, { recursive: true });
    ensureRevocationMaps(this.cp);
    const now = Date.now();
    const window = { validFrom: isoTime(now - DAY), validUntil: isoTime(now + 365 * DAY) };
    const rootKey = newSigningKey('root');
    this.root = signRoot(
      createRoot({
        fleet: 'ops',
        version: 1,
        issuedAt: isoTime(now - DAY),
        expires: isoTime(now + 365 * DAY),
        rootKeys: [rootKey],
        rootThreshold: 1,
        releaseKeys: [{ key: this.release, ...window }],
        releaseThreshold: 1,
        cacheKeys: [],
        enrolmentKeys: [{ key: this.enrolment, ...window }],
        enrolmentThreshold: 1,
      }),
      [rootKey],
    );
    this.rootFile = join(dir, 'root-1.json');
    writeFileSync(this.rootFile, envelopeBytes(this.root));
    for (const [h, k] of Object.entries(this.hostKeys)) writePrivateKey(join(dir, `${h}.key`), k);
    this.pki = initPki(join(dir, 'pki'), { fleet: 'ops' });
    this.issuing = initIssuingCa(join(dir, 'pki'), join(dir, 'issuing'));
    this.publish([]);
  }

  static async create(): Promise<Stack> {
    const dir = mkdtempSync(join(tmpdir(), 'nf-e2e-enrol-'));
    chmodSync(dir, 0o755);
    return new Stack(dir, {
      nginx: await freePort(),
      acks: await freePort(),
      enrol: await freePort(),
    });
  }

  get url(): string {
    return `https://127.0.0.1:${this.ports.nginx}/`;
  }

  publish(revoked: string[]): void {
    // The enrolment documents published just before may carry an issuedAt in the next second; the
    // publisher (rightly) refuses a clock behind the current timestamp, so wait that second out.
    const ts = join(this.ci, 'timestamp.json');
    if (existsSync(ts)) {
      const issuedAt = Date.parse(
        (JSON.parse(readFileSync(ts, 'utf8')) as { signed: { issuedAt: string } }).signed.issuedAt,
      );
      const wait = issuedAt - Date.now();
      if (wait > 0) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, wait + 1);
    }
    publishRelease({
      cacheCheck: 'skip',
      treeDir: this.ci,
      releaseKeys: [this.release],
      roots: [this.root],
      now: Date.now(),
      fleet: {
        fleet: 'ops',
        hosts: Object.fromEntries(
          Object.entries(this.hostKeys).map(([h, k]) => [
            h,
            {
              system: 'x86_64-linux',
              channel: 'prod',
              target: OLD,
              hostKey: b64(k.publicKey),
              tags: [],
            },
          ]),
        ),
        channels: { prod: { policy: 'p' } },
        policies: { p: { strategy: 'all-at-once', waves: [] } },
        ...(revoked.length
          ? {
              revoked: { hosts: revoked.map((host) => ({ host, reason: 'stolen' })), closures: [] },
            }
          : {}),
      } as unknown as FleetInput,
    });
  }

  sync() {
    return syncTree({
      from: this.ci,
      treeDir: this.cp,
      pinnedRoot: this.root,
      ...(this.nginx ? { nginxPidFile: this.nginx.pidFile } : {}),
    });
  }

  /** The operator mints, CI refreshes, the control plane installs: the token is usable. */
  async mint(host: string): Promise<string> {
    const r = mintEnrolmentToken({
      treeDir: this.ci,
      root: this.root.signed,
      keys: [this.enrolment],
      now: Date.now(),
      host,
      hostKeyId: keyIdOf(this.hostKeys[host]!.publicKey),
      expires: Date.now() + DAY,
    });
    refreshTimestamp({ treeDir: this.ci, releaseKeys: [this.release], now: Date.now() + 1000 });
    await this.sync();
    const file = join(this.dir, `${host}-${r.version}.token`);
    writeFileSync(file, envelopeBytes(r.token), { mode: 0o600 });
    return file;
  }

  async startEnrol(env: NodeJS.ProcessEnv = {}): Promise<CliProcess> {
    const p = startCli(
      [
        'enrol',
        'serve',
        '--tree',
        this.cp,
        '--root',
        this.rootFile,
        '--issuing',
        this.issuing.dir,
        '--state',
        join(this.dir, 'enrol-state'),
        '--port',
        String(this.ports.enrol),
      ],
      join(this.dir, `enrol-${++this.enrolStarts}.log`),
      { env: { ...process.env, ...env }, wrap: [] },
    );
    await until('enrol serve listening', 20_000, () => p.output().includes('"url"'));
    this.enrol = p;
    return p;
  }

  async start(): Promise<void> {
    await this.sync();
    this.acks = startCli(
      ['cp', 'serve', '--acks-only', '--tree', this.cp, '--port', String(this.ports.acks)],
      join(this.dir, 'acks.log'),
    );
    await until('ack endpoint listening', 20_000, () => this.acks!.output().includes('"url"'));
    await this.startEnrol();
    this.nginx = await startNginx({
      runtimeDir: this.runtimeDir,
      port: this.ports.nginx,
      config: renderNginxConfig({
        treeDir: this.cp,
        caCert: this.issuing.clientCaBundle,
        crl: writeCrlChain(this.pki.dir, this.issuing.dir),
        serverCert: this.pki.serverCert,
        serverKey: this.pki.serverKey,
        listen: `127.0.0.1:${this.ports.nginx}`,
        ackUpstream: `127.0.0.1:${this.ports.acks}`,
        enrolUpstream: `127.0.0.1:${this.ports.enrol}`,
        runtimeDir: this.runtimeDir,
        workerProcesses: 1,
      }),
    });
  }

  /** An agent config for `host` on a machine (its own state dir, no certificate yet). */
  agentConfig(
    host: string,
    machine: string,
    token: string | null,
  ): { file: string; config: AgentConfig } {
    const m = join(this.dir, machine);
    mkdirSync(m, { recursive: true });
    const config = AgentConfig.parse({
      controlPlaneUrl: this.url,
      caFile: this.pki.caCert,
      certFile: join(m, 'tls.crt'),
      keyFile: join(m, 'tls.key'),
      host,
      enrolmentTokenFile: token,
      hostKeyFile: join(this.dir, `${host}.key`),
      trustRootFile: this.rootFile,
      stateDir: join(m, 'state'),
      activator: { kind: 'simulated', initialPath: OLD },
      requestTimeoutMs: 5000,
      retries: 1,
    });
    const file = join(m, 'agent.json');
    writeFileSync(file, JSON.stringify(config));
    return { file, config };
  }

  certsIssued(): string[] {
    const d = join(this.dir, 'enrol-state', 'certs');
    return existsSync(d) ? readdirSync(d) : [];
  }

  async close(): Promise<void> {
    await this.nginx?.stop();
    await this.enrol?.stop();
    await this.acks?.stop();
    removeRuntimeDir(this.runtimeDir);
    if (!process.env['NIXFLEET_KEEP_E2E']) rmSync(this.dir, { recursive: true, force: true });
  }
}

async function once(file: string): Promise<{ code: number | null; out: string }> {
  const p = startCli(['agent', '--config', file, '--once', '--json'], `${file}.log`);
  const code = await p.exited;
  return { code, out: p.output() };
}

const ctxOf = (config: AgentConfig, key: SigningKey) => ({
  config,
  state: new StateDir(config.stateDir),
  hostKey: key,
  now: Date.now(),
  log: createLogger(config.host, () => {}),
});

test('enrol on first start through nginx, token replay refused, renewal rotates the key, a revoked host cannot renew, kill -9 mid-request issues once', async () => {
  if (!requireTool('nginx', 'the production serving path')) return;
  if (!requireTool('openssl', 'the issuing CA')) return;
  const s = await Stack.create();
  try {
    await s.start();
    const token = await s.mint('web-1');

    // First start: no certificate, a token -> enrolled, and the cycle runs with the new certificate.
    const a = s.agentConfig('web-1', 'machine-a', token);
    const run = await once(a.file);
    assert.is(run.code, 0, run.out);
    const events = jsonLines(run.out);
    assert.ok(
      events.some((e) => e['event'] === 'certificate-enrolled'),
      run.out,
    );
    assert.ok(
      events.some((e) => e['event'] === 'cycle-done'),
      run.out,
    );
    const cert = new X509Certificate(readFileSync(a.config.certFile));
    assert.equal(cert.subject.split('\n'), ['O=ops', 'OU=agent', 'CN=web-1']);
    assert.ok(cert.checkIssued(new X509Certificate(readFileSync(s.issuing.caCert))));
    const tls = () => ({
      ca: readFileSync(s.pki.caCert, 'utf8'),
      cert: readFileSync(a.config.certFile, 'utf8'),
      key: readFileSync(a.config.keyFile, 'utf8'),
    });
    const own = await req(`${s.url}releases/1/hosts/web-1.json`, { tls: tls() });
    assert.is(own.status, 200, own.body);
    assert.is((await req(`${s.url}releases/1/hosts/web-2.json`, { tls: tls() })).status, 403);

    // The same token on another machine (a copy of the token file): refused, nothing issued.
    const b = s.agentConfig('web-1', 'machine-b', token);
    const replay = await once(b.file);
    assert.is.not(replay.code, 0);
    assert.match(replay.out, /NonceRefused/);
    assert.not.ok(existsSync(b.config.certFile));
    assert.is(s.certsIssued().length, 1);

    // Renewal over mTLS with the current certificate, a new key, no token.
    const before = cert.serialNumber;
    await renewCertificate(ctxOf(a.config, s.hostKeys['web-1']!));
    const renewed = new X509Certificate(readFileSync(a.config.certFile));
    assert.is.not(renewed.serialNumber, before);
    assert.not.ok(renewed.publicKey.equals(cert.publicKey));
    assert.is((await req(`${s.url}releases/1/hosts/web-1.json`, { tls: tls() })).status, 200);
    assert.is((await once(a.file)).code, 0);

    // Revoked by a signed release: the renewal is refused by the endpoint.
    s.publish(['web-1']);
    await s.sync();
    await renewCertificate(ctxOf(a.config, s.hostKeys['web-1']!)).then(
      () => assert.unreachable('a revoked host renewed'),
      (e: EnrolmentFailed) => {
        assert.instance(e, EnrolmentFailed);
        assert.is(e.status, 403);
        assert.match(e.message, /Revoked/);
      },
    );
    assert.is(
      new X509Certificate(readFileSync(a.config.certFile)).serialNumber,
      renewed.serialNumber,
    );

    // kill -9 between the durable reservation and the answer.
    const token2 = await s.mint('web-2');
    await s.enrol!.stop();
    const held = await s.startEnrol({ NIXFLEET_TEST_ENROL_HOLD_AFTER_RESERVE: '1' });
    const c = s.agentConfig('web-2', 'machine-c', token2);

    const attempt = ensureCertificate(ctxOf(c.config, s.hostKeys['web-2']!)).then(
      () => 'enrolled',
      (e: Error) => e.message,
    );
    await until('the reservation is durable', 20_000, () =>
      jsonLines(held.output()).some((e) => e['event'] === 'enrolment-reserved'),
    );
    await held.kill9();
    assert.match(await attempt, /enrolment failed/);
    assert.not.ok(existsSync(c.config.certFile));
    assert.is(s.certsIssued().length, 2, 'nothing issued for the held request yet');
    const restarted = await s.startEnrol();
    assert.is(await ensureCertificate(ctxOf(c.config, s.hostKeys['web-2']!)), 'enrolled');
    const log = jsonLines(restarted.output());
    const recovered = log.find((e) => e['event'] === 'enrolment-recovered');
    const reserved = jsonLines(held.output()).find((e) => e['event'] === 'enrolment-reserved');
    assert.ok(recovered, restarted.output());
    assert.is(recovered!['serial'], reserved!['serial']);
    assert.is(
      new X509Certificate(readFileSync(c.config.certFile)).serialNumber,
      reserved!['serial'],
    );
    assert.is(s.certsIssued().length, 3);
    // The web-2 host runs its cycle with it.
    assert.is((await once(c.file)).code, 0);

    // The CRL still works with the chain: a fleet-CA certificate revoked by `pki revoke` is refused once
    // nginx reloads the rewritten CRL chain; a certificate the issuing CA's name constraints exclude is
    // refused in the handshake.
    const manual = issueHostCert(s.pki.dir, 'web-2');
    const manualTls = {
      ca: readFileSync(s.pki.caCert, 'utf8'),
      cert: readFileSync(manual.certPath, 'utf8'),
      key: readFileSync(manual.keyPath, 'utf8'),
    };
    assert.is((await req(`${s.url}releases/2/hosts/web-2.json`, { tls: manualTls })).status, 200);
    revokeCert(s.pki.dir, manual.certPath);
    writeCrlChain(s.pki.dir, s.issuing.dir);
    await s.nginx!.reload();
    assert.is((await req(`${s.url}releases/2/hosts/web-2.json`, { tls: manualTls })).status, 400);
    const foreign = join(s.dir, 'foreign.crt');
    writeFileSync(
      join(s.dir, 'client.ext'),
      'basicConstraints=critical,CA:FALSE\nextendedKeyUsage=clientAuth\n',
    );
    execFileSync('openssl', [
      'req',
      '-new',
      '-key',
      c.config.keyFile,
      '-subj',
      '/CN=x',
      '-out',
      join(s.dir, 'foreign.csr'),
    ]);
    execFileSync(
      'openssl',
      [
        'x509',
        '-req',
        '-in',
        join(s.dir, 'foreign.csr'),
        '-CA',
        s.issuing.caCert,
        '-CAkey',
        s.issuing.caKey,
        '-set_serial',
        '0x7777',
        '-days',
        '1',
        '-subj',
        '/O=other/OU=agent/CN=web-2',
        '-extfile',
        join(s.dir, 'client.ext'),
        '-out',
        foreign,
      ],
      { stdio: 'ignore' },
    );
    const foreignTls = {
      ca: manualTls.ca,
      cert: readFileSync(foreign, 'utf8'),
      key: readFileSync(c.config.keyFile, 'utf8'),
    };
    assert.is((await req(`${s.url}releases/2/hosts/web-2.json`, { tls: foreignTls })).status, 400);
  } finally {
    await s.close();
  }
});

test.run();
