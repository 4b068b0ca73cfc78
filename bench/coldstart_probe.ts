// Cold-start breakdown: a bare Deno.serve that first imports the pieces named in PROBE_IMPORTS
// (comma list of postgres, jose, core), so each piece's share of the function's cold start shows.
const imports = (Deno.env.get("PROBE_IMPORTS") ?? "").split(",").filter(Boolean);
for (const name of imports) {
  if (name === "postgres") await import("postgres");
  else if (name === "jose") await import("jose");
  else if (name === "core") await import("../supabase/functions/_shared/core.ts");
  else throw new Error(`unknown probe import ${name}`);
}
const port = Number(Deno.env.get("PORT"));
Deno.serve({ port, hostname: "127.0.0.1", onListen: () => {} }, () => new Response("hello"));
