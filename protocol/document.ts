// Reading a signed document from bytes: size cap -> strict JSON -> envelope shape -> schemaVersion ->
// document schema. Signature checks come after (see trust/verification code); nothing is trusted yet.
import type { z } from 'zod';
import { parseStrictJson } from './strict-json.ts';
import { Envelope, type SignedDocument, SCHEMA_VERSION, parseWith } from './schemas/index.ts';
import { Malformed, SchemaUnsupported } from './errors.ts';

export function readEnvelope<S extends z.ZodType>(
  bytes: Uint8Array | string,
  schema: S,
  opts: { file: string; maxBytes: number; expectType: string },
): SignedDocument<z.infer<S>> {
  const json = parseStrictJson(bytes, { file: opts.file, maxBytes: opts.maxBytes });
  const env = parseWith(Envelope, json, opts.file);
  const t = env.signed['type'];
  if (t !== opts.expectType)
    throw new Malformed(
      opts.file,
      `$.signed.type: expected "${opts.expectType}", got ${JSON.stringify(t)}`,
    );
  const sv = env.signed['schemaVersion'];
  if (sv !== SCHEMA_VERSION)
    throw new SchemaUnsupported(
      opts.file,
      `schemaVersion ${JSON.stringify(sv)} is not supported (this build reads ${SCHEMA_VERSION})`,
    );
  const signed = parseWith(schema, env.signed, opts.file, '$.signed');
  return { signed, signatures: env.signatures };
}
