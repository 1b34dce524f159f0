// mkHost shapes one host entry: the target from a string or a NixOS configuration's toplevel (exactly
// one), no machineId when it is null; mkFleet takes a derivation as a target too.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { requireTool } from '../support/skip.ts';
import { evalError, evalJson, nixSandbox } from './nix-env.ts';

const system = `derivation { name = "nixos-system-web-01"; system = "x86_64-linux"; builder = "/bin/sh"; }`;
const base = `system = "x86_64-linux"; channel = "stable"; hostKey = "0yh9PAH7mdc5NygOrnKhPUNd30x9v9j9peWUA52idmk=";`;
const fleet = (host: string) => `lib.mkFleet {
  fleet = "t";
  hosts.web-01 = ${host};
  channels.stable = { policy = "p"; freshnessSeconds = 3600; signingIntervalSeconds = 900; confirmDeadlineSeconds = 300; heartbeatSeconds = 60; offlineWindowSeconds = 900; };
  policies.p = { strategy = "all-at-once"; waves = [ ]; };
}`;

test('mkHost: target or nixosConfiguration, and mkFleet accepts the result', async () => {
  if (!requireTool('nix-instantiate', 'mkHost')) return;
  const sandbox = nixSandbox();
  try {
    const [fromString, fromConfig, out] = (await evalJson(
      sandbox,
      `[
      (lib.mkHost { ${base} target = "/nix/store/hlp5xp9p3f0j92p7ghg7nd2qgaf7p53k-nixos-system-web-01"; })
      (lib.mkHost { ${base} tags = [ "web" ]; machineId = "0f4b2c7e9a1d4e6f8b3c5a7d9e1f2a4b"; nixosConfiguration = { config.system.build.toplevel = ${system}; }; })
      (${fleet(`{ ${base} target = ${system}; }`)})
    ]`,
    )) as [
      Record<string, unknown>,
      Record<string, unknown>,
      { hosts: Record<string, { target: string; tags: string[] }> },
    ];
    assert.equal(fromString, {
      system: 'x86_64-linux',
      channel: 'stable',
      hostKey: '0yh9PAH7mdc5NygOrnKhPUNd30x9v9j9peWUA52idmk=',
      tags: [],
      target: '/nix/store/hlp5xp9p3f0j92p7ghg7nd2qgaf7p53k-nixos-system-web-01',
    });
    assert.not.ok('machineId' in fromString);
    assert.match(String(fromConfig.target), /^\/nix\/store\/[0-9a-z]{32}-nixos-system-web-01$/);
    assert.is(fromConfig.machineId, '0f4b2c7e9a1d4e6f8b3c5a7d9e1f2a4b');
    assert.is(
      out.hosts['web-01']!.target,
      fromConfig.target,
      'a derivation target stands for its output path',
    );
    assert.equal(out.hosts['web-01']!.tags, []);

    assert.match(
      await evalError(sandbox, `lib.mkHost { ${base} }`),
      /mkHost: give target \(a \/nix\/store path\) or nixosConfiguration/,
    );
    assert.match(
      await evalError(
        sandbox,
        `lib.mkHost { ${base} target = "/nix/store/x"; nixosConfiguration = { }; }`,
      ),
      /not both/,
    );
    assert.match(
      await evalError(sandbox, `lib.mkHost { ${base} nixosConfiguration = { }; }`),
      /no config\.system\.build\.toplevel/,
    );
    assert.match(
      await evalError(sandbox, `lib.mkHost { ${base} target = "/nix/store/x"; chanel = "x"; }`),
      /unexpected argument 'chanel'/,
    );
    assert.match(
      await evalError(sandbox, fleet(`lib.mkHost { ${base} target = "/tmp/not-a-store-path"; }`)),
      /hosts\.web-01\.target: must be a Nix store path/,
    );
  } finally {
    sandbox.cleanup();
  }
});

test('mkHost: system and target derived from a nixosConfiguration (nixpkgs.hostPlatform or nixpkgs.system)', async () => {
  if (!requireTool('nix-instantiate', 'mkHost')) return;
  const sandbox = nixSandbox();
  try {
    const noSystem = `channel = "stable"; hostKey = "0yh9PAH7mdc5NygOrnKhPUNd30x9v9j9peWUA52idmk=";`;
    const arm = `derivation { name = "nixos-system-pi"; system = "aarch64-linux"; builder = "/bin/sh"; }`;
    const [modern, legacy, agreeing, outPath] = (await evalJson(
      sandbox,
      `[
      (lib.mkHost { ${noSystem} nixosConfiguration = { config.nixpkgs.hostPlatform.system = "aarch64-linux"; config.system.build.toplevel = ${arm}; }; })
      (lib.mkHost { ${noSystem} nixosConfiguration = { config.nixpkgs.system = "x86_64-linux"; config.system.build.toplevel = ${system}; }; })
      (lib.mkHost { ${noSystem} system = "aarch64-linux"; nixosConfiguration = { config.nixpkgs.hostPlatform = { system = "aarch64-linux"; isLinux = true; }; config.system.build.toplevel = ${arm}; }; })
      (${arm}).outPath
    ]`,
    )) as [Record<string, unknown>, Record<string, unknown>, Record<string, unknown>, string];
    assert.is(modern.system, 'aarch64-linux');
    assert.is(modern.target, outPath, 'the target is config.system.build.toplevel.outPath');
    assert.is(legacy.system, 'x86_64-linux');
    assert.is(agreeing.system, 'aarch64-linux');
    assert.match(
      await evalError(
        sandbox,
        `lib.mkHost { ${noSystem} system = "x86_64-linux"; nixosConfiguration = { config.nixpkgs.hostPlatform.system = "aarch64-linux"; config.system.build.toplevel = ${arm}; }; }`,
      ),
      /mkHost: system is "x86_64-linux" but the nixosConfiguration is built for "aarch64-linux"/,
    );
    assert.match(
      await evalError(sandbox, `lib.mkHost { ${noSystem} target = "/nix/store/x"; }`),
      /mkHost: give system \(e\.g\. "x86_64-linux"\) or a nixosConfiguration/,
    );
  } finally {
    sandbox.cleanup();
  }
});

test('mkHost + mkFleet: static controls read the nixosConfiguration (only the named options; undefined or failing ones are "not set")', async () => {
  if (!requireTool('nix-instantiate', 'mkHost')) return;
  const sandbox = nixSandbox();
  const compliant = (mode: string, pw: string) => `lib.mkFleet {
    fleet = "t";
    hosts.web-01 = lib.mkHost {
      system = "x86_64-linux"; channel = "stable"; hostKey = "0yh9PAH7mdc5NygOrnKhPUNd30x9v9j9peWUA52idmk=";
      nixosConfiguration.config = {
        system.build.toplevel = ${system};
        services.openssh.settings.PasswordAuthentication = ${pw};
        security.auditd.enable = throw "option security.auditd.enable is used but not defined";
        unrelated = throw "an option no control names is never evaluated";
      };
    };
    channels.stable = { policy = "p"; compliance = { frameworks = [ "base" ]; mode = "${mode}"; }; };
    policies.p = { strategy = "all-at-once"; waves = [ ]; };
    complianceFrameworks.base = { description = "baseline"; controls = {
      no-password = { kind = "static"; description = "no password logins"; fact = "services.openssh.settings.PasswordAuthentication"; expect.equals = false; };
      auditd = { kind = "static"; description = "auditd on"; fact = "security.auditd.enable"; expect.present = true; };
      absent = { kind = "static"; description = "an option that does not exist"; fact = "services.nope.enable"; expect.equals = true; };
    }; };
  }`;
  try {
    const out = (await evalJson(sandbox, compliant('permissive', 'false'))) as {
      hosts: Record<string, { facts: Record<string, unknown> }>;
    };
    assert.equal(out.hosts['web-01']!.facts, {
      'services.openssh.settings.PasswordAuthentication': false,
    });
    const refused = await evalError(sandbox, compliant('enforce', 'true'));
    assert.match(
      refused,
      'hosts.web-01: fails compliance control base/no-password of channel stable (enforce): services.openssh.settings.PasswordAuthentication = true (expected false)',
    );
    assert.match(
      refused,
      'hosts.web-01: fails compliance control base/auditd of channel stable (enforce): security.auditd.enable is not set (expected it to be set)',
    );
    assert.match(
      refused,
      'base/absent of channel stable (enforce): services.nope.enable is not set',
    );
    assert.match(
      await evalError(
        sandbox,
        `lib.mkHost { ${base} facts = { }; nixosConfiguration.config.system.build.toplevel = ${system}; }`,
      ),
      /give either facts or nixosConfiguration/,
    );
  } finally {
    sandbox.cleanup();
  }
});

test.run();
