import { assertEquals, assertThrows } from "./assert.ts";
import { checkFilter, evaluateFilter, FilterError, parseFilter } from "./odata_filter.ts";
import type { FilterSchema } from "./odata_filter.ts";

const A = "aaaaaaaa-0000-4000-8000-000000000001";
const B = "BBBBBBBB-0000-4000-8000-000000000002";
const SCHEMA: FilterSchema = { contactid: "guid", hlf_portalvisible: "bool" };

function matches(filter: string, id: string, visible = false): boolean {
  const expr = parseFilter(filter);
  checkFilter(expr, SCHEMA);
  return evaluateFilter(expr, { contactid: id, hlf_portalvisible: visible });
}

Deno.test("In() names ids, case-insensitively", () => {
  const f = `Microsoft.Dynamics.CRM.In(PropertyName='contactid',PropertyValues=['${A}','${B}'])`;
  assertEquals(parseFilter(f), {
    op: "in",
    property: "contactid",
    values: [A, B],
  });
  assertEquals(matches(f, A), true);
  assertEquals(matches(f, B.toLowerCase()), true);
  assertEquals(matches(f, "dddddddd-0000-4000-8000-000000000004"), false);
});

Deno.test("In() tolerates whitespace", () => {
  const f = `Microsoft.Dynamics.CRM.In( PropertyName = 'contactid' , PropertyValues = [ '${A}' ] )`;
  assertEquals(matches(f, A), true);
});

Deno.test("eq/or chains and precedence of and over or", () => {
  const f = `contactid eq ${A} or contactid eq ${B}`;
  assertEquals(matches(f, A), true);
  assertEquals(matches(f, B.toLowerCase()), true);
  assertEquals(matches(f, "dddddddd-0000-4000-8000-000000000004"), false);
  const g = `contactid eq ${A} or contactid eq ${B} and hlf_portalvisible eq true`;
  assertEquals(matches(g, A, false), true);
  assertEquals(matches(g, B, false), false);
  assertEquals(
    matches(`(contactid eq ${A} or contactid eq ${B}) and hlf_portalvisible eq true`, A),
    false,
  );
  assertEquals(matches(`not (contactid eq ${A})`, A), false);
  assertEquals(matches(`contactid ne ${A}`, B), true);
});

Deno.test("syntax errors are FilterErrors", () => {
  for (
    const bad of [
      "",
      "contactid eq",
      `contactid = ${A}`,
      `contactid eq ${A} or`,
      `(contactid eq ${A}`,
      "contactid eq 'unterminated",
      `Microsoft.Dynamics.CRM.In(PropertyName='contactid',PropertyValues=[])`,
      `contactid in ('${A}')`,
      `contactid eq not-a-guid`,
      `contactid eq ${A} $`,
    ]
  ) {
    assertThrows(() => parseFilter(bad), FilterError, undefined, bad);
  }
});

Deno.test("type and property checks", () => {
  const check = (f: string) => checkFilter(parseFilter(f), SCHEMA);
  assertThrows(() => check(`contactid eq '${A}'`), FilterError, "Edm.String");
  assertThrows(
    () => check(`fullname eq 'x'`),
    FilterError,
    "Could not find a property named 'fullname'",
  );
  assertThrows(() => check(`hlf_portalvisible eq ${A}`), FilterError, "incompatible");
  assertThrows(
    () => check(`Microsoft.Dynamics.CRM.In(PropertyName='contactid',PropertyValues=['nope'])`),
    FilterError,
    "Invalid value 'nope'",
  );
  assertThrows(
    () => check(`Microsoft.Dynamics.CRM.In(PropertyName='emailaddress1',PropertyValues=['x'])`),
    FilterError,
    "emailaddress1",
  );
  check(`contactid eq ${A} and hlf_portalvisible eq false`);
});

Deno.test("quoted strings unescape doubled quotes", () => {
  assertEquals(parseFilter("x eq 'it''s'"), {
    op: "eq",
    property: "x",
    value: { type: "string", value: "it's" },
  });
});
