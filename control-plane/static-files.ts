// Static file serving for the embedded control plane, with the properties nginx gives in production:
// strict path normalisation (no traversal, no dotfiles, no symlinks leaving the tree), no directory
// listing, ETag / If-None-Match and Last-Modified / If-Modified-Since -> 304, content types.
// The ETag is inode-size-mtime: every atomic rewrite (rename) gets a new inode, so a changed file never
// keeps its old ETag even when size and mtime second stay the same.
import { open, realpath } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { join, sep } from 'node:path';
import { pipeline } from 'node:stream';

const SEGMENT = /^[A-Za-z0-9_][A-Za-z0-9._+=@-]*$/;

/** Splits a request path into safe segments, or returns null (refused: 404, no detail leaks). */
export function normalizeRequestPath(rawUrl: string): string[] | null {
  const q = rawUrl.indexOf('?');
  const path = q >= 0 ? rawUrl.slice(0, q) : rawUrl;
  if (!path.startsWith('/') || path.includes('\\') || path.length > 1024) return null;
  const segments: string[] = [];
  for (const raw of path.slice(1).split('/')) {
    let seg: string;
    try {
      seg = decodeURIComponent(raw);
    } catch {
      return null;
    }
    // after decoding: "%2e%2e", "%2f", NUL and dotfiles are all refused here
    if (!SEGMENT.test(seg)) return null;
    segments.push(seg);
  }
  return segments.length > 0 ? segments : null;
}

export function contentType(name: string): string {
  if (name.endsWith('.json')) return 'application/json';
  if (name.endsWith('.narinfo')) return 'text/x-nix-narinfo';
  if (name === 'nix-cache-info') return 'text/x-nix-cache-info';
  if (/\.nar(\.[a-z0-9]+)?$/.test(name)) return 'application/x-nix-nar';
  if (name.endsWith('.html')) return 'text/html; charset=utf-8';
  if (name.endsWith('.css')) return 'text/css; charset=utf-8';
  if (name.endsWith('.js')) return 'text/javascript; charset=utf-8';
  if (name.endsWith('.svg')) return 'image/svg+xml';
  if (name.endsWith('.txt')) return 'text/plain; charset=utf-8';
  return 'application/octet-stream';
}

function etagMatches(header: string, etag: string): boolean {
  if (header.trim() === '*') return true;
  return header.split(',').some((t) => t.trim().replace(/^W\//, '') === etag);
}

export function sendError(
  res: ServerResponse,
  status: number,
  error: string,
  reason: string,
  extra: Record<string, string> = {},
): void {
  const body = JSON.stringify({ error, reason }) + '\n';
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
    ...extra,
  });
  res.end(body);
}

/** Serves `segments` from `root`. Returns after the response is finished or the stream is set up. */
export async function serveFile(
  req: IncomingMessage,
  res: ServerResponse,
  root: string,
  segments: readonly string[],
): Promise<void> {
  const notFound = () => sendError(res, 404, 'NotFound', 'no such document');
  let real: string;
  try {
    real = await realpath(join(root, ...segments));
  } catch {
    return notFound();
  }
  let rootReal: string;
  try {
    rootReal = await realpath(root);
  } catch {
    return notFound();
  }
  if (!real.startsWith(rootReal + sep)) return notFound(); // a symlink leading out of the tree
  let fh;
  try {
    fh = await open(real, 'r');
  } catch {
    return notFound();
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) {
      await fh.close();
      return notFound(); // directories are never listed
    }
    const etag = `"${st.ino.toString(16)}-${st.size.toString(16)}-${Math.floor(st.mtimeMs).toString(16)}"`;
    const lastModified = new Date(Math.floor(st.mtimeMs / 1000) * 1000).toUTCString();
    const headers: Record<string, string | number> = {
      etag,
      'last-modified': lastModified,
      'cache-control': 'no-cache',
      'x-content-type-options': 'nosniff',
    };
    const inm = req.headers['if-none-match'];
    const ims = req.headers['if-modified-since'];
    const notModified =
      inm !== undefined
        ? etagMatches(inm, etag)
        : ims !== undefined &&
          !Number.isNaN(Date.parse(ims)) &&
          Math.floor(st.mtimeMs / 1000) * 1000 <= Date.parse(ims);
    if (notModified) {
      await fh.close();
      res.writeHead(304, headers);
      res.end();
      return;
    }
    headers['content-type'] = contentType(segments[segments.length - 1] ?? '');
    headers['content-length'] = st.size;
    res.writeHead(200, headers);
    if (req.method === 'HEAD') {
      await fh.close();
      res.end();
      return;
    }
    // pipeline, not pipe: when the client goes away first (it may hang up as soon as it has the
    // content-length's worth, before the stream read its EOF) the read stream is destroyed too, which
    // closes the file. pipe() would leave it paused with the file open until garbage collection.
    // Either side failing destroys both; the error itself is the client's business, not a log line.
    pipeline(fh.createReadStream({ autoClose: true }), res, () => undefined);
  } catch (e) {
    await fh.close().catch(() => undefined);
    throw e;
  }
}
