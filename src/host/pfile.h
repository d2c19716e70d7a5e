/*
 * pfile.h - reading a file of a plugin folder, and nothing outside it.
 *
 * A plugin folder comes from whoever wrote the plugin: its files may be
 * symlinks to /etc/passwd or /proc/self/environ, a FIFO that never
 * answers, or a folder linked to /etc. Every file the host reads on a
 * plugin's behalf (plugin.json, main, and any module a loader adds) goes
 * through plugin_read_file, which reads a file only when
 *   - the real path of the file (every symlink resolved) lies inside the
 *     real path of the folder: a symlink that stays inside is fine;
 *   - what was opened is that same file: it is opened relative to the
 *     folder with openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS), so a
 *     component swapped for a symlink between the check and the open makes
 *     the open fail instead of leaving the folder;
 *   - it is a regular file (checked with fstat on the open descriptor; a
 *     FIFO or device is opened O_NONBLOCK, so the open cannot hang) that
 *     is not on procfs or sysfs;
 *   - it is at most max bytes (checked on the size and again while reading,
 *     for a file that grows).
 * Error messages name the file as given (dir/relpath) and the reason; they
 * never carry the file's contents, nor where an outside symlink leads.
 */
#ifndef TXS_PFILE_H
#define TXS_PFILE_H

#include <stdbool.h>
#include <stddef.h>

/* Reads dir/relpath (relpath: relative, e.g. "index.js" or "lib/a.js"; no
 * leading '/'). On success returns 0 with *buf malloc'ed, NUL-terminated,
 * *len bytes (the NUL not counted). On failure returns a negative
 * txs_error_code (TXS_EIO: missing or unreadable; TXS_EINVAL: outside the
 * folder, not a regular file, or over max) with *err malloc'ed ("dir/relpath:
 * reason"; NULL if even that could not be allocated) and *buf NULL.
 * Any thread; no global state. */
int plugin_read_file(const char *dir, const char *relpath, size_t max, char **buf, size_t *len,
                     char **err);

/* Tests only: true makes every open take the fallback for kernels without
 * openat2 (set before any read, from one thread). */
extern bool plugin_read_file_without_openat2;

#endif
