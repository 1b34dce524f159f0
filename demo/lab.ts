// A complete local fleet on one machine: org root key, CI release key, trust root, fleet PKI (openssl),
// a fleet, the CI publisher, the embedded control plane, and one agent config + state directory per
// host: what `nixfleet demo` runs. The agent's integration / end-to-end tests and its benchmark build on
// it (tests/support/lab.ts adds what only they need: timestamp refresh, operator controls, clean-up), so
// all of them exercise the same real components over loopback mTLS.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  initPki,
  issueHostCert,
  type PkiPaths,
  type IssuedCert,
  startControlPlane,
  type RunningServer,
} from '../control-plane/index.ts';
import {
  writeFileAtomic,
  envelopeBytes,
  b64,
  newSigningKey,
  writePrivateKey,
  type SigningKey,
  isoTime,
  createRoot,
  signRoot,
  type SignedRoot,
} from '../protocol/index.ts';
import { publishRelease, type PublishResult, type FleetInput } from '../publisher/index.ts';
import { AgentConfig, type ActivatorConfig } from '../agent/index.ts';

export interface LabHost {
  name: string;
  key: SigningKey;
  keyFile: string;
  cert: IssuedCert;
  stateDir: string;
  configFile: string;
}

export interface LabOptions {
  dir: string;
  fleetName: string;
  /** Called with each host's public key (base64) so the caller can build the fleet. */
  hosts: string[];
  /** Agent config overrides (timeouts, probe interval...). */
  agent?: Partial<Omit<AgentConfig, 'activator'>>;
  /** Per-host activator; default: simulated, starting on `initialPath`. */
  activator?: (host: string) => ActivatorConfig;
  initialPath: string;
  /** Nix binary-cache public keys (`name:base64`) in root v1; default none. */
  cacheKeys?: string[];
  log?: (event: Record<string, unknown>) => void;
  /** Names in the control plane's server certificate (default 127.0.0.1 and localhost). */
  serverNames?: string[];
}

export class Lab {
  readonly trustDir: string;
  readonly treeDir: string;
  readonly pkiDir: string;
  readonly hostsDir: string;
  readonly rootFile: string;
  readonly rootKey = newSigningKey('org-root');
  readonly releaseKey = newSigningKey('ci-release');
  /** The operator role of the trust root: signs controls only (nixfleet control ...). */
  readonly operatorKey = newSigningKey('operator');
  readonly root: SignedRoot;
  readonly pki: PkiPaths;
  readonly hosts = new Map<string, LabHost>();
  cp: RunningServer | null = null;
  private cpPort = 0;

  constructor(readonly opts: LabOptions) {
    this.trustDir = join(opts.dir, 'trust');
    this.treeDir = join(opts.dir, 'tree');
    this.pkiDir = join(opts.dir, 'pki');
    this.hostsDir = join(opts.dir, 'hosts');
    mkdirSync(join(this.trustDir, 'root'), { recursive: true });
    mkdirSync(this.hostsDir, { recursive: true });
    const now = Date.now();
    this.root = signRoot(
      createRoot({
        fleet: opts.fleetName,
        version: 1,
        issuedAt: isoTime(now - 3600_000),
        expires: isoTime(now + 365 * 86400_000),
        rootKeys: [this.rootKey],
        rootThreshold: 1,
        releaseKeys: [
          {
            key: this.releaseKey,
            validFrom: isoTime(now - 86400_000),
            validUntil: isoTime(now + 365 * 86400_000),
          },
        ],
        releaseThreshold: 1,
        cacheKeys: opts.cacheKeys ?? [],
        operatorKeys: [
          {
            key: this.operatorKey,
            validFrom: isoTime(now - 86400_000),
            validUntil: isoTime(now + 365 * 86400_000),
          },
        ],
        operatorThreshold: 1,
      }),
      [this.rootKey],
    );
    this.rootFile = join(this.trustDir, 'root', '1.json');
    writeFileAtomic(this.rootFile, envelopeBytes(this.root));
    writePrivateKey(join(this.trustDir, 'release.key'), this.releaseKey);
    writePrivateKey(join(this.trustDir, 'operator.key'), this.operatorKey);
    this.pki = initPki(this.pkiDir, {
      algorithm: 'ec',
      fleet: opts.fleetName,
      days: 30,
      serverNames: opts.serverNames ?? ['127.0.0.1', 'localhost'],
    });
    for (const name of opts.hosts) {
      const dir = join(this.hostsDir, name);
      mkdirSync(dir, { recursive: true });
      const key = newSigningKey(name);
      const keyFile = join(dir, 'host.key');
      writePrivateKey(keyFile, key);
      this.hosts.set(name, {
        name,
        key,
        keyFile,
        cert: issueHostCert(this.pkiDir, name),
        stateDir: join(dir, 'state'),
        configFile: join(dir, 'agent.json'),
      });
    }
  }

  hostKeyB64(name: string): string {
    return b64(this.host(name).key.publicKey);
  }

  host(name: string): LabHost {
    const h = this.hosts.get(name);
    if (!h) throw new Error(`no lab host ${name}`);
    return h;
  }

  publish(fleet: FleetInput, now = Date.now()): PublishResult {
    return publishRelease({
      cacheCheck: 'skip',
      treeDir: this.treeDir,
      fleet,
      releaseKeys: [this.releaseKey],
      trustDir: this.trustDir,
      now,
    });
  }

  async startControlPlane(port = this.cpPort): Promise<RunningServer> {
    const { readFileSync } = await import('node:fs');
    this.cp = await startControlPlane({
      treeDir: this.treeDir,
      tls: {
        ca: readFileSync(this.pki.caCert),
        cert: readFileSync(this.pki.serverCert),
        key: readFileSync(this.pki.serverKey),
      },
      host: '127.0.0.1',
      port,
      ack: { debounceMs: 10, rateLimit: false },
      reloadIntervalMs: 100,
      ...(this.opts.log ? { log: this.opts.log } : {}),
    });
    this.cpPort = this.cp.port;
    return this.cp;
  }

  async stopControlPlane(): Promise<void> {
    await this.cp?.close();
    this.cp = null;
  }

  /** Writes (and returns) the host's agent config; the control plane must have been started once. */
  agentConfig(name: string, overrides: Partial<AgentConfig> = {}): AgentConfig {
    const h = this.host(name);
    const json = {
      controlPlaneUrl: `https://127.0.0.1:${this.cpPort}/`,
      caFile: this.pki.caCert,
      certFile: h.cert.certPath,
      keyFile: h.cert.keyPath,
      host: name,
      hostKeyFile: h.keyFile,
      trustRootFile: this.rootFile,
      stateDir: h.stateDir,
      activator: this.opts.activator?.(name) ?? {
        kind: 'simulated',
        initialPath: this.opts.initialPath,
      },
      requestTimeoutMs: 2000,
      retries: 1,
      probeIntervalMs: 200,
      ...this.opts.agent,
      ...overrides,
    };
    const config = AgentConfig.parse(json);
    writeFileSync(h.configFile, JSON.stringify(config, null, 2) + '\n');
    return config;
  }
}
