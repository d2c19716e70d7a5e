/*
 * folders.c - plugin folders under a path, and the list of load failures.
 *
 * A folder of plugin folders often holds other things too (a shared src/,
 * node_modules/, notes/): a subfolder is a plugin folder when it has an
 * entry named plugin.json (whatever it is: a broken one must fail loudly,
 * not be skipped), and any other subfolder is skipped with a notice.
 *
 * Failures are collected so that one load names every broken plugin at
 * once, one line each, within the room txs_last_error() has.
 */
#define _GNU_SOURCE
#include "folders.h"

#include "txscan.h"
#include "util/error.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* What txs_last_error() can hold (src/util/error.c), less a last line. */
#define FAILURES_ROOM (16384 - 128)

static bool has_manifest(const char *dir)
{
	char probe[4096];
	struct stat st;
	if ((size_t)snprintf(probe, sizeof probe, "%s/plugin.json", dir) >= sizeof probe)
		return false;
	return fstatat(AT_FDCWD, probe, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

static void skipped(const char *dir, folders_notice_fn notice, void *ud)
{
	char msg[4200];
	if (!notice)
		return;
	snprintf(msg, sizeof msg, "%s: skipped: no plugin.json in it (not a plugin folder)", dir);
	notice("warn", msg, ud);
}

/* Subfolders of path (not hidden) that hold plugin.json, into dirs. */
static int scan_subfolders(const char *path, char **dirs, struct dirent **ents, int k,
                           size_t *n, folders_notice_fn notice, void *ud)
{
	char sub[4096];
	struct stat st;
	int rc = 0;
	for (int i = 0; i < k; i++) {
		const char *name = ents[i]->d_name;
		bool fits = (size_t)snprintf(sub, sizeof sub, "%s/%s", path, name) < sizeof sub;
		if (!rc && fits && name[0] != '.' && stat(sub, &st) == 0 && S_ISDIR(st.st_mode)) {
			if (!has_manifest(sub))
				skipped(sub, notice, ud);
			else if (!(dirs[*n] = strdup(sub)))
				rc = txs_fail(TXS_ENOMEM, "out of memory");
			else
				++*n;
		}
		free(ents[i]);
	}
	free(ents);
	return rc;
}

int folders_list(const char *path, char ***dirs, size_t *n, folders_notice_fn notice, void *ud)
{
	struct stat st;
	struct dirent **ents;
	*dirs = NULL;
	*n = 0;
	if (stat(path, &st) != 0)
		return txs_fail(TXS_EIO, "%s: not a plugin folder: %s", path, strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return txs_fail(TXS_EIO, "%s: not a plugin folder: not a directory", path);
	if (has_manifest(path)) {
		*dirs = malloc(sizeof **dirs);
		if (!*dirs || !((*dirs)[0] = strdup(path))) {
			free(*dirs);
			*dirs = NULL;
			return txs_fail(TXS_ENOMEM, "out of memory");
		}
		*n = 1;
		return 0;
	}
	int k = scandir(path, &ents, NULL, alphasort);
	if (k < 0)
		return txs_fail(TXS_EIO, "%s: cannot list: %s", path, strerror(errno));
	*dirs = calloc((size_t)k + 1, sizeof **dirs);
	int rc = *dirs ? scan_subfolders(path, *dirs, ents, k, n, notice, ud)
	               : txs_fail(TXS_ENOMEM, "out of memory");
	if (!rc && !*n)
		rc = txs_fail(TXS_EINVAL, "%s: no plugin.json and no plugin folders in it", path);
	if (rc) {
		folders_free(*dirs, *n);
		*dirs = NULL;
		*n = 0;
	}
	return rc;
}

void folders_free(char **dirs, size_t n)
{
	for (size_t i = 0; dirs && i < n; i++)
		free(dirs[i]);
	free(dirs);
}

const char *folders_id(const char *dir, char buf[65])
{
	size_t end = strlen(dir);
	while (end > 1 && dir[end - 1] == '/')
		end--;
	size_t start = end;
	while (start > 0 && dir[start - 1] != '/')
		start--;
	size_t n = end - start;
	if (n < 1 || n > 64)
		return NULL;
	for (size_t i = start; i < end; i++)
		if (!((dir[i] >= 'a' && dir[i] <= 'z') || (dir[i] >= '0' && dir[i] <= '9') ||
		      dir[i] == '-'))
			return NULL;
	memcpy(buf, dir + start, n);
	buf[n] = '\0';
	return buf;
}

void failures_add(failures *f, int rc, const char *msg)
{
	if (!f->count++)
		f->first_rc = rc;
	size_t n = strlen(msg ? msg : "");
	char *grown = f->len + n + 2 <= FAILURES_ROOM ? realloc(f->text, f->len + n + 2) : NULL;
	if (!grown) {
		f->dropped++;
		return;
	}
	f->text = grown;
	if (f->len)
		f->text[f->len++] = '\n';
	for (size_t i = 0; i < n; i++)
		f->text[f->len++] = (unsigned char)msg[i] < 0x20 || msg[i] == 0x7f ? ' ' : msg[i];
	f->text[f->len] = '\0';
}

int failures_raise(const failures *f)
{
	if (f->dropped)
		return txs_fail(f->first_rc, "%s\n... and %zu more plugins failed (not listed: the list "
		                "is full)", f->text ? f->text : "", f->dropped);
	return txs_fail_msg(f->first_rc, f->text ? f->text : "load failed");
}

void failures_clear(failures *f)
{
	free(f->text);
	*f = (failures){0};
}
