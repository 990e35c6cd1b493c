/**
 * What the receiver's door checks in every pushed item before it may enter a spool: identifiers that both stores
 * can index and compare faithfully, and JSON bounded in depth and size, so that no content can fail a write (and
 * with it the whole batch, on every resend) or a worker's later read. Pure.
 */
import { z } from 'zod';

/**
 * An identifier's UTF-8 bytes at most: it goes into unique and partition indexes, whose rows PostgreSQL caps at
 * 2,704 bytes (stream name and a prefix included), and Amplitude keeps strings of up to 1,024 characters.
 */
export const MAX_IDENTIFIER_BYTES = 1_024;
/** Nesting levels of one pushed item (Amplitude accepts 40 levels of event properties). */
export const MAX_JSON_DEPTH = 40;
/**
 * One pushed item's JSON at most: what the store keeps per item. Whether a vendor takes it is the vendor's to say (an
 * event over Amplitude's 1 MB is refused by Amplitude alone, and dead-lettered with its answer).
 */
export const MAX_ITEM_BYTES = 4 * 1024 * 1024;

/** In a `u` regex a well-formed pair is one code point, so this matches only a surrogate that is alone. */
const LONE_SURROGATE = /\p{Surrogate}/u;

/** Why `value` cannot be an identifier, or undefined when it can. */
export function identifierProblem(value: string): string | undefined {
  if (value.length === 0) return 'must not be empty';
  if (value.includes('\u0000')) return 'must not contain a NUL character';
  // A lone surrogate is no character: PostgreSQL would store it as U+FFFD, and two different ids would become one.
  if (LONE_SURROGATE.test(value)) return 'must not contain a lone UTF-16 surrogate';
  const bytes = utf8Length(value);
  if (bytes > MAX_IDENTIFIER_BYTES) return `must be at most ${MAX_IDENTIFIER_BYTES} bytes of UTF-8 (is ${bytes})`;
  return undefined;
}

/** A string that can serve as a key in the spool and the snapshots, on either store. */
export const identifierSchema = z.string().superRefine((value, ctx) => {
  const problem = identifierProblem(value);
  if (problem) ctx.addIssue(problem);
});

/** An identifier where a sender may also send `""` for none. */
export const optionalIdentifierSchema = z.string().superRefine((value, ctx) => {
  const problem = value === '' ? undefined : identifierProblem(value);
  if (problem) ctx.addIssue(problem);
});

/**
 * Why a decoded JSON value is out of bounds (nested deeper than `MAX_JSON_DEPTH`, or larger than `MAX_ITEM_BYTES`
 * once serialised), or undefined. Walks iteratively: content nested thousands deep must not overflow the stack.
 */
export function jsonBoundsProblem(value: unknown): string | undefined {
  const pending: Array<{ value: unknown; depth: number }> = [{ value, depth: 1 }];
  let bytes = 0;
  while (pending.length > 0) {
    const { value: next, depth } = pending.pop()!;
    if (typeof next === 'string') bytes += utf8Length(next) + 2;
    else if (next === null || typeof next !== 'object') bytes += String(next).length;
    else {
      if (depth > MAX_JSON_DEPTH) return `nested deeper than ${MAX_JSON_DEPTH} levels`;
      for (const [key, inner] of Object.entries(next)) {
        if (!Array.isArray(next)) bytes += utf8Length(key) + 3;
        pending.push({ value: inner, depth: depth + 1 });
      }
      bytes += 2;
    }
    if (bytes > MAX_ITEM_BYTES) return `larger than ${MAX_ITEM_BYTES} bytes`;
  }
  return undefined;
}

/**
 * `JSON.stringify` without recursion, for content the door refused: it may be nested too deep for the built-in one.
 * The same text as `JSON.stringify` for any value `JSON.parse` returns.
 */
export function jsonText(value: unknown): string {
  const parts: string[] = [];
  // Values still to write, and literal text between them (commas, keys, closing brackets), last first.
  const pending: Array<{ value: unknown } | { text: string }> = [{ value }];
  while (pending.length > 0) {
    const next = pending.pop()!;
    if ('text' in next) {
      parts.push(next.text);
      continue;
    }
    const item = next.value;
    if (Array.isArray(item)) {
      parts.push('[');
      pending.push({ text: ']' });
      for (let i = item.length - 1; i >= 0; i--) {
        pending.push({ value: item[i] ?? null });
        if (i > 0) pending.push({ text: ',' });
      }
    } else if (typeof item === 'object' && item !== null) {
      parts.push('{');
      pending.push({ text: '}' });
      const entries = Object.entries(item as Record<string, unknown>).filter(([, inner]) => inner !== undefined);
      for (let i = entries.length - 1; i >= 0; i--) {
        const [key, inner] = entries[i]!;
        pending.push({ value: inner });
        pending.push({ text: `${i > 0 ? ',' : ''}${JSON.stringify(key)}:` });
      }
    } else parts.push(JSON.stringify(item) ?? 'null');
  }
  return parts.join('');
}

/** The length of `text` in UTF-8 bytes (without Buffer, which a workflow bundle that imports this has not). */
export function utf8Length(text: string): number {
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    if (unit < 0x80) bytes += 1;
    else if (unit < 0x800) bytes += 2;
    else if (unit >= 0xd800 && unit < 0xdc00 && i + 1 < text.length && (text.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      bytes += 4;
      i++;
    } else bytes += 3;
  }
  return bytes;
}
