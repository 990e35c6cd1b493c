/** A store is its concerns side by side: one object with the methods of every part, each bound to its part. */

type UnionToIntersection<U> = (U extends unknown ? (part: U) => void : never) extends (part: infer I) => void ? I : never;

export function composeStore<Parts extends object[]>(...parts: Parts): UnionToIntersection<Parts[number]> {
  const store: Record<string, unknown> = {};
  const take = (name: string, value: unknown) => {
    if (name in store) throw new Error(`two parts of the store both have "${name}"`);
    store[name] = value;
  };
  for (const part of parts) {
    for (const [name, value] of Object.entries(part)) take(name, value);
    const prototype = Object.getPrototypeOf(part) as object;
    if (prototype === Object.prototype) continue;
    for (const name of Object.getOwnPropertyNames(prototype)) {
      const method = (part as Record<string, unknown>)[name];
      if (name !== 'constructor' && typeof method === 'function') take(name, method.bind(part));
    }
  }
  return store as UnionToIntersection<Parts[number]>;
}
