# Chaos suite, sourced by scripts/lib/suites.sh (conventions there: suite_NAME runs it,
# count_NAME LOG prints "passed failed"). supabase/tests/chaos/: kill -9 loops, a PostgreSQL
# restart (on a private cluster the test starts itself), a Dataverse outage, a 429 storm, the
# token endpoint down, three competing processors, a bounded soak, and the cross-path secret
# hygiene test. Bounded: about a minute on 2 cores. CHAOS_SEED=N replays the random choices.
# shellcheck shell=bash

suite_chaos() { deno_db_suite supabase/tests/chaos/; }
count_chaos() { deno_counts "$1"; }
