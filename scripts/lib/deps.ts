// Pre-fetches the npm packages the function and tests import, so a test run needs no registry.
// `scripts/setup.sh` runs `deno cache` on this file.
import "postgres";
import "jose";
import "@supabase/supabase-js";
import "npm:ajv@8.20.0";
import "npm:yaml@2.9.1";
