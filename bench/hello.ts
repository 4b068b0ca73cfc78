// The cold-start baseline: a bare Deno.serve hello, started exactly like the function.
const port = Number(Deno.env.get("PORT"));
Deno.serve({ port, hostname: "127.0.0.1", onListen: () => {} }, () => new Response("hello"));
