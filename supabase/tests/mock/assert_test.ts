// The assertions themselves must be able to fail, or no other test here means anything.
import {
  assertEquals,
  AssertionError,
  assertMatch,
  assertNotEquals,
  assertRejects,
  assertStringIncludes,
  assertThrows,
  deepEqual,
} from "./assert.ts";

Deno.test("deepEqual distinguishes what it must", () => {
  assertEquals(deepEqual({ a: [1, { b: 2 }] }, { a: [1, { b: 2 }] }), true);
  assertEquals(deepEqual({ a: 1 }, { a: 1, b: undefined }), false);
  assertEquals(deepEqual([1, 2], [2, 1]), false);
  assertEquals(deepEqual("1", 1), false);
  assertEquals(deepEqual(new Map([["a", 1]]), new Map([["a", 2]])), false);
});

Deno.test("every assertion throws AssertionError on failure", async () => {
  const failing: Array<() => unknown> = [
    () => assertEquals(1, 2),
    () => assertNotEquals(1, 1),
    () => assertMatch("abc", /z/),
    () => assertStringIncludes("abc", "z"),
    () => assertThrows(() => {}),
    () =>
      assertThrows(() => {
        throw new TypeError("x");
      }, RangeError),
    () =>
      assertThrows(
        () => {
          throw new Error("x");
        },
        Error,
        "y",
      ),
  ];
  for (const f of failing) {
    let caught: unknown;
    try {
      f();
    } catch (e) {
      caught = e;
    }
    if (!(caught instanceof AssertionError)) throw new Error(`did not fail: ${f}`);
  }
  let rejected: unknown;
  try {
    await assertRejects(() => Promise.resolve());
  } catch (e) {
    rejected = e;
  }
  if (!(rejected instanceof AssertionError)) throw new Error("assertRejects did not fail");
});
