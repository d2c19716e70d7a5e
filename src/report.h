/*
 * report.h - findings validation, verdict and the report JSON (DESIGN §5).
 */
#ifndef TXS_REPORT_H
#define TXS_REPORT_H

#include "txscan.h"

#include <jansson.h>

/* One plugin's answer, as the host hands it over. */
typedef struct report_outcome {
	const char *plugin;
	txs_status status;
	const char *json; /* status OK: the handler's result */
	size_t json_len;
	const char *error;
	double ms;
} report_outcome;

/* txid: the input's hash/id (borrowed; NULL or json null for none). line 0
 * is omitted. A plugin whose result is not valid findings turns "error". */
txs_report *report_build(json_t *txid, uint64_t line, double ms, const report_outcome *o,
                         size_t n);

/* {"line": 7, "error": "invalid JSON: ..."} (line omitted when 0). */
txs_report *report_input_error(uint64_t line, const char *message);

#endif
