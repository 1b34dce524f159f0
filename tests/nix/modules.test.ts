// The NixOS modules stay aligned with the programs they configure. Without nixpkgs they are evaluated
// through tests/nix/module-harness.nix (a stand-in for lib/pkgs with type-checked options); what they
// generate is then fed to the real code: the agent's config file to the agent's config parser, and the
// control plane's ExecStart command lines to the real `nixfleet` CLI.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { requireTool } from '../support/skip.ts';
import { AgentConfig, parseAgentConfig } from '../../agent/config.ts';
import { REPO, nixSandbox, nixString, run, type NixSandbox } from './nix-env.ts';

const BIN = join(REPO, 'bin/nixfleet.js');
const PACKAGE = '/nix/store/00000000000000000000000000000000-nixfleet';

async function evalModule(sandbox: NixSandbox, module: string, service: string, settings: Record<string, unknown>, attr: string): Promise<{ code: number; value: unknown; stderr: string }> {
  const expr = `(import ${nixString(join(REPO, 'tests/nix/module-harness.nix'))} { module = import ${nixString(join(REPO, 'nix/modules', module))}; service = ${nixString(service)}; settings = builtins.fromJSON ${nixString(JSON.stringify(settings))}; }).${attr}`;
  const r = await run('nix-instantiate', ['--eval', '--read-write-mode', '--strict', '--json', '-E', expr], { env: sandbox.env, cwd: sandbox.dir });
  return { code: r.code, value: r.code === 0 ? JSON.parse(r.stdout) : undefined, stderr: r.stderr };
}

/** Splits a command line made by lib.escapeShellArgs (every word single-quoted). */
function shellWords(line: string): string[] {
  const words: string[] = [];
  const re = /'((?:[^']|'\\'')*)'|(\S+)/g;
  for (let m = re.exec(line); m; m = re.exec(line)) words.push(m[1] !== undefined ? m[1].replace(/'\\''/g, "'") : m[2]!);
  return words;
}

const agentSettings = {
  enable: true,
  package: PACKAGE,
  controlPlaneUrl: 'https://cp.example.org:8443/',
  caFile: '/etc/nixfleet/ca.crt',
  certFile: '/etc/nixfleet/host.crt',
  keyFile: '/etc/nixfleet/host.key',
  hostKeyFile: '/etc/nixfleet/host-key.json',
  trustRootFile: '/etc/nixfleet/root.json',
};

test('agent module: every agent config field is an option, and the generated agent.json is what the agent parses', async () => {
  if (!requireTool('nix-instantiate', 'evaluating the NixOS modules')) return;
  const sandbox = nixSandbox();
  try {
    const names = (await evalModule(sandbox, 'agent.nix', 'nixfleet-agent', agentSettings, 'optionNames')).value as string[];
    const schemaKeys = Object.keys(AgentConfig.shape);
    for (const k of schemaKeys) assert.ok(names.includes(k), `agent config field ${k} has no module option`);
    const moduleOnly = names.filter((n) => !schemaKeys.includes(n)).sort();
    assert.equal(moduleOnly, ['enable', 'interval', 'package', 'randomizedDelay']);

    const withSettings = { ...agentSettings, retries: 5, quarantineHours: 48, host: 'db-01' };
    const config = (await evalModule(sandbox, 'agent.nix', 'nixfleet-agent', withSettings, 'config')).value as {
      environment: { etc: Record<string, { text: string; mode: string }> };
      systemd: { services: Record<string, { serviceConfig: Record<string, unknown> }>; timers: Record<string, { timerConfig: Record<string, unknown> }> };
    };
    const file = config.environment.etc['nixfleet/agent.json']!;
    assert.is(file.mode, '0600');
    const parsed = parseAgentConfig(JSON.parse(file.text), '/etc/nixfleet/agent.json');
    assert.is(parsed.host, 'db-01');
    assert.is(parsed.retries, 5);
    assert.is(parsed.quarantineHours, 48);
    assert.is(parsed.requestTimeoutMs, 10_000, 'unset settings take the agent default');
    assert.ok(!('requestTimeoutMs' in JSON.parse(file.text)), 'unset settings are left out of the file');
    assert.is(parsed.activator.kind, 'command');
    assert.is(config.systemd.services['nixfleet-agent']!.serviceConfig.ExecStart, `${PACKAGE}/bin/nixfleet agent --config /etc/nixfleet/agent.json --once`);
    assert.is(config.systemd.timers['nixfleet-agent']!.timerConfig.OnUnitActiveSec, '60s');

    // The default (NixOS) activator's scripts are real files: they must at least be valid sh.
    if (parsed.activator.kind === 'command') {
      for (const argv of [parsed.activator.switch, parsed.activator.rollback, parsed.activator.current, parsed.activator.inhibitors ?? []]) {
        const script = argv[0]!;
        assert.ok(existsSync(script), script);
        const syntax = await run('sh', ['-n', script]);
        assert.is(syntax.code, 0, `${script}: ${syntax.stderr}`);
      }
      assert.match(readFileSync(parsed.activator.rollback[0]!, 'utf8'), /--switch-generation "\$NIXFLEET_GENERATION"/);
    }
  } finally {
    sandbox.cleanup();
  }
});

test('agent module: option types refuse bad values and missing required options', async () => {
  if (!requireTool('nix-instantiate', 'evaluating the NixOS modules')) return;
  const sandbox = nixSandbox();
  try {
    const bad = await evalModule(sandbox, 'agent.nix', 'nixfleet-agent', { ...agentSettings, controlPlaneUrl: 'http://plain' }, 'config.environment.etc');
    assert.is.not(bad.code, 0);
    assert.match(bad.stderr, /services\.nixfleet-agent\.controlPlaneUrl/);
    const range = await evalModule(sandbox, 'agent.nix', 'nixfleet-agent', { ...agentSettings, quarantineHours: -1 }, 'config.environment.etc');
    assert.match(range.stderr, /quarantineHours/);
    const { caFile: _ca, ...missing } = agentSettings;
    const absent = await evalModule(sandbox, 'agent.nix', 'nixfleet-agent', missing, 'config.environment.etc');
    assert.match(absent.stderr, /services\.nixfleet-agent\.caFile is used but not defined/);
    const typo = await evalModule(sandbox, 'agent.nix', 'nixfleet-agent', { ...agentSettings, retry: 3 }, 'config.environment.etc');
    assert.match(typo.stderr, /unknown option services\.nixfleet-agent\.retry/);
    const disabled = await evalModule(sandbox, 'agent.nix', 'nixfleet-agent', { ...agentSettings, enable: false }, 'config');
    assert.equal(disabled.value, {});
  } finally {
    sandbox.cleanup();
  }
});

test('control-plane module: its nginx-config and ack endpoint command lines run under the real nixfleet CLI', async () => {
  if (!requireTool('nix-instantiate', 'evaluating the NixOS modules')) return;
  if (!requireTool('openssl', 'a PKI for nixfleet nginx-config')) return;
  const sandbox = nixSandbox();
  try {
    const pki = join(sandbox.dir, 'pki');
    const tree = join(sandbox.dir, 'tree');
    const runDir = join(sandbox.dir, 'run');
    mkdirSync(tree);
    mkdirSync(runDir);
    const init = await run('node', [BIN, 'pki', 'init', '--out', pki], { timeoutMs: 120_000 });
    assert.is(init.code, 0, init.stderr + init.stdout);
    const settings = { enable: true, package: PACKAGE, pkiDir: pki, treeDir: tree, listen: '127.0.0.1:8443', ackSocket: join(runDir, 'ack.sock'), rootFile: join(sandbox.dir, 'root.json') };
    const config = (await evalModule(sandbox, 'control-plane.nix', 'nixfleet-control-plane', settings, 'config')).value as {
      systemd: { services: Record<string, { serviceConfig: { ExecStart: string } }> };
      services: { nginx: { appendHttpConfig: string } };
    };
    const services = config.systemd.services;
    const argvOf = (unit: string) => {
      const words = shellWords(services[unit]!.serviceConfig.ExecStart);
      assert.is(words[0], `${PACKAGE}/bin/nixfleet`, unit);
      return words.slice(1);
    };

    // nginx-config writes the snippet nginx includes (the module's path is under /run: redirect --out).
    const nginxArgs = argvOf('nixfleet-cp-nginx-config');
    const outAt = nginxArgs.indexOf('--out');
    assert.is(nginxArgs[outAt + 1], '/run/nixfleet-control-plane/nginx.conf');
    assert.match(config.services.nginx.appendHttpConfig, /include \/run\/nixfleet-control-plane\/nginx\.conf;/);
    nginxArgs[outAt + 1] = join(runDir, 'nginx.conf');
    const rendered = await run('node', [BIN, ...nginxArgs], { timeoutMs: 120_000 });
    assert.is(rendered.code, 0, rendered.stderr);
    const snippet = readFileSync(join(runDir, 'nginx.conf'), 'utf8');
    assert.ok(snippet.includes(`server unix:${join(runDir, 'ack.sock')};`), 'the ack upstream is the module\'s socket');
    assert.match(snippet, /listen 127\.0\.0\.1:8443 ssl/);

    // The ack endpoint starts on the socket (stopped by PID once it reports listening).
    const ackArgs = argvOf('nixfleet-ack-endpoint');
    const child = spawn('node', [BIN, ...ackArgs], { stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      const line = await new Promise<string>((resolve, reject) => {
        let out = '';
        let err = '';
        const timer = setTimeout(() => reject(new Error(`no listening line; stderr: ${err}`)), 60_000);
        child.stdout.on('data', (d: Buffer) => {
          out += d.toString();
          if (out.includes('\n')) {
            clearTimeout(timer);
            resolve(out.split('\n')[0]!);
          }
        });
        child.stderr.on('data', (d: Buffer) => (err += d.toString()));
        child.on('exit', (code) => {
          clearTimeout(timer);
          reject(new Error(`ack endpoint exited with ${code}: ${err}`));
        });
      });
      assert.is((JSON.parse(line) as { url: string }).url, `unix:${join(runDir, 'ack.sock')}`);
    } finally {
      if (child.exitCode === null) {
        const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
        await exited;
        clearTimeout(timer);
      }
    }

    // cp sync parses its flags (refusing only because nothing was pushed yet).
    const syncArgs = argvOf('nixfleet-cp-sync');
    assert.equal(syncArgs.slice(0, 2), ['cp', 'sync']);
    const sync = await run('node', [BIN, ...syncArgs], { timeoutMs: 120_000 });
    assert.is.not(sync.code, 0);
    assert.not.match(sync.stderr + sync.stdout, /Unknown option|unexpected argument|are required/i);
  } finally {
    sandbox.cleanup();
  }
});

test.run();
