/*
 * folders.h - which folders hold plugins, and the list of plugins that
 * failed to load (for txs_host_load, src/host/host.c).
 */
#ifndef TXS_FOLDERS_H
#define TXS_FOLDERS_H

#include <stdbool.h>
#include <stddef.h>

typedef void (*folders_notice_fn)(const char *level, const char *message, void *userdata);

/* Plugin folders under path: path itself when it holds plugin.json, else
 * its subfolders that do (sorted; hidden ones skipped). A subfolder
 * without plugin.json (src/, node_modules/, notes/) is skipped with a
 * "warn" notice (notice may be NULL). 0 with *dirs malloc'ed (free with
 * folders_free), or a txs_error_code after txs_fail when path is not a
 * folder or holds no plugin folder at all. */
int folders_list(const char *path, char ***dirs, size_t *n, folders_notice_fn notice,
                 void *userdata);
void folders_free(char **dirs, size_t n);

/* The folder's own name when it is a valid plugin id ([a-z0-9-]{1,64}):
 * the id a plugin whose manifest cannot be read is listed under. Written
 * to buf (65 bytes); NULL when it is not valid. */
const char *folders_id(const char *dir, char buf[65]);

/* Load failures, one line each, for txs_last_error(). */
typedef struct failures {
	char *text;    /* lines joined by '\n'; NULL when none */
	size_t len;
	size_t count;   /* failures added */
	size_t dropped; /* not in text: it was full */
	int first_rc;
	bool fatal;     /* one that allow_partial cannot start without */
} failures;

/* Adds msg as one line (control characters, newlines included, become
 * spaces). The text stays within what txs_last_error() holds; what does
 * not fit is counted and named by a last line. */
void failures_add(failures *f, int rc, const char *msg);
/* Sets txs_last_error() to the lines and returns the first failure's code. */
int failures_raise(const failures *f);
void failures_clear(failures *f);

#endif
