/**
 * Reads the Export API's archive (a zip of gzipped JSON-lines files) as the bytes arrive: fflate's streaming
 * unzip and gunzip run synchronously inside each `push`, so only one network chunk's worth of lines is ever
 * held, whatever the size of the export.
 */
import { Gunzip, Unzip, UnzipInflate, type UnzipFile } from 'fflate';

/** A line splitter for one decompressed file; lines may straddle chunks, and so may UTF-8 characters. */
function lineCollector(lines: string[]): (data: Uint8Array, final: boolean) => void {
  const decoder = new TextDecoder();
  let partial = '';
  return (data, final) => {
    const parts = (partial + decoder.decode(data, { stream: !final })).split('\n');
    partial = final ? '' : (parts.pop() ?? '');
    for (const line of parts) if (line.trim()) lines.push(line);
  };
}

/** The non-empty lines of every file in the archive, in order. Files not ending in `.gz` are read as they are. */
export async function* exportArchiveLines(zipChunks: AsyncIterable<Uint8Array>): AsyncGenerator<string> {
  const lines: string[] = [];
  let failure: Error | undefined;
  const unzip = new Unzip((file: UnzipFile) => {
    const collect = lineCollector(lines);
    const decode = file.name.endsWith('.gz') ? new Gunzip(collect) : { push: collect };
    file.ondata = (error, data, final) => {
      if (error) failure = error;
      else decode.push(data, final);
    };
    file.start();
  });
  unzip.register(UnzipInflate);
  for await (const chunk of zipChunks) {
    unzip.push(chunk);
    if (failure) throw failure;
    yield* lines.splice(0);
  }
  unzip.push(new Uint8Array(0), true);
  if (failure) throw failure;
  yield* lines.splice(0);
}
