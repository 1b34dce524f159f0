// Selector algebra, shared by the fleet input (waves, budgets) and the signed output (kept intact so an
// auditor can see the rule that produced each resolved host list).
import { z } from 'zod';
import { HostName, ChannelName } from './common.ts';

const Tag = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$/, 'tags use letters, digits, _ . : - (at most 64)');
export { Tag };

export type Selector =
  | { tags: string[] }
  | { tagsAny: string[] }
  | { hosts: string[] }
  | { channel: string }
  | { all: true }
  | { and: Selector[] }
  | { not: Selector };

export const Selector: z.ZodType<Selector> = z.lazy(() =>
  z.union([
    z.strictObject({ tags: z.array(Tag).min(1) }),
    z.strictObject({ tagsAny: z.array(Tag).min(1) }),
    z.strictObject({ hosts: z.array(HostName).min(1) }),
    z.strictObject({ channel: ChannelName }),
    z.strictObject({ all: z.literal(true) }),
    z.strictObject({ and: z.array(Selector).min(1) }),
    z.strictObject({ not: Selector }),
  ]),
);

export interface SelectorSubject {
  name: string;
  channel: string;
  tags: readonly string[];
}

export function matchesSelector(sel: Selector, h: SelectorSubject): boolean {
  if ('tags' in sel) return sel.tags.every((t) => h.tags.includes(t));
  if ('tagsAny' in sel) return sel.tagsAny.some((t) => h.tags.includes(t));
  if ('hosts' in sel) return sel.hosts.includes(h.name);
  if ('channel' in sel) return h.channel === sel.channel;
  if ('all' in sel) return true;
  if ('and' in sel) return sel.and.every((s) => matchesSelector(s, h));
  return !matchesSelector(sel.not, h);
}
