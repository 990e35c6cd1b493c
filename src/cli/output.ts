import { ConfigError } from '../config.js';

/** The CLI's last resort: a plain message and a non-zero exit, never a stack trace. */
export function reportAndExit(error: unknown): never {
  if (error instanceof ConfigError) {
    console.error(error.message);
    process.exit(2);
  }
  console.error(`ampbraze: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
}
