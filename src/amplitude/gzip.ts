import { Readable, pipeline } from 'node:stream';
import { createGunzip } from 'node:zlib';

const GZIP_MAGIC = [0x1f, 0x8b] as const;

/**
 * The bytes of `chunks`, gunzipped when they start with the gzip magic bytes. The content itself decides:
 * cohort files may be gzipped inline or on S3, and `Content-Encoding` is not reliably set on either.
 */
export async function gunzipIfCompressed(chunks: AsyncIterable<Buffer>): Promise<Readable> {
  const iterator = chunks[Symbol.asyncIterator]();
  let head = Buffer.alloc(0);
  while (head.length < GZIP_MAGIC.length) {
    const next = await iterator.next();
    if (next.done) return Readable.from(head.length > 0 ? [head] : []);
    head = Buffer.concat([head, next.value]);
  }
  async function* all(): AsyncGenerator<Buffer> {
    yield head;
    for (let next = await iterator.next(); !next.done; next = await iterator.next()) yield next.value;
  }
  const source = Readable.from(all());
  if (head[0] !== GZIP_MAGIC[0] || head[1] !== GZIP_MAGIC[1]) return source;
  // pipeline destroys the gunzip stream with any error, so the reader sees it; nothing is left to report here.
  return pipeline(source, createGunzip(), () => undefined);
}
