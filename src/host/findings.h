/*
 * findings.h - validates a plugin's answer and writes its findings as report
 * JSON, in one pass over the text, without building a tree.
 */
#ifndef TXS_FINDINGS_H
#define TXS_FINDINGS_H

#include "util/sbuf.h"
#include "txscan.h"

#include <stddef.h>

#define FINDINGS_MAX_CODE 128
#define FINDINGS_MAX_MESSAGE 4096
#define FINDINGS_MAX 1000

/* Where a finding's code is in the text findings_collect wrote (its
 * characters, no quotes: a valid code needs no escapes), and its severity. */
typedef struct finding_ref {
	size_t code_at;
	size_t code_len;
	txs_severity severity;
} finding_ref;

/* json is what scanTransaction returned, as JSON text: null, one
 * finding or an array of findings. Appends the findings to out as
 * comma-separated objects tagged {"plugin": plugin, code, severity, message,
 * metadata} (strings re-escaped canonically, metadata copied as written) and
 * sets *top to the highest severity. refs (may be NULL) gets a finding_ref
 * for each finding, offsets into out. Returns NULL, or what is wrong
 * (malloc'ed; out then holds nothing useful): text that is not JSON, or the
 * first finding that is not valid, naming the field. */
char *findings_collect(sbuf *out, sbuf *refs, const char *plugin, const char *json, size_t len,
                       txs_severity *top);

#endif
