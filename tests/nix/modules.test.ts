// The NixOS modules stay aligned with the programs they configure. Without nixpkgs they are evaluated
// through tests/nix/module-harness.nix (a stand-in for lib/pkgs with type-checked options); what they
// generate is then fed to the real code: the agent's config file to the agent's config parser, and the
// control plane's ExecStart command lines to the real `nixfleet` CLI.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { requireTool } from '../support/skip.ts';
import { AgentConfig, parseAgentConfig } from '../../agent/config.ts';
import { ActivatorConfig } from '../../agent/activators/index.ts';
import { REPO, nixSandbox, nixString, run, type NixSandbox } from './nix-env.ts';

const BIN = join(REPO, 'bin/nixfleet.js');
const PACKAGE = '/nix/store/00000000000000000000000000000000-nixfleet';

interface EvalOptions {
  /** A Nix expression merged over the JSON settings (for values JSON cannot carry, such as paths). */
  nixSettings?: string;
  hostName?: string;
  /** The module's source text (a mutated copy); default: the file in nix/modules. */
  source?: string;
}

async function evalModule(
  sandbox: NixSandbox,
  module: string,
  service: string,
  settings: Record<string, unknown>,
  attr: string,
  opts: EvalOptions = {},
): Promise<{ code: number; value: unknown; stderr: string }> {
  let modulePath = join(REPO, 'nix/modules', module);
  if (opts.source !== undefined) {
    // Beside the original, so relative imports (../package.nix) still resolve.
    mkdirSync(join(sandbox.dir, 'nix/modules'), { recursive: true });
    modulePath = join(sandbox.dir, 'nix/modules', module);
    writeFileSync(modulePath, opts.source);
  }
  const expr = `(import ${nixString(join(REPO, 'tests/nix/module-harness.nix'))} { module = import ${nixString(modulePath)}; service = ${nixString(service)}; settings = builtins.fromJSON ${nixString(JSON.stringify(settings))} // (${opts.nixSettings ?? '{ }'}); hostName = ${nixString(opts.hostName ?? 'web-01')}; }).${attr}`;
  const r = await run(
    'nix-instantiate',
    ['--eval', '--read-write-mode', '--strict', '--json', '-E', expr],
    { env: sandbox.env, cwd: sandbox.dir },
  );
  return { code: r.code, value: r.code === 0 ? JSON.parse(r.stdout) : undefined, stderr: r.stderr };
}

/** Splits a command line made by lib.escapeShellArgs (every word single-quoted). */
function shellWords(line: string): string[] {
  const words: string[] = [];
  const re = /'((?:[^']|'\\'')*)'|(\S+)/g;
  for (let m = re.exec(line); m; m = re.exec(line))
    words.push(m[1] !== undefined ? m[1].replace(/'\\''/g, "'") : m[2]!);
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

interface SystemdUnit {
  description: string;
  wants: string[];
  after: string[];
  wantedBy: string[];
  path: string[];
  serviceConfig?: Record<string, unknown>;
  timerConfig?: Record<string, unknown>;
}
interface AgentSystem {
  environment: { etc: Record<string, { text: string; mode: string }> };
  systemd: {
    services: Record<string, SystemdUnit>;
    timers: Record<string, SystemdUnit>;
    tmpfiles: { rules: string[] };
  };
}

const NIX_ACTIVATOR_KEYS = [
  'bootIdFile',
  'currentSystem',
  'kind',
  'nixBinDir',
  'profile',
  'rebootCommand',
];

/** The agent.json the module writes, parsed by the agent's own parser. */
function agentJson(system: AgentSystem): {
  raw: Record<string, unknown>;
  parsed: ReturnType<typeof parseAgentConfig>;
} {
  const file = system.environment.etc['nixfleet/agent.json']!;
  assert.is(file.mode, '0600');
  const raw = JSON.parse(file.text) as Record<string, unknown>;
  // The nix activator's schema is written in parallel (agent/activators/nix.ts); until the union
  // knows kind "nix", the rest of the file is parsed with a simulated activator in its place.
  const knowsNix = ActivatorConfig.safeParse(raw.activator).success;
  const parsed = parseAgentConfig(
    knowsNix ? raw : { ...raw, activator: { kind: 'simulated', initialPath: '/nix/store/x' } },
    '/etc/nixfleet/agent.json',
  );
  return { raw, parsed };
}

/** A unit file from the module's unit attrset, the way NixOS renders it (lists become repeated keys). */
function unitFile(
  unit: SystemdUnit,
  kind: 'Service' | 'Timer',
  rewrite: (v: string) => string = (v) => v,
): string {
  const lines = (section: Record<string, unknown>) =>
    Object.entries(section).flatMap(([k, v]) =>
      (Array.isArray(v) ? v : [v]).map(
        (x) => `${k}=${rewrite(typeof x === 'boolean' ? (x ? 'true' : 'false') : String(x))}`,
      ),
    );
  const unitSection = {
    Description: unit.description,
    ...(unit.wants.length ? { Wants: unit.wants.join(' ') } : {}),
    ...(unit.after.length ? { After: unit.after.join(' ') } : {}),
  };
  const body =
    kind === 'Service'
      ? {
          ...(unit.path.length
            ? { Environment: `PATH=${unit.path.map((p) => `${p}/bin`).join(':')}` }
            : {}),
          ...unit.serviceConfig,
        }
      : unit.timerConfig!;
  return [
    `[Unit]`,
    ...lines(unitSection),
    '',
    `[${kind}]`,
    ...lines(body),
    '',
    ...(unit.wantedBy.length ? ['[Install]', `WantedBy=${unit.wantedBy.join(' ')}`, ''] : []),
  ].join('\n');
}

test('agent module: every agent config field is an option; agent.json is what the agent parses, with the nix activator by default', async () => {
  if (!requireTool('nix-instantiate', 'evaluating the NixOS modules')) return;
  const sandbox = nixSandbox();
  try {
    const names = (
      await evalModule(sandbox, 'agent.nix', 'nixfleet-agent', agentSettings, 'optionNames')
    ).value as string[];
    const schemaKeys = Object.keys(AgentConfig.shape);
    for (const k of schemaKeys)
      assert.ok(names.includes(k), `agent config field ${k} has no module option`);
    const moduleOnly = names.filter((n) => !schemaKeys.includes(n)).sort();
    assert.equal(moduleOnly, [
      'enable',
      'interval',
      'metricsTextfileDir',
      'package',
      'randomizedDelay',
    ]);

    const withSettings = { ...agentSettings, retries: 5, quarantineHours: 48, host: 'db-01' };
    const r = await evalModule(sandbox, 'agent.nix', 'nixfleet-agent', withSettings, 'config');
    assert.is(r.code, 0, r.stderr);
    const system = r.value as AgentSystem;
    const { raw, parsed } = agentJson(system);
    assert.is(parsed.host, 'db-01');
    assert.is(parsed.retries, 5);
    assert.is(parsed.quarantineHours, 48);
    assert.is(parsed.requestTimeoutMs, 10_000, 'unset settings take the agent default');
    assert.ok(!('requestTimeoutMs' in raw), 'unset settings are left out of the file');
    assert.ok(!('metricsFile' in raw), 'no metrics file unless asked');
    assert.ok(!('enrolmentTokenFile' in raw), 'no enrolment unless a token file is given');
    const enrolling = agentJson(
      (
        await evalModule(
          sandbox,
          'agent.nix',
          'nixfleet-agent',
          { ...agentSettings, enrolmentTokenFile: '/run/keys/nixfleet-enrolment.token' },
          'config',
        )
      ).value as AgentSystem,
    );
    assert.is(enrolling.parsed.enrolmentTokenFile, '/run/keys/nixfleet-enrolment.token');
    const tf = agentJson(
      (
        await evalModule(
          sandbox,
          'agent.nix',
          'nixfleet-agent',
          { ...agentSettings, metricsTextfileDir: '/var/lib/node-exporter-textfile' },
          'config',
        )
      ).value as AgentSystem,
    );
    assert.is(
      tf.parsed.metricsFile,
      '/var/lib/node-exporter-textfile/nixfleet-agent.prom',
      'the textfile directory names the file the agent writes',
    );

    assert.ok(!('otherControlPlaneUrls' in raw), 'one box: the file is what it always was');
    const boxes = agentJson(
      (
        await evalModule(
          sandbox,
          'agent.nix',
          'nixfleet-agent',
          { ...agentSettings, otherControlPlaneUrls: ['https://cp2.example.org:8443/'] },
          'config',
        )
      ).value as AgentSystem,
    );
    assert.equal(
      boxes.parsed.otherControlPlaneUrls,
      ['https://cp2.example.org:8443/'],
      'further control plane boxes reach the agent in order',
    );

    // The default activator: the built-in nix activator, exactly the keys its schema accepts.
    const activator = raw.activator as Record<string, unknown>;
    assert.equal(Object.keys(activator).sort(), NIX_ACTIVATOR_KEYS);
    assert.is(activator.kind, 'nix');
    assert.is(activator.profile, '/nix/var/nix/profiles/system');
    assert.is(activator.currentSystem, '/run/current-system');
    assert.is(activator.bootIdFile, '/proc/sys/kernel/random/boot_id');
    assert.match(String(activator.nixBinDir), /^\/nix\/store\/[0-9a-z]{32}-nix\/bin$/);
    assert.equal((activator.rebootCommand as string[])[1], 'reboot');
    assert.match(
      (activator.rebootCommand as string[])[0]!,
      /^\/nix\/store\/[0-9a-z]{32}-systemd\/bin\/systemctl$/,
    );
    // An operator can still choose another activator.
    const custom = {
      kind: 'command',
      switch: ['/bin/true'],
      rollback: ['/bin/true'],
      current: ['/bin/echo', '1 /nix/store/x'],
    };
    const overridden = (
      await evalModule(
        sandbox,
        'agent.nix',
        'nixfleet-agent',
        { ...agentSettings, activator: custom },
        'config',
      )
    ).value as AgentSystem;
    assert.equal(agentJson(overridden).raw.activator, custom);
    assert.is(agentJson(overridden).parsed.activator.kind, 'command');

    const service = system.systemd.services['nixfleet-agent']!;
    assert.is(
      service.serviceConfig!.ExecStart,
      `${PACKAGE}/bin/nixfleet agent --config /etc/nixfleet/agent.json --once`,
    );
    assert.is(service.serviceConfig!.StateDirectory, 'nixfleet-agent');
    assert.is(system.systemd.timers['nixfleet-agent']!.timerConfig!.OnUnitActiveSec, '60s');
  } finally {
    sandbox.cleanup();
  }
});

test('agent module: the rendered service and timer pass systemd-analyze verify with no output; a bad interval fails at evaluation', async () => {
  if (!requireTool('nix-instantiate', 'evaluating the NixOS modules')) return;
  if (!requireTool('systemd-analyze', 'unit lint')) return;
  const sandbox = nixSandbox();
  try {
    // An executable where the package's bin/nixfleet would be, so verify checks ExecStart for real.
    const pkg = join(sandbox.dir, 'pkg');
    mkdirSync(join(pkg, 'bin'), { recursive: true });
    writeFileSync(join(pkg, 'bin/nixfleet'), '#!/bin/sh\n');
    chmodSync(join(pkg, 'bin/nixfleet'), 0o755);
    const verify = async (interval: string | undefined) => {
      const system = (
        await evalModule(
          sandbox,
          'agent.nix',
          'nixfleet-agent',
          { ...agentSettings, ...(interval ? { interval } : {}), randomizedDelay: '1min 30s' },
          'config',
        )
      ).value as AgentSystem;
      const units = join(sandbox.dir, 'units');
      mkdirSync(units, { recursive: true });
      const service = system.systemd.services['nixfleet-agent']!;
      writeFileSync(
        join(units, 'nixfleet-agent.service'),
        unitFile(service, 'Service', (v) => v.replaceAll(PACKAGE, pkg)),
      );
      writeFileSync(
        join(units, 'nixfleet-agent.timer'),
        unitFile(system.systemd.timers['nixfleet-agent']!, 'Timer'),
      );
      return run(
        'systemd-analyze',
        [
          'verify',
          '--man=no',
          join(units, 'nixfleet-agent.service'),
          join(units, 'nixfleet-agent.timer'),
        ],
        { timeoutMs: 60_000 },
      );
    };
    for (const interval of [undefined, '5min', '1h 30min', '90']) {
      const r = await verify(interval);
      assert.is(r.stderr.trim() + r.stdout.trim(), '', `interval ${interval}: ${r.stderr}`);
      assert.is(r.code, 0);
    }
    // What systemd does with a bad value: a warning and exit 0, and the timer would never fire.
    const units = join(sandbox.dir, 'units');
    writeFileSync(
      join(units, 'nixfleet-agent.timer'),
      readFileSync(join(units, 'nixfleet-agent.timer'), 'utf8').replace(
        'OnUnitActiveSec=90',
        'OnUnitActiveSec=every minute',
      ),
    );
    const lenient = await run('systemd-analyze', [
      'verify',
      '--man=no',
      join(units, 'nixfleet-agent.timer'),
    ]);
    assert.match(lenient.stderr, /Failed to parse/);
    // So the module refuses it at evaluation.
    for (const interval of ['every minute', '', '5 fortnights']) {
      const bad = await evalModule(
        sandbox,
        'agent.nix',
        'nixfleet-agent',
        { ...agentSettings, interval },
        'config.systemd.timers',
      );
      assert.is.not(bad.code, 0, interval);
      assert.match(
        bad.stderr,
        /A definition for option `services\.nixfleet-agent\.interval' is not of type `string matching the pattern/,
      );
    }
  } finally {
    sandbox.cleanup();
  }
});

test('agent module: host defaults to networking.hostName, and a host name the fleet cannot use fails with an assertion that says what to set', async () => {
  if (!requireTool('nix-instantiate', 'evaluating the NixOS modules')) return;
  const sandbox = nixSandbox();
  try {
    const ok = (
      await evalModule(sandbox, 'agent.nix', 'nixfleet-agent', agentSettings, 'config', {
        hostName: 'web-07',
      })
    ).value as AgentSystem;
    assert.is(agentJson(ok).parsed.host, 'web-07');
    for (const hostName of ['Web_01', '']) {
      const r = await evalModule(sandbox, 'agent.nix', 'nixfleet-agent', agentSettings, 'config', {
        hostName,
      });
      assert.is.not(r.code, 0);
      assert.match(r.stderr, /Failed assertions:/);
      assert.ok(
        r.stderr.includes(
          `services.nixfleet-agent.host is ${JSON.stringify(hostName)} (from networking.hostName), which is not a fleet host name`,
        ),
        r.stderr,
      );
      assert.match(r.stderr, /set services\.nixfleet-agent\.host to this host's name in the fleet/);
      const fixed = await evalModule(
        sandbox,
        'agent.nix',
        'nixfleet-agent',
        { ...agentSettings, host: 'web-01' },
        'config',
        { hostName },
      );
      assert.is(fixed.code, 0, fixed.stderr);
    }
    const explicit = await evalModule(
      sandbox,
      'agent.nix',
      'nixfleet-agent',
      { ...agentSettings, host: 'DB' },
      'config',
    );
    assert.match(
      explicit.stderr,
      /services\.nixfleet-agent\.host is "DB", which is not a fleet host name/,
    );
  } finally {
    sandbox.cleanup();
  }
});

test('agent module: trustRootFile takes a path and copies it into the store; stateDir decides StateDirectory', async () => {
  if (!requireTool('nix-instantiate', 'evaluating the NixOS modules')) return;
  const sandbox = nixSandbox();
  try {
    const root = join(sandbox.dir, 'root.json');
    writeFileSync(root, '{"signed":"a stand-in root"}\n');
    const { caFile: _unused, ...rest } = agentSettings;
    const r = await evalModule(
      sandbox,
      'agent.nix',
      'nixfleet-agent',
      { ...rest, caFile: '/etc/nixfleet/ca.crt', trustRootFile: undefined },
      'config',
      { nixSettings: `{ trustRootFile = ${root}; }` },
    );
    assert.is(r.code, 0, r.stderr);
    const trustRootFile = agentJson(r.value as AgentSystem).parsed.trustRootFile;
    assert.match(trustRootFile, /^\/nix\/store\/[0-9a-z]{32}-root\.json$/);
    assert.is(readFileSync(trustRootFile, 'utf8'), readFileSync(root, 'utf8'));

    const custom = (
      await evalModule(
        sandbox,
        'agent.nix',
        'nixfleet-agent',
        { ...agentSettings, stateDir: '/var/lib/fleet/agent' },
        'config',
      )
    ).value as AgentSystem;
    assert.is(
      custom.systemd.services['nixfleet-agent']!.serviceConfig!.StateDirectory,
      'fleet/agent',
    );
    assert.is(agentJson(custom).parsed.stateDir, '/var/lib/fleet/agent');
    const elsewhere = (
      await evalModule(
        sandbox,
        'agent.nix',
        'nixfleet-agent',
        { ...agentSettings, stateDir: '/srv/nixfleet' },
        'config',
      )
    ).value as AgentSystem;
    assert.not.ok('StateDirectory' in elsewhere.systemd.services['nixfleet-agent']!.serviceConfig!);
    assert.equal(elsewhere.systemd.tmpfiles.rules, ['d /srv/nixfleet 0700 root root -']);
  } finally {
    sandbox.cleanup();
  }
});

test('agent module: option types refuse bad values, unknown and missing options', async () => {
  if (!requireTool('nix-instantiate', 'evaluating the NixOS modules')) return;
  const sandbox = nixSandbox();
  try {
    const bad = await evalModule(
      sandbox,
      'agent.nix',
      'nixfleet-agent',
      { ...agentSettings, controlPlaneUrl: 'http://plain' },
      'config.environment.etc',
    );
    assert.is.not(bad.code, 0);
    assert.match(bad.stderr, /option `services\.nixfleet-agent\.controlPlaneUrl' is not of type/);
    const range = await evalModule(
      sandbox,
      'agent.nix',
      'nixfleet-agent',
      { ...agentSettings, quarantineHours: -1 },
      'config.environment.etc',
    );
    assert.match(range.stderr, /quarantineHours' is not of type `integer between 0 and 8760/);
    const { caFile: _ca, ...missing } = agentSettings;
    const absent = await evalModule(
      sandbox,
      'agent.nix',
      'nixfleet-agent',
      missing,
      'config.environment.etc',
    );
    assert.match(
      absent.stderr,
      /The option `services\.nixfleet-agent\.caFile' is used but not defined/,
    );
    const typo = await evalModule(
      sandbox,
      'agent.nix',
      'nixfleet-agent',
      { ...agentSettings, retry: 3 },
      'config.environment.etc',
    );
    assert.match(typo.stderr, /The option `services\.nixfleet-agent\.retry' does not exist/);
    const disabled = (
      await evalModule(
        sandbox,
        'agent.nix',
        'nixfleet-agent',
        { ...agentSettings, enable: false },
        'config',
      )
    ).value as AgentSystem;
    assert.equal(disabled.systemd.services, {});
    assert.equal(disabled.environment.etc, {});
  } finally {
    sandbox.cleanup();
  }
});

test('the harness refuses what the NixOS module system refuses (and two things systemd would silently ignore)', async () => {
  if (!requireTool('nix-instantiate', 'evaluating the NixOS modules')) return;
  const sandbox = nixSandbox();
  try {
    const original = readFileSync(join(REPO, 'nix/modules/agent.nix'), 'utf8');
    const mistakes: [string, string, string, RegExp][] = [
      [
        'a misspelt service option',
        'restartIfChanged = false;',
        'restartIfChange = false;',
        /The option `systemd\.services\.nixfleet-agent\.restartIfChange' does not exist/,
      ],
      [
        'wantedBy naming no unit',
        'wantedBy = [ "timers.target" ];',
        'wantedBy = [ "timers" ];',
        /option `systemd\.timers\.nixfleet-agent\.wantedBy\.\[0\]' is not of type `string matching the pattern/,
      ],
      [
        'a service Type systemd does not know',
        'Type = "oneshot";',
        'Type = "one-shot";',
        /option `systemd\.services\.nixfleet-agent\.serviceConfig' is not of type .*Type and Restart/,
      ],
      [
        'a misspelt environment.etc attribute',
        '{ text = builtins.toJSON agentConfig;',
        '{ txt = builtins.toJSON agentConfig;',
        /The option `environment\.etc\.nixfleet\/agent\.json\.txt' does not exist/,
      ],
      [
        'after as a string',
        'after = [ "network-online.target" ];',
        'after = "network-online.target";',
        /option `systemd\.services\.nixfleet-agent\.after' is not of type `list of/,
      ],
      [
        'Persistent without OnCalendar',
        'AccuracySec = "1s";',
        'AccuracySec = "1s"; Persistent = true;',
        /timerConfig\.Persistent has no effect without OnCalendar=/,
      ],
      [
        'coreutils twice on PATH',
        'path = [ config.nix.package ];',
        'path = [ config.nix.package pkgs.coreutils ];',
        /path: coreutils is on every NixOS service's PATH already/,
      ],
    ];
    for (const [what, from, to, expected] of mistakes) {
      assert.ok(original.includes(from), `${what}: the module no longer contains ${from}`);
      const r = await evalModule(sandbox, 'agent.nix', 'nixfleet-agent', agentSettings, 'config', {
        source: original.replace(from, to),
      });
      assert.is.not(r.code, 0, what);
      assert.match(r.stderr, expected, `${what}: ${r.stderr}`);
    }
    const unchanged = await evalModule(
      sandbox,
      'agent.nix',
      'nixfleet-agent',
      agentSettings,
      'config',
      { source: original },
    );
    assert.is(unchanged.code, 0, unchanged.stderr);
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
    const root = join(sandbox.dir, 'root.json');
    writeFileSync(root, '{"signed":"a stand-in root"}\n');
    const settings = {
      enable: true,
      package: PACKAGE,
      pkiDir: pki,
      treeDir: tree,
      listen: '127.0.0.1:8443',
      ackSocket: join(runDir, 'ack.sock'),
    };
    // rootFile = ./root.json: a path, copied into the store (a cache-fed host has no source checkout).
    const config = (
      await evalModule(sandbox, 'control-plane.nix', 'nixfleet-control-plane', settings, 'config', {
        nixSettings: `{ rootFile = ${root}; }`,
      })
    ).value as {
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
    assert.match(
      config.services.nginx.appendHttpConfig,
      /include \/run\/nixfleet-control-plane\/nginx\.conf;/,
    );
    nginxArgs[outAt + 1] = join(runDir, 'nginx.conf');
    const rendered = await run('node', [BIN, ...nginxArgs], { timeoutMs: 120_000 });
    assert.is(rendered.code, 0, rendered.stderr);
    const snippet = readFileSync(join(runDir, 'nginx.conf'), 'utf8');
    assert.ok(
      snippet.includes(`server unix:${join(runDir, 'ack.sock')};`),
      "the ack upstream is the module's socket",
    );
    assert.match(snippet, /listen 127\.0\.0\.1:8443 ssl/);
    // TLS resumption: the shared session cache by default, named after the CA and CRL files.
    assert.match(snippet, /ssl_session_cache shared:nixfleet_[0-9a-f]{12}:128m;/);
    assert.match(snippet, /ssl_session_tickets off;/);

    // A CA or CRL change renders again and reloads nginx (a bare reload would keep the cache and a newly
    // revoked certificate's session): a path unit on both files starts the same rendering + --nginx-pid.
    const paths = (
      config as unknown as {
        systemd: { paths: Record<string, { pathConfig: { PathChanged: string[]; Unit: string } }> };
      }
    ).systemd.paths;
    const crlWatch = paths['nixfleet-cp-nginx-crl']!.pathConfig;
    assert.equal(crlWatch.PathChanged.sort(), [join(pki, 'ca.crt'), join(pki, 'crl.pem')]);
    assert.is(crlWatch.Unit, 'nixfleet-cp-nginx-reload.service');
    const reloadArgs = argvOf('nixfleet-cp-nginx-reload');
    assert.equal(reloadArgs, [
      ...argvOf('nixfleet-cp-nginx-config'),
      '--nginx-pid',
      '/run/nginx/nginx.pid',
    ]);
    // Under the real CLI (--out and --nginx-pid redirected to a pid file naming no nginx): it renders,
    // then fails only at the signal.
    reloadArgs[reloadArgs.indexOf('--out') + 1] = join(runDir, 'nginx-again.conf');
    writeFileSync(join(runDir, 'no-nginx.pid'), 'not a pid\n');
    reloadArgs[reloadArgs.indexOf('--nginx-pid') + 1] = join(runDir, 'no-nginx.pid');
    const again = await run('node', [BIN, ...reloadArgs], { timeoutMs: 120_000 });
    assert.match(again.stderr, /no-nginx\.pid: not a pid/);
    assert.is(
      readFileSync(join(runDir, 'nginx-again.conf'), 'utf8'),
      snippet,
      'the same rendering',
    );
    // tlsSessionCache: "off" (tickets) or a size; anything else is refused by the option's type.
    const withTickets = await evalModule(
      sandbox,
      'control-plane.nix',
      'nixfleet-control-plane',
      { ...settings, tlsSessionCache: 'off' },
      'config.systemd.services.nixfleet-cp-nginx-config.serviceConfig.ExecStart',
    );
    assert.is(withTickets.code, 0, withTickets.stderr);
    const ticketWords = shellWords(String(withTickets.value));
    assert.is(ticketWords[ticketWords.indexOf('--tls-session-cache') + 1], 'off');
    const badSize = await evalModule(
      sandbox,
      'control-plane.nix',
      'nixfleet-control-plane',
      { ...settings, tlsSessionCache: '10 MB' },
      'config.systemd.services',
    );
    assert.is.not(badSize.code, 0);
    assert.match(badSize.stderr, /tlsSessionCache/);

    // The ack endpoint starts on the socket (stopped by PID once it reports listening).
    const ackArgs = argvOf('nixfleet-ack-endpoint');
    const child = spawn('node', [BIN, ...ackArgs], { stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      const line = await new Promise<string>((resolve, reject) => {
        let out = '';
        let err = '';
        const timer = setTimeout(
          () => reject(new Error(`no listening line; stderr: ${err}`)),
          60_000,
        );
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

    // site watch (with notifications) parses its flags under the real CLI; without rootFile it is refused.
    const watchEval = await evalModule(
      sandbox,
      'control-plane.nix',
      'nixfleet-control-plane',
      settings,
      'config',
      {
        nixSettings: `{ rootFile = ${root}; siteWatch = { enable = true; stateDir = "${sandbox.dir}/sw"; outDir = "${sandbox.dir}/sw/dashboard"; notifyCommand = [ "/bin/echo" "a b" ]; }; }`,
      },
    );
    assert.is(watchEval.code, 0, watchEval.stderr);
    const watchConfig = watchEval.value as {
      systemd: { services: Record<string, { serviceConfig: { ExecStart: string } }> };
    };
    const watchArgs = shellWords(
      watchConfig.systemd.services['nixfleet-site-watch']!.serviceConfig.ExecStart,
    ).slice(1);
    assert.equal(watchArgs.slice(0, 2), ['site', 'watch']);
    assert.equal(
      watchArgs.slice(-3),
      ['--notify-command', '/bin/echo', 'a b'],
      'the command is the last option, argv kept whole',
    );
    const help = await run('node', [BIN, ...watchArgs.slice(0, 2), '--help'], {
      timeoutMs: 60_000,
    });
    assert.match(help.stdout, /--notify-command/);
    const watchRun = await run(
      'node',
      [BIN, ...watchArgs.map((a) => (a === tree ? join(sandbox.dir, 'no-tree') : a))],
      { timeoutMs: 60_000 },
    );
    assert.not.match(
      watchRun.stderr + watchRun.stdout,
      /Unknown option|unexpected argument|are required|Usage error/i,
    );
    // The view server: a user service for the operators named, its argv one `views serve` parses.
    const viewsEval = await evalModule(
      sandbox,
      'control-plane.nix',
      'nixfleet-control-plane',
      settings,
      'config.systemd.user.services',
      { nixSettings: '{ viewServer = { users = [ "alice" "bob" ]; refreshSeconds = 7; }; }' },
    );
    assert.is(viewsEval.code, 0, viewsEval.stderr);
    const views = (
      viewsEval.value as Record<
        string,
        {
          unitConfig: { ConditionUser: string[] };
          serviceConfig: { ExecStart: string; Restart: string };
        }
      >
    )['nixfleet-views']!;
    assert.equal(views.unitConfig.ConditionUser, ['|alice', '|bob']);
    // A server whose build was replaced on disk exits 75 to be started again as the new build
    // (tests/cli/view-server-systemd.test.ts runs that under a real systemd).
    assert.is(views.serviceConfig.Restart, 'on-failure');
    // No operator named: no user service at all (mkIf defines nothing, as in NixOS).
    const noViews = await evalModule(
      sandbox,
      'control-plane.nix',
      'nixfleet-control-plane',
      settings,
      'config.systemd.user.services',
    );
    assert.is(noViews.code, 0, noViews.stderr);
    assert.equal(noViews.value, {});
    const viewsArgs = shellWords(views.serviceConfig.ExecStart).slice(1);
    assert.equal(viewsArgs, ['views', 'serve', '--tree', tree, '--refresh', '7']);
    const viewsRun = await run(
      'node',
      [BIN, ...viewsArgs.map((a) => (a === tree ? join(sandbox.dir, 'no-tree') : a))],
      { timeoutMs: 60_000 },
    );
    assert.is(viewsRun.code, 2);
    assert.match(viewsRun.stderr, /--tree .*no-tree: no such file or directory/);
    const noRoot = await evalModule(
      sandbox,
      'control-plane.nix',
      'nixfleet-control-plane',
      settings,
      'config.systemd.services',
      { nixSettings: '{ siteWatch.enable = true; }' },
    );
    assert.is.not(noRoot.code, 0);
    assert.match(noRoot.stderr, /siteWatch needs rootFile/);

    // cp sync parses its flags (refusing only because nothing was pushed yet).
    const syncArgs = argvOf('nixfleet-cp-sync');
    assert.equal(syncArgs.slice(0, 2), ['cp', 'sync']);
    const rootArg = syncArgs[syncArgs.indexOf('--root') + 1]!;
    assert.match(rootArg, /^\/nix\/store\/[0-9a-z]{32}-root\.json$/);
    assert.is(readFileSync(rootArg, 'utf8'), readFileSync(root, 'utf8'));
    const sync = await run('node', [BIN, ...syncArgs], { timeoutMs: 120_000 });
    assert.is.not(sync.code, 0);
    assert.not.match(sync.stderr + sync.stdout, /Unknown option|unexpected argument|are required/i);
  } finally {
    sandbox.cleanup();
  }
});

test.run();
