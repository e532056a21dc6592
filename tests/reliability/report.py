"""Renders the figures the reliability suite wrote (tests/reliability/results/*.json) as the Markdown table in
docs/reliability.md: ``python -m tests.reliability.report``."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.support.reliability import RESULTS_DIR

Row = tuple[str, str, Callable[[dict[str, Any]], str]]


def _responses(d: dict[str, Any]) -> str:
    return ", ".join(f"{n}×{k}" for k, n in sorted(d.items()))


def _broker(r: dict[str, Any]) -> str:
    return r.get("broker") or "Tansu (memory) behind a TCP proxy"


# What both fuzzing runs (default and deep) found: the second row of each.
_FUZZ_FINDINGS: Row = (
    "",
    "server errors / schema violations / unmasked phone or ID",
    lambda r: (
        f"**{r['server_errors']} / {r['response_schema_violations']} / {r['unmasked_phone_or_id_in_responses']}**"
    ),
)

ROWS: dict[str, list[Row]] = {
    "broker_crash": [
        (
            "Broker SIGKILLed and restarted on its log",
            "events written / broker down (incl. log recovery)",
            lambda r: (
                f"{r['events_written']:,} at {r['rate_per_second']:.0f}/s, all {_responses(r['responses'])}; "
                f"down {r['broker_down_seconds_incl_log_recovery']} s ({_broker(r)})"
            ),
        ),
        (
            "",
            "lost / duplicate effects",
            lambda r: (
                f"**{r['lost']} / {r['duplicate_issues']}**; "
                f"{r['consumer_duplicates_absorbed']} redeliveries absorbed by the inbox"
            ),
        ),
        (
            "",
            "idempotent producer: records on the topic",
            lambda r: (
                f"missing {r['records_on_topic_missing']}, more than once **{r['records_on_topic_more_than_once']}**"
            ),
        ),
    ],
    "broker_outage": [
        (
            "Broker down while events are written",
            "events written / outage",
            lambda r: (
                f"{r['events_written']:,} in {r['outage_seconds']} s, all {_responses(r['responses'])} ({_broker(r)})"
            ),
        ),
        (
            "",
            "lost / duplicate effects",
            lambda r: (
                f"**{r['lost']} / {r['duplicate_issues']}** "
                f"(duplicate IssueCreated events {r['duplicate_issue_created_events']})"
            ),
        ),
        (
            "",
            "time to drain after the broker returns",
            lambda r: f"**{r['time_to_drain_seconds']} s** (relay backoff cap {r['relay_max_backoff_seconds']:.0f} s)",
        ),
        (
            "",
            "write latency while the broker is down",
            lambda r: f"p50 {r['write_latency_ms_p50']} ms, p99 {r['write_latency_ms_p99']} ms",
        ),
    ],
    "broker_data_loss": [
        (
            "Broker came back empty (acknowledged events lost)",
            "detected",
            lambda r: (
                f"{r['offset_resets_beyond_end']} partitions' offsets beyond the log's end → rewound, "
                f"`minsheng_consumer_offset_resets_total` in {r['detected_in_seconds']} s ({r['broker']})"
            ),
        ),
        (
            "",
            "`outbox resend --since` → lost / duplicate effects",
            lambda r: (
                f"{r['lost_before_resend']} lost before; {r['resent']} re-sent → **{r['lost']} / "
                f"{r['duplicate_issues']}** (duplicate IssueCreated events {r['duplicate_issue_created_events']}; "
                f"{r['consumer_duplicates_absorbed']} re-sent events dropped by the inbox)"
            ),
        ),
    ],
    "process_killed": [
        (
            "Service SIGKILLed between commit and publish",
            "rows stranded by the kill → re-sent after restart",
            lambda r: (
                f"{r['phase1_outbox_rows_stranded']} → {r['phase1_issues']} issues in "
                f"{r['phase1_seconds_to_resend_after_restart']} s; lost {r['phase1_lost']}, "
                f"duplicates {r['phase1_duplicate_issues']}"
            ),
        ),
        (
            "",
            "killed mid-stream",
            lambda r: (
                f"{r['phase2_accepted_201']} answered 201, "
                f"{r['phase2_no_answer_at_kill']} cut off by the kill; {r['phase2_committed']} committed → "
                f"{r['phase2_issues']} issues; lost **{r['phase2_lost']}**, "
                f"duplicates **{r['phase2_duplicate_issues']}**"
            ),
        ),
    ],
    "consumer_rebalance": [
        (
            "Consumers join and leave mid-stream",
            "membership changes",
            lambda r: (
                f"{r['membership_changes']} ({r['partitions']} partitions, {r['stream']} events; "
                f"{_broker(r)} group coordinator)"
            ),
        ),
        (
            "",
            "lost / duplicate effects",
            lambda r: (
                f"**{r['lost']} / {r['duplicate_issues']}**; "
                f"{r['redeliveries_absorbed_by_inbox_in_surviving_process']:.0f} redeliveries absorbed by the inbox"
            ),
        ),
    ],
    "topic_metadata": [
        (
            "Topics from the topic job",
            "partitions and retention on the broker vs the plan",
            lambda r: (
                f"{r['topics']} topics, event topics {r['event_topic_partitions']} partitions: mismatches "
                f"**{r['mismatches_after_job']}** after the job, **{r['mismatches_after_services_started']}** "
                f"after the services started (issues consumer on {r['issues_consumer_partitions']} partitions; "
                f"{_broker(r)})"
            ),
        ),
        (
            "",
            "partitions changed by the job run again / after the services created the topics",
            lambda r: (
                f"**{r['partitions_changed_by_second_job_run']} / {r['partitions_changed_by_job_after_services']}**"
                f" (services' default {r['services_first_default_partitions']} = the job's)"
            ),
        ),
    ],
    "poison_message": [
        (
            "Poison messages in one partition",
            "dead letters",
            lambda r: "; ".join(
                f"{d['attempts']} attempt{'s' if d['attempts'] > 1 else ''}: {d['error'].split(':')[0]}"
                for d in r["dead_letters"]
            ),
        ),
        (
            "",
            "the rest of the partition",
            lambda r: (
                f"{r['issues']}/{r['good_events']} handled, in order: "
                f"{'yes' if r['good_handled_in_order'] else 'no'}; held {r['partition_held_by_poison_seconds']} s "
                f"({r['handler_max_attempts']} attempts, base {r['handler_retry_base_seconds']} s)"
            ),
        ),
    ],
    "database_restart": [
        (
            "PostgreSQL restarted mid-flow",
            "responses while it was away",
            lambda r: (
                f"{_responses(r['responses'])} over {r['database_down_seconds']} s down; "
                f"clean 503 problems {r['refused_clean_503_problem']}/{r['refused']}; 500s **{r['server_errors_500']}**"
            ),
        ),
        (
            "",
            "recovery",
            lambda r: (
                f"first success {r['first_success_after_database_back_seconds']} s after it "
                f"was back; refused after: {r['refused_after_database_back']}; no manual step"
            ),
        ),
        (
            "",
            "partial writes",
            lambda r: (
                f"{r['reports_stored']} reports for {r['distinct_requests']} requests "
                f"(retried with their keys); without their event {r['reports_without_their_event']}, with two "
                f"{r['reports_with_more_than_one_event']}; issues lost {r['lost']}"
            ),
        ),
    ],
    "ledger_state_machine": [
        (
            "Ledger state machine",
            "runs × steps",
            lambda r: (
                f"{r['runs']} × ≤{r['max_steps_per_run']}: "
                + ", ".join(f"{k} {v}" for k, v in sorted(r["steps_by_rule"].items()))
            ),
        ),
        ("", "balance = Σ entries = model, ≥ 0", lambda r: f"**{r['invariant_violations']} violations**"),
    ],
    "points_concurrency": [
        (
            "Concurrent redemptions (PostgreSQL)",
            "one balance, simultaneous redemptions",
            lambda r: (
                f"{r['concurrent_redemptions']} × {r['points_cost']} pts on {r['start_balance']}: "
                f"{_responses(r['responses'])}; balance {r['balance_after']} = Σ entries {r['sum_of_entries']} "
                f"in {r['seconds']} s"
            ),
        ),
        (
            "",
            "one Idempotency-Key × 50 at once",
            lambda r: (
                f"{r['same_key_distinct_redemptions']} redemption, "
                f"{r['same_key_points_debited']} debit; other body → {r['same_key_other_body_status']} "
                f"{r['same_key_other_body_code']}"
            ),
        ),
    ],
    "merchant_security": [
        (
            "Merchant signatures",
            "forged requests → 401",
            lambda r: (
                f"**{r['refused_401']}/{r['forged_requests']}** (stale/future timestamp, tampered body, "
                f"unknown key, wrong secret, none, reused nonce); accepted {r['accepted']}"
            ),
        ),
        (
            "Rate limits",
            "merchant / rider",
            lambda r: (
                f"{_responses(r['merchant_rate']['responses'])} (burst "
                f"{r['merchant_rate']['burst']}) / {_responses(r['rider_rate']['responses'])} (burst "
                f"{r['rider_rate']['burst']}); Retry-After {','.join(r['rider_rate']['retry_after'])} s"
            ),
        ),
    ],
    "merchant_isolation": [
        (
            "Another merchant",
            "read / void a redemption, change an offer, redeem on it",
            lambda r: (
                " / ".join(str(v) for v in r["attempts"].values())
                + f"; points moved {r['balance_moved']}, sees {r['other_merchant_lists']} of the other's redemptions"
            ),
        ),
    ],
    "api_fuzz": [
        (
            "API fuzzing (schemathesis, default run)",
            "operations / requests",
            lambda r: (
                f"{r['operations']} / {r['requests']:,} ({', '.join(r['roles'])}, "
                f"{r['examples_per_operation']} examples each)"
            ),
        ),
        _FUZZ_FINDINGS,
    ],
    "api_fuzz_deep": [
        (
            "API fuzzing (deep run)",
            "operations / requests",
            lambda r: (
                f"{r['operations']:,} / {r['requests']:,} ({len(r['roles'])} roles, "
                f"{r['examples_per_operation']} examples each)"
            ),
        ),
        _FUZZ_FINDINGS,
    ],
    "open311_fuzz": [
        (
            "Open311 POST Service Request, generated forms",
            "requests / accepted / server errors",
            lambda r: (
                f"{r['generated_requests']} / {r['created']} / **{r['server_errors']}**; answers not in the "
                f"Open311 shape {r['not_open311_shape']}; phones in public reads **{r['phones_in_public_reads']}**"
            ),
        ),
    ],
    "authorization_matrix": [
        (
            "Authorization matrix",
            "operations; calls",
            lambda r: (
                f"{r['operations']} operations; {r['unauthenticated_calls']} without a token, "
                f"{r['wrong_role_calls']} with a wrong role, {r['outsider_list_calls'] + r['outsider_object_calls']} "
                f"as outsiders on {r['scoped_objects_seen']} objects of other scopes (+ "
                f"{r.get('outsider_writes_retried_with_generated_bodies', 0)} writes with schema-generated bodies)"
            ),
        ),
        (
            "",
            "not 401 / wrong role admitted / cross-scope reads or writes",
            lambda r: (
                f"**{r['unauthenticated_not_401']} / {r['wrong_role_admitted']} / "
                f"{r['cross_scope_list_items'] + r['cross_scope_object_access']}**"
            ),
        ),
    ],
    "personal_data": [
        (
            "Personal data (PIPL)",
            "ID numbers / health notes in clear in any database file",
            lambda r: (
                f"**{r['at_rest_cleartext_hits']}**; keyed-hash look-ups: {'yes' if r['keyed_lookup_hash'] else 'no'}"
            ),
        ),
        (
            "",
            "reveals audited",
            lambda r: (
                f"visits {r['reveal_audit_records']}/{r['reveals_with_permission']} "
                f"(**{r['audit_coverage_percent']} %**, refused without `pii:reveal`), canteen "
                f"{r['canteen_access_log_records']}/{r['canteen_sensitive_reads']} (**"
                f"{r['canteen_access_coverage_percent']} %**)"
            ),
        ),
        (
            "",
            "events with plaintext personal data",
            lambda r: (
                f"**{r['events_with_plaintext_personal_data']}** of {r['events_scanned']} about the people concerned"
            ),
        ),
    ],
    "hostile_input": [
        (
            "Hostile input (issue 13 probes)",
            "extreme dates/times/months, bogus cursors, edge bodies",
            lambda r: (
                f"{r['requests']:,} requests on {r['endpoints']} endpoints: 5xx or not problem+json "
                f"**{r['server_errors_or_not_problem']}**"
            ),
        ),
    ],
    "csv_injection": [
        (
            "CSV formula injection",
            "formula cells in the staff export",
            lambda r: f"**{r['formula_cells_in_export']}** of {r['payloads']} payloads (=, +, -, @, tab, CR)",
        ),
    ],
    "unique_race": [
        (
            "Lost unique-constraint race",
            "concurrent creates of one team name",
            lambda r: f"{r['concurrent_creates']} → " + ", ".join(str(x) for x in r["statuses"]),
        ),
    ],
    "settlement_hash": [
        (
            "Closed settlement hash",
            "csv_sha256 = SHA-256 of the bytes served",
            lambda r: f"**{r['hash_matches_bytes_served']}/{r['closed_settlements_checked']}**",
        ),
    ],
    "key_rotation": [
        (
            "Field-key rotation (PostgreSQL)",
            "residents × 3 values, replicas",
            lambda r: (
                f"{r['residents']:,} × {r['values_per_resident']}, {r['replicas']} replicas: "
                f"**{r['rows_per_second']:,} rows/s** ({r['values_per_second']:,} values/s, {r['seconds']} s)"
            ),
        ),
        (
            "",
            "reads during the rotation ok / failed; left on the old key",
            lambda r: (
                f"{r['reads_during_rotation_ok']:,} / **{r['reads_during_rotation_failed']}**; "
                f"**{r['left_under_old_key']}**"
            ),
        ),
    ],
    "personal_data_at_rest": [
        (
            "Personal data at rest (embedded, SQLite)",
            "phones / ID numbers / health notes in clear",
            lambda r: (
                f"**{r['phones_id_numbers_health_notes_in_clear']}** in {r['values_scanned']:,} stored values "
                "(every column of every table)"
            ),
        ),
    ],
    "personal_data_at_rest_postgres": [
        (
            "Personal data at rest (PostgreSQL)",
            "phones / ID numbers / health notes in clear",
            lambda r: (
                f"**{r['phones_id_numbers_health_notes_in_clear']}** in {r['values_scanned']:,} stored values "
                "(every text column of every table)"
            ),
        ),
    ],
    "personal_data_retention": [
        (
            "Personal data retention",
            "resident gone 10 years / gone 26 days / still here",
            lambda r: (
                " / ".join(
                    "cleared" if not any(v) else "kept" if all(v) else "partly cleared"
                    for v in r["fields_kept"].values()
                )
                + f" (retention {r['retention_days']} days); look-up by ID number afterwards → "
                f"{r['lookup_after_retention']}"
            ),
        ),
    ],
}


def load(directory: Path = RESULTS_DIR) -> dict[str, dict[str, Any]]:
    return {p.stem: json.loads(p.read_text()) for p in sorted(directory.glob("*.json"))}


def table(results: dict[str, dict[str, Any]]) -> str:
    lines = ["| fault / property | figure | measured |", "|---|---|---|"]
    for name, rows in ROWS.items():
        if name not in results:
            continue
        for what, figure, render in rows:
            lines.append(f"| {what} | {figure} | {render(results[name])} |")
    return "\n".join(lines)


def machine(results: dict[str, dict[str, Any]]) -> str:
    any_result = next(iter(results.values()))
    m = any_result["machine"]
    return f"{m['nproc']} CPU cores ({m['cpu']}), {m['mem_gb']} GB RAM, Python {m['python']}"


if __name__ == "__main__":
    # python -m tests.reliability.report [DIR]: the table from DIR (default: the committed figures)
    results = load(Path(sys.argv[1]) if len(sys.argv) > 1 else RESULTS_DIR)
    print(f"Machine: {machine(results)}\n\n{table(results)}")
