// The demo's one-machine fleet (demo/lab.ts) with what only tests and benchmarks need: CI's scheduled
// timestamp refresh, signed operator controls, and removing the whole lab directory afterwards.
import { rmSync } from 'node:fs';
import { Lab as DemoLab } from '../../demo/index.ts';
import {
  refreshTimestamp,
  writeControls,
  type ControlsBody,
  type RefreshResult,
  type WriteControlsResult,
} from '../../publisher/index.ts';

export type { LabHost, LabOptions } from '../../demo/index.ts';

export class Lab extends DemoLab {
  /** CI's scheduled job: re-sign the timestamp (binding the newest controls). */
  refresh(now = Date.now()): RefreshResult {
    return refreshTimestamp({ treeDir: this.treeDir, releaseKeys: [this.releaseKey], now });
  }

  /** An operator control (signed by the operator key), bound by an immediate refresh. */
  control(
    edit: (current: ControlsBody, at: string) => ControlsBody,
    now = Date.now(),
  ): WriteControlsResult {
    const written = writeControls({
      treeDir: this.treeDir,
      root: this.root.signed,
      keys: [this.operatorKey],
      now,
      edit,
    });
    this.refresh(now);
    return written;
  }

  async close(opts: { keepFiles?: boolean } = {}): Promise<void> {
    await this.stopControlPlane();
    if (!opts.keepFiles) rmSync(this.opts.dir, { recursive: true, force: true });
  }
}
