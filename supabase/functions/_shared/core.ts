// Loads the Rust core (pkg/, built by scripts/build.sh) synchronously from its bytes.
// wasm-bindgen's own Deno loader streams the module with fetch(import.meta.url), which breaks in
// Supabase's edge runtime (wasm-bindgen#4794, edge-runtime#640); reading the file and calling
// initSync works in both the edge runtime and stock Deno.
import { initSync } from "../../../pkg/hlf_dynamics_sync.js";

export {
  desiredVisibility,
  DynamicsClient,
  validateConfig,
} from "../../../pkg/hlf_dynamics_sync.js";
export type {
  AttemptRecord,
  CallError,
  CallOptions,
  CallReport,
  ClaimedJob,
  ClientConfig,
  ClientIo,
  Credentials,
  JobOutcome,
  JobReport,
  LogEntry,
  MentorFacts,
  QueuePolicy,
} from "../../../pkg/hlf_dynamics_sync.d.ts";

/** Where the optimised module lives. */
export const WASM_URL = new URL("../../../pkg/hlf_dynamics_sync_bg.wasm", import.meta.url);

initSync({ module: Deno.readFileSync(WASM_URL) });
