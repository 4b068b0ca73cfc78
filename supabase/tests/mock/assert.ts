/**
 * Minimal assertions for the mock's tests (jsr:@std/assert is not reachable here). Each throws
 * AssertionError with both values on failure.
 */

export class AssertionError extends Error {}

function show(v: unknown): string {
  try {
    return Deno.inspect(v, { depth: 6, colors: false });
  } catch {
    return String(v);
  }
}

function fail(message: string, detail?: string): never {
  throw new AssertionError(detail ? `${message}: ${detail}` : message);
}

/** Structural equality for JSON-like values, Maps, Sets, Dates. */
export function deepEqual(a: unknown, b: unknown): boolean {
  if (Object.is(a, b)) return true;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  if (Object.getPrototypeOf(a) !== Object.getPrototypeOf(b)) return false;
  if (a instanceof Date && b instanceof Date) return a.getTime() === b.getTime();
  if (Array.isArray(a) && Array.isArray(b)) {
    return a.length === b.length && a.every((x, i) => deepEqual(x, b[i]));
  }
  if (a instanceof Map && b instanceof Map) {
    return a.size === b.size && [...a].every(([k, v]) => b.has(k) && deepEqual(v, b.get(k)));
  }
  if (a instanceof Set && b instanceof Set) {
    return a.size === b.size && [...a].every((x) => b.has(x));
  }
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  const ra = a as Record<string, unknown>;
  const rb = b as Record<string, unknown>;
  return ka.length === kb.length &&
    ka.every((k) => Object.hasOwn(rb, k) && deepEqual(ra[k], rb[k]));
}

export function assert(condition: unknown, message = "assertion failed"): asserts condition {
  if (!condition) fail(message);
}

export function assertEquals<T>(actual: T, expected: T, message?: string): void {
  if (!deepEqual(actual, expected)) {
    fail(
      message ?? "values differ",
      `\n  actual:   ${show(actual)}\n  expected: ${show(expected)}`,
    );
  }
}

export function assertNotEquals<T>(actual: T, expected: T, message?: string): void {
  if (deepEqual(actual, expected)) fail(message ?? "values are equal", show(actual));
}

export function assertMatch(actual: string, re: RegExp, message?: string): void {
  if (!re.test(actual)) fail(message ?? `${show(actual)} does not match ${re}`);
}

export function assertStringIncludes(actual: string, part: string, message?: string): void {
  if (!actual.includes(part)) fail(message ?? `${show(actual)} does not include ${show(part)}`);
}

type ErrorClass = abstract new (...args: never[]) => Error;

/** instanceof without type narrowing (a failed check must still see an Error). */
function isInstance(value: Error, cls: ErrorClass): boolean {
  return value instanceof cls;
}

function checkError(e: unknown, cls?: ErrorClass, includes?: string, message?: string): Error {
  if (!(e instanceof Error)) fail(message ?? "thrown value is not an Error", show(e));
  const err: Error = e;
  if (cls && !isInstance(err, cls)) {
    fail(message ?? `expected ${cls.name}, got ${err.name}`, err.message);
  }
  if (includes !== undefined && !err.message.includes(includes)) {
    fail(message ?? `error message does not include ${show(includes)}`, err.message);
  }
  return err;
}

export function assertThrows(
  fn: () => unknown,
  cls?: ErrorClass,
  includes?: string,
  message?: string,
): Error {
  try {
    fn();
  } catch (e) {
    return checkError(e, cls, includes, message);
  }
  fail(message ?? "expected an exception");
}

export async function assertRejects(
  fn: () => Promise<unknown>,
  cls?: ErrorClass,
  includes?: string,
  message?: string,
): Promise<Error> {
  try {
    await fn();
  } catch (e) {
    return checkError(e, cls, includes, message);
  }
  fail(message ?? "expected a rejection");
}
