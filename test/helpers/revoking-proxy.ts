/**
 * An HTTP hop in front of a vendor sandbox that can revoke the credentials of chosen endpoints: a request to one of
 * them reaches the sandbox with its key, secret or token replaced, so the sandbox answers exactly what the vendor
 * answers a revoked key (Amplitude's 401, Braze's 401, HTTP V2's 400 `Invalid API key`). Everything else passes
 * through; redirects to the sandbox are rewritten to come back through the hop.
 */
import { createServer, request as forward } from 'node:http';
import { closeServer, listen } from '../../src/sandbox/http-util.js';

const REVOKED = 'revoked-credential';

export interface RevokingProxy {
  url: string;
  /** Requests whose `METHOD /path` matches carry revoked credentials from now on; none when unset. */
  revoke(endpoint: RegExp | undefined): void;
  close(): Promise<void>;
}

export async function startRevokingProxy(targetUrl: string): Promise<RevokingProxy> {
  let revoked: RegExp | undefined;
  let ownUrl = '';
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const path = new URL(req.url ?? '/', targetUrl).pathname;
      const revoke = revoked?.test(`${req.method} ${path}`) ?? false;
      const body = revoke ? withoutCredentials(Buffer.concat(chunks)) : Buffer.concat(chunks);
      const headers = { ...req.headers, 'content-length': String(body.length) };
      if (revoke && typeof headers.authorization === 'string') headers.authorization = revokedAuthorization(headers.authorization);
      const upstream = forward(`${targetUrl}${req.url}`, { method: req.method, headers }, (answer) => {
        const location = answer.headers.location;
        res.writeHead(answer.statusCode ?? 502, { ...answer.headers, ...(location && { location: location.replace(targetUrl, ownUrl) }) });
        answer.pipe(res);
      });
      upstream.on('error', () => res.destroy());
      upstream.end(body);
    });
  });
  ownUrl = await listen(server, 0, '127.0.0.1');
  return { url: ownUrl, revoke: (endpoint) => void (revoked = endpoint), close: () => closeServer(server) };
}

/** The same scheme with a credential the vendor does not know. */
function revokedAuthorization(authorization: string): string {
  const [scheme] = authorization.split(' ');
  return scheme === 'Basic' ? `Basic ${Buffer.from(`${REVOKED}:${REVOKED}`).toString('base64')}` : `${scheme} ${REVOKED}`;
}

/** A JSON body with the keys that travel in it (HTTP V2's `api_key`, the partner API's) replaced. */
function withoutCredentials(body: Buffer): Buffer {
  if (body.length === 0) return body;
  try {
    const json = JSON.parse(body.toString('utf8')) as Record<string, unknown>;
    for (const field of ['api_key', 'partner_api_key', 'client_secret']) if (field in json) json[field] = REVOKED;
    return Buffer.from(JSON.stringify(json));
  } catch {
    return body;
  }
}
