// Checks that a results.json from scripts/bench.sh is well formed and complete: every figure of
// bench/figures.ts present once, with a finite value, a unit, a baseline, a target and a met flag.
// It never checks the values against their targets (tests do not assert times; the bench reports).
//   deno run --allow-read bench/check_results.ts bench/results.json
import { FIGURE_IDS } from "./figures.ts";

export function checkResults(json: unknown): string[] {
  const problems: string[] = [];
  if (typeof json !== "object" || json === null) return ["not a JSON object"];
  const r = json as Record<string, unknown>;
  if (r.mode !== "quick" && r.mode !== "full") problems.push(`mode is ${JSON.stringify(r.mode)}`);
  if (typeof r.generated_at !== "string") problems.push("generated_at missing");
  if (!Array.isArray(r.figures)) return [...problems, "figures is not an array"];
  const seen = new Map<string, number>();
  for (const f of r.figures as Record<string, unknown>[]) {
    const id = String(f?.id);
    seen.set(id, (seen.get(id) ?? 0) + 1);
    if (typeof f.value !== "number" || !Number.isFinite(f.value)) {
      const error = (f.details as Record<string, unknown> | undefined)?.error;
      problems.push(
        `${id}: value is not a number${error ? ` (${String(error).split("\n")[0]})` : ""}`,
      );
    }
    for (const key of ["figure", "unit", "baseline", "target"]) {
      if (typeof f[key] !== "string" || f[key] === "") problems.push(`${id}: ${key} missing`);
    }
    if (typeof f.met !== "boolean" && f.met !== null) problems.push(`${id}: met missing`);
  }
  for (const id of FIGURE_IDS) {
    const n = seen.get(id) ?? 0;
    if (n !== 1) problems.push(`${id}: present ${n} times`);
  }
  for (const id of seen.keys()) {
    if (!(FIGURE_IDS as readonly string[]).includes(id)) problems.push(`${id}: unknown figure`);
  }
  return problems;
}

if (import.meta.main) {
  const path = Deno.args[0] ?? "bench/results.json";
  const problems = checkResults(JSON.parse(await Deno.readTextFile(path)));
  for (const p of problems) console.error(`not ok - ${p}`);
  if (problems.length === 0) console.log(`ok - ${path}: all ${FIGURE_IDS.length} figures present`);
  Deno.exit(problems.length === 0 ? 0 : 1);
}
