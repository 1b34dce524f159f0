// Worker threads that run one of this project's modules, as typed TypeScript like the rest (issue 10:
// no program kept in a string). Each such module is its own entry in scripts/build.mjs, so the shipped
// command finds it compiled beside its own code in dist/; run as source (tests, benchmarks, through
// tsx) the thread loads the TypeScript file instead, after registering tsx, whose module hooks do not
// reach worker threads by themselves.
import { Worker } from 'node:worker_threads';

/**
 * The module `name` beside the caller (`callerUrl`: its `import.meta.url`): `./<name>.js` when the
 * caller runs compiled, `./<name>.ts` when it runs as source.
 */
export function moduleBeside(name: string, callerUrl: string): URL {
  return new URL(callerUrl.endsWith('.ts') ? `./${name}.ts` : `./${name}.js`, callerUrl);
}

/** Starts a thread running `module` with `workerData` (as source: a two-line tsx bootstrap first). */
export function startModuleThread(module: URL, workerData: unknown): Worker {
  return module.pathname.endsWith('.ts')
    ? new Worker(
        `import('tsx/esm/api').then((tsx) => { tsx.register(); return import(${JSON.stringify(module.href)}); });`,
        { eval: true, workerData },
      )
    : new Worker(module, { workerData });
}
