/*
 * report.h - findings validation, verdict and the report JSON (DESIGN §5).
 */
#ifndef TXS_REPORT_H
#define TXS_REPORT_H

#include "findings.h"
#include "txscan.h"

#include <jansson.h>

/* A plugin's error in a report, in bytes (the engine's cut, 16 KiB). */
#define REPORT_ERROR_MAX 16384

/* One plugin's share of a report: its status, and its findings already
 * validated and serialised (tagged with the plugin id). Prepared by
 * report_part_set on the thread that received the answer, so fan-outs
 * validate in parallel and report_build only concatenates. */
typedef struct report_part {
	txs_status status;
	char *error;         /* owned; NULL when OK */
	char *findings;      /* owned: comma-separated finding objects; NULL for none */
	size_t findings_len;
	finding_ref *refs;   /* owned: where each finding's code is in findings */
	size_t nrefs;
	txs_severity top;    /* highest severity among the findings */
	double ms;
	uint64_t generation; /* the engine's that answered (0: none) */
} report_part;

/* Takes over res (its strings are freed or kept by part). A result that is
 * not valid findings turns the part into status "error" naming the field. */
void report_part_set(report_part *part, const char *plugin, txs_scan_result *res);
void report_part_clear(report_part *part);

/* txid: the input's hash/id (borrowed; NULL or json null for none). line 0
 * is omitted. ids[i] names parts[i]. */
txs_report *report_build(json_t *txid, uint64_t line, double ms, const char *const *ids,
                         const report_part *parts, size_t n);

/* {"line": 7, "error": "invalid JSON: ..."} (line omitted when 0). */
txs_report *report_input_error(uint64_t line, const char *message);

/* The report delivered when memory ran out building the real one: not an
 * input error, never complete. Static: txs_report_free ignores it. */
txs_report *report_oom(void);

#endif
