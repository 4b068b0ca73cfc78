// The figures a complete benchmark run reports (bench/bench.ts produces them, in this order;
// bench/check_results.ts checks a results.json against this list).
export const FIGURE_IDS = [
  "module_size_kb",
  "cold_start_ratio",
  "queue_jobs_per_s",
  "queue_cpu_ms_per_job",
  "drain_rate_pct",
  "throttle_429_per_window",
  "throttle_time_ratio",
  "e2e_latency_p50_ms",
  "e2e_latency_p99_ms",
  "trigger_overhead_pct",
  "claim_latency_ratio",
  "reconcile_requests_pct",
  "reconcile_peak_rss_mb",
  "reconcile_wall_s",
  "reconcile_invocations",
  "expiry_db_ms_per_invocation",
] as const;
