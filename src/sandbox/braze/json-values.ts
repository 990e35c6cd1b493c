/** Type guards and reply shapes shared by the Braze sandbox's endpoint handlers. */

export interface UserAlias {
  alias_name: string;
  alias_label: string;
}

/** What an endpoint handler answers; the server adds transport headers. */
export interface Reply {
  status: number;
  body: Record<string, unknown>;
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function isAlias(value: unknown): value is UserAlias {
  return (
    isPlainObject(value) &&
    typeof value.alias_name === 'string' &&
    typeof value.alias_label === 'string' &&
    value.alias_name !== '' &&
    value.alias_label !== ''
  );
}

export function nonEmptyString(value: unknown): value is string {
  return typeof value === 'string' && value !== '';
}

export function stringsOf(value: unknown): string[] {
  return Array.isArray(value) ? value.filter(nonEmptyString) : [];
}

export function aliasesOf(value: unknown): UserAlias[] {
  return Array.isArray(value) ? value.filter(isAlias).map(({ alias_name, alias_label }) => ({ alias_name, alias_label })) : [];
}

export function badRequest(message: string): Reply {
  return { status: 400, body: { message } };
}

export function success(status = 201, extra: Record<string, unknown> = {}): Reply {
  return { status, body: { message: 'success', ...extra } };
}
