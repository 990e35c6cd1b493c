/**
 * Reads the Export API's archive (a zip of gzipped JSON-lines files) with flat memory: the download is streamed
 * to a temporary file, then each entry is located through the zip's central directory (its recorded sizes and
 * offsets) and streamed through inflate and gunzip line by line. A streaming unzip cannot know where an entry
 * that carries its sizes after its data ends, and guessing from signature bytes inside compressed data would
 * cut files short silently.
 */
import { randomUUID } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { open, rm, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { Readable, type Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip, createInflateRaw } from 'node:zlib';

const END_OF_CENTRAL_DIRECTORY = 0x06054b50;
const ZIP64_END_LOCATOR = 0x07064b50;
const ZIP64_END = 0x06064b50;
const CENTRAL_ENTRY = 0x02014b50;
const LOCAL_HEADER = 0x04034b50;
const ZIP64_EXTRA = 0x0001;
const STORED = 0;
const DEFLATED = 8;
/** The end record is 22 bytes, followed by a comment of at most 65,535. */
const MAX_END_SEARCH = 22 + 0xffff;

export class CorruptArchiveError extends Error {
  override readonly name = 'CorruptArchiveError';
}

interface Entry {
  name: string;
  method: number;
  compressedSize: number;
  localHeaderOffset: number;
}

/** The non-empty lines of every file in the archive, in order. Files not ending in `.gz` are read as they are. */
export async function* exportArchiveLines(zipChunks: AsyncIterable<Uint8Array>, directory = tmpdir()): AsyncGenerator<string> {
  const path = join(directory, `ampbraze-export-${randomUUID()}.zip`);
  try {
    await pipeline(Readable.from(zipChunks), createWriteStream(path));
    const file = await open(path, 'r');
    try {
      for (const entry of await centralDirectory(file)) {
        if (entry.compressedSize === 0) continue;
        const stages: Transform[] = [];
        if (entry.method === DEFLATED) stages.push(createInflateRaw());
        else if (entry.method !== STORED)
          throw new CorruptArchiveError(`${entry.name}: unsupported zip compression method ${entry.method}`);
        if (entry.name.endsWith('.gz')) stages.push(createGunzip());
        const start = await dataOffset(file, entry);
        const source = createReadStream(path, { start, end: start + entry.compressedSize - 1 });
        const decoded = stages.reduce<Readable>((from, to) => from.pipe(to), source);
        // A failure anywhere in the chain ends the line reader with it.
        for (const stream of [source, ...stages]) stream.once('error', (error: Error) => decoded.destroy(error));
        for await (const line of createInterface({ input: decoded, crlfDelay: Infinity })) if (line.trim()) yield line;
      }
    } finally {
      await file.close();
    }
  } finally {
    await rm(path, { force: true });
  }
}

async function readAt(file: FileHandle, position: number, length: number): Promise<Buffer> {
  const buffer = Buffer.alloc(length);
  const { bytesRead } = await file.read(buffer, 0, length, position);
  if (bytesRead !== length) throw new CorruptArchiveError('the archive ends early');
  return buffer;
}

/** The entries in archive order, from the central directory (zip64 when the archive needs it). */
async function centralDirectory(file: FileHandle): Promise<Entry[]> {
  const { size } = await file.stat();
  if (size === 0) return [];
  const tailStart = Math.max(0, size - MAX_END_SEARCH);
  const tail = await readAt(file, tailStart, size - tailStart);
  let end = -1;
  for (let i = tail.length - 22; i >= 0 && end < 0; i--) if (tail.readUInt32LE(i) === END_OF_CENTRAL_DIRECTORY) end = i;
  if (end < 0) throw new CorruptArchiveError('not a zip archive (no end of central directory)');
  let entryCount = tail.readUInt16LE(end + 10);
  let directorySize = tail.readUInt32LE(end + 12);
  let directoryOffset = tail.readUInt32LE(end + 16);
  if (end >= 20 && tail.readUInt32LE(end - 20) === ZIP64_END_LOCATOR) {
    const zip64End = await readAt(file, Number(tail.readBigUInt64LE(end - 12)), 56);
    if (zip64End.readUInt32LE(0) !== ZIP64_END) throw new CorruptArchiveError('bad zip64 end of central directory');
    entryCount = Number(zip64End.readBigUInt64LE(32));
    directorySize = Number(zip64End.readBigUInt64LE(40));
    directoryOffset = Number(zip64End.readBigUInt64LE(48));
  }
  const directory = await readAt(file, directoryOffset, directorySize);
  const entries: Entry[] = [];
  for (let at = 0, n = 0; n < entryCount; n++) {
    if (directory.readUInt32LE(at) !== CENTRAL_ENTRY) throw new CorruptArchiveError('bad central directory entry');
    const nameLength = directory.readUInt16LE(at + 28);
    const extraLength = directory.readUInt16LE(at + 30);
    const commentLength = directory.readUInt16LE(at + 32);
    const name = directory.toString('utf8', at + 46, at + 46 + nameLength);
    const sizes = {
      compressedSize: directory.readUInt32LE(at + 20),
      uncompressedSize: directory.readUInt32LE(at + 24),
      localHeaderOffset: directory.readUInt32LE(at + 42),
    };
    widenFromZip64Extra(directory.subarray(at + 46 + nameLength, at + 46 + nameLength + extraLength), sizes);
    entries.push({
      name,
      method: directory.readUInt16LE(at + 10),
      compressedSize: sizes.compressedSize,
      localHeaderOffset: sizes.localHeaderOffset,
    });
    at += 46 + nameLength + extraLength + commentLength;
  }
  return entries;
}

/** Zip64 keeps 8-byte values in an extra field, in this order, for the 4-byte fields that hold 0xFFFFFFFF. */
function widenFromZip64Extra(extra: Buffer, sizes: { compressedSize: number; uncompressedSize: number; localHeaderOffset: number }): void {
  for (let at = 0; at + 4 <= extra.length; at += 4 + extra.readUInt16LE(at + 2)) {
    if (extra.readUInt16LE(at) !== ZIP64_EXTRA) continue;
    let field = at + 4;
    for (const name of ['uncompressedSize', 'compressedSize', 'localHeaderOffset'] as const) {
      if (sizes[name] !== 0xffffffff) continue;
      sizes[name] = Number(extra.readBigUInt64LE(field));
      field += 8;
    }
  }
}

/** Where an entry's data starts: after its local header, whose name and extra field may differ from the directory's. */
async function dataOffset(file: FileHandle, entry: Entry): Promise<number> {
  const header = await readAt(file, entry.localHeaderOffset, 30);
  if (header.readUInt32LE(0) !== LOCAL_HEADER) throw new CorruptArchiveError(`${entry.name}: bad local header`);
  return entry.localHeaderOffset + 30 + header.readUInt16LE(26) + header.readUInt16LE(28);
}
