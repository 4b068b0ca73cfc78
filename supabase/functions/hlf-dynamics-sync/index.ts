// Edge Function entry point: configuration from the environment, then Deno.serve.
// Routing, auth and actions live in ../_shared/ (see app.ts).
import { createHandler } from "../_shared/app.ts";
import { createContext } from "../_shared/context.ts";
import { loadSettings } from "../_shared/settings.ts";

const handler = createHandler(createContext(loadSettings()));
const port = Number(Deno.env.get("PORT") ?? "") || undefined;
Deno.serve({ port, hostname: port ? "127.0.0.1" : undefined, onListen: () => {} }, handler);
