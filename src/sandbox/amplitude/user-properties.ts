/** Amplitude's user property operations (`$set`, `$unset`, …), applied to a user's current properties. */

export type UserProperties = Record<string, unknown>;

export class InvalidUserPropertiesError extends Error {
  override readonly name = 'InvalidUserPropertiesError';
}

const asArray = (value: unknown): unknown[] => (Array.isArray(value) ? [...(value as unknown[])] : value === undefined ? [] : [value]);
const sameValue = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

type Operation = (properties: UserProperties, key: string, value: unknown) => void;

const OPERATIONS: Record<string, Operation> = {
  $set: (properties, key, value) => {
    properties[key] = value;
  },
  $setOnce: (properties, key, value) => {
    if (!(key in properties)) properties[key] = value;
  },
  $unset: (properties, key) => {
    delete properties[key];
  },
  $add: (properties, key, value) => {
    const current = Number(properties[key] ?? 0);
    properties[key] = (Number.isFinite(current) ? current : 0) + Number(value);
  },
  $append: (properties, key, value) => {
    properties[key] = [...asArray(properties[key]), ...asArray(value)];
  },
  $prepend: (properties, key, value) => {
    properties[key] = [...asArray(value), ...asArray(properties[key])];
  },
  $postInsert: (properties, key, value) => {
    const current = asArray(properties[key]);
    properties[key] = [...current, ...asArray(value).filter((item) => !current.some((existing) => sameValue(existing, item)))];
  },
  $preInsert: (properties, key, value) => {
    const current = asArray(properties[key]);
    properties[key] = [...asArray(value).filter((item) => !current.some((existing) => sameValue(existing, item))), ...current];
  },
  $remove: (properties, key, value) => {
    const removed = asArray(value);
    properties[key] = asArray(properties[key]).filter((item) => !removed.some((gone) => sameValue(gone, item)));
  },
};

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Throws InvalidUserPropertiesError when the payload is not an object or mixes operations with plain keys. */
export function validateUserProperties(userProperties: unknown): asserts userProperties is UserProperties {
  if (!isRecord(userProperties)) throw new InvalidUserPropertiesError('user_properties must be an object');
  const keys = Object.keys(userProperties);
  const operationKeys = keys.filter((key) => key.startsWith('$'));
  if (operationKeys.length > 0 && operationKeys.length < keys.length) {
    throw new InvalidUserPropertiesError('user_properties cannot mix property operations and plain properties');
  }
  for (const key of operationKeys) {
    if (key !== '$clearAll' && !(key in OPERATIONS)) throw new InvalidUserPropertiesError(`unknown user property operation ${key}`);
    if (key !== '$clearAll' && !isRecord(userProperties[key]))
      throw new InvalidUserPropertiesError(`${key} must map property names to values`);
  }
}

/** Returns the properties after the update; plain keys mean `$set`. The input is not modified. */
export function applyUserProperties(current: UserProperties, userProperties: UserProperties): UserProperties {
  validateUserProperties(userProperties);
  const keys = Object.keys(userProperties);
  const operations = keys.some((key) => key.startsWith('$')) ? userProperties : { $set: userProperties };
  let properties: UserProperties = { ...current };
  for (const [operation, changes] of Object.entries(operations)) {
    if (operation === '$clearAll') {
      properties = {};
      continue;
    }
    const apply = OPERATIONS[operation] as Operation;
    for (const [key, value] of Object.entries(changes as UserProperties)) apply(properties, key, value);
  }
  return properties;
}
