// Minimal assertions (jsr:@std/assert cannot be fetched here).
export class AssertionError extends Error {
  override name = "AssertionError";
}

export function assert(condition: unknown, message = "assertion failed"): asserts condition {
  if (!condition) throw new AssertionError(message);
}

export function assertEquals<T>(actual: T, expected: T, message?: string): void {
  const a = JSON.stringify(actual);
  const e = JSON.stringify(expected);
  if (a !== e) {
    throw new AssertionError(`${message ?? "not equal"}:\n  actual:   ${a}\n  expected: ${e}`);
  }
}

export function assertThrows(fn: () => unknown, includes?: string): Error {
  try {
    fn();
  } catch (e) {
    const err = e instanceof Error ? e : new Error(String(e));
    if (includes && !err.message.includes(includes)) {
      throw new AssertionError(`error "${err.message}" does not include "${includes}"`);
    }
    return err;
  }
  throw new AssertionError("expected the function to throw");
}

export async function assertRejects(fn: () => Promise<unknown>, includes?: string): Promise<Error> {
  try {
    await fn();
  } catch (e) {
    const err = e instanceof Error ? e : new Error(String(e));
    if (includes && !err.message.includes(includes)) {
      throw new AssertionError(`error "${err.message}" does not include "${includes}"`);
    }
    return err;
  }
  throw new AssertionError("expected the promise to reject");
}
