/* error.h - the per-thread last error behind txs_last_error(). */
#ifndef TXS_ERROR_H
#define TXS_ERROR_H

#include "txscan.h"

/* Records a printf-style message for txs_last_error() and returns code. */
int txs_fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Records msg verbatim (may be NULL) and returns code. */
int txs_fail_msg(int code, const char *msg);

#endif
