// Runs inside a test host's mount namespace (tests/support/nix-hosts.ts): performs NixActivator
// operations (or one agent run) and prints one JSON array of results on the last stdout line.
// argv[2]: {"config": NixActivatorConfig, "stateDir": the activator's state dir, "ops": DriverOp[]}.
import { execFileSync } from 'node:child_process';
import { NixActivator, NixActivatorConfig } from '../../agent/activators/nix.ts';
import { ClosureRefused } from '../../agent/activators/activator.ts';
import { runAgentOnce } from '../../agent/agent.ts';
import { AgentConfig } from '../../agent/config.ts';
import { memoryLogger } from '../../agent/log.ts';
import type { DriverOp, DriverResult } from './nix-hosts.ts';
import { childrenCpuMs } from './children-cpu.ts';

const input = JSON.parse(process.argv[2]!) as {
  config: unknown;
  stateDir: string;
  ops: DriverOp[];
};
const activator = new NixActivator(NixActivatorConfig.parse(input.config), {
  stateDir: input.stateDir,
});

async function perform(op: DriverOp): Promise<unknown> {
  switch (op.op) {
    case 'seed': {
      // Generation 1 of a fresh host: its closure from a signed cache, the profile, the activation.
      execFileSync(
        'nix',
        [
          'copy',
          '--extra-experimental-features',
          'nix-command',
          '--option',
          'substituters',
          '',
          '--option',
          'trusted-public-keys',
          op.key,
          '--from',
          op.cache,
          op.target,
        ],
        { stdio: 'pipe' },
      );
      execFileSync('nix-env', ['-p', '/nix/var/nix/profiles/system', '--set', op.target], {
        stdio: 'pipe',
      });
      execFileSync(`${op.target}/bin/switch-to-configuration`, ['switch'], { stdio: 'pipe' });
      return null;
    }
    case 'prepare':
      return activator.prepare(op.target, { cacheUrls: op.cacheUrls, cacheKeys: op.cacheKeys });
    case 'switch':
      return activator.switch(op.target);
    case 'stage':
      return activator.stage(op.target);
    case 'boot':
      return activator.boot(op.target);
    case 'current':
      return activator.currentGeneration();
    case 'rollback':
      return activator.rollback(op.to);
    case 'inhibitors':
      return activator.detectInhibitors(op.target);
    case 'bootId':
      return activator.bootId();
    case 'reboot':
      return activator.reboot();
    case 'valid':
      try {
        execFileSync('nix-store', ['--check-validity', op.path], { stdio: 'pipe' });
        return true;
      } catch {
        return false;
      }
    case 'timed': {
      const [cmd, ...args] = op.argv as [string, ...string[]];
      const [t, cpu] = [performance.now(), childrenCpuMs()];
      execFileSync(cmd, args, { stdio: 'pipe', maxBuffer: 16 * 1024 * 1024 });
      return { ms: performance.now() - t, cpuMs: childrenCpuMs() - cpu };
    }
    case 'agent': {
      const log = memoryLogger('driver');
      const outcome = await runAgentOnce(AgentConfig.parse(op.config), { log });
      return { outcome, log: log.records };
    }
  }
}

const results: DriverResult[] = [];
for (const op of input.ops) {
  try {
    results.push({ ok: true, value: (await perform(op)) ?? null });
  } catch (e) {
    const err = e as Error & { code?: unknown };
    results.push({
      ok: false,
      name: err.name,
      code: typeof err.code === 'string' ? err.code : null,
      message: err.message,
      ...(e instanceof ClosureRefused ? { storePath: e.storePath } : {}),
    });
  }
}
process.stdout.write(`\n${JSON.stringify(results)}\n`);
