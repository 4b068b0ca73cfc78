# End-to-end suite, sourced by scripts/lib/suites.sh (conventions there: suite_NAME runs it,
# count_NAME LOG prints "passed failed"). Real PostgreSQL + the real function processes + the
# HTTPS mock of Azure AD and Dataverse: supabase/tests/e2e/ (harness.ts creates and drops a fresh
# database per test file on the cluster of $DATABASE_URL).
# shellcheck shell=bash

suite_e2e() { deno_db_suite supabase/tests/e2e/; }
count_e2e() { deno_counts "$1"; }
