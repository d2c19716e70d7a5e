/*
 * pfile.c - plugin_read_file: one file of a plugin folder, checked to be
 * inside it, regular and bounded (the rules are in pfile.h).
 *
 * The check is done twice, in two ways: realpath() gives a readable error
 * for a symlink that leads out, and the open itself, relative to a
 * descriptor of the folder with openat2(RESOLVE_BENEATH |
 * RESOLVE_NO_SYMLINKS) on the already resolved path, cannot leave the
 * folder whatever changed on disk in between. Kernels without openat2
 * (before 5.6, or a seccomp filter that refuses it) get openat(O_NOFOLLOW)
 * and the opened file's own path, read back from /proc/self/fd, checked
 * against the folder.
 */
#define _GNU_SOURCE
#include "pfile.h"

#include "txscan.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/magic.h>
#include <linux/openat2.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>

static int fail(char **err, int rc, const char *dir, const char *rel, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static int fail(char **err, int rc, const char *dir, const char *rel, const char *fmt, ...)
{
	char why[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof why, fmt, ap);
	va_end(ap);
	if (asprintf(err, "%s/%s: %s", dir, rel, why) < 0)
		*err = NULL;
	return rc;
}

/* The part of path below root, or NULL when path is not strictly inside. */
static const char *below(const char *root, const char *path)
{
	size_t n = strlen(root);
	if (n == 1 && root[0] == '/')
		return path[0] == '/' && path[1] ? path + 1 : NULL;
	if (strncmp(path, root, n) || path[n] != '/' || !path[n + 1])
		return NULL;
	return path + n + 1;
}

/* Fallback open: the final component is not followed, and the kernel's
 * name for what was opened must still be inside root. */
static int open_checked(int dfd, const char *sub, const char *root)
{
	int fd = openat(dfd, sub, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC | O_NOFOLLOW);
	char link[64], real[PATH_MAX];
	if (fd < 0)
		return -1;
	snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
	ssize_t n = readlink(link, real, sizeof real - 1);
	if (n > 0) {
		real[n] = '\0';
		if (below(root, real))
			return fd;
	}
	close(fd);
	errno = ELOOP;
	return -1;
}

bool plugin_read_file_without_openat2;

/* Opens sub (no symlink in it: it is a resolved path) below dfd. */
static int open_beneath(int dfd, const char *sub, const char *root)
{
	struct open_how how = {
	    .flags = O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC | O_NOFOLLOW,
	    .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
	};
	if (plugin_read_file_without_openat2)
		return open_checked(dfd, sub, root);
	long fd = syscall(SYS_openat2, dfd, sub, &how, sizeof how);
	if (fd < 0 && (errno == ENOSYS || errno == EPERM))
		return open_checked(dfd, sub, root);
	return (int)fd;
}

static bool pseudo_fs(int fd)
{
	struct statfs fs;
	return fstatfs(fd, &fs) != 0 || fs.f_type == PROC_SUPER_MAGIC ||
	       fs.f_type == SYSFS_MAGIC || fs.f_type == DEBUGFS_MAGIC;
}

static void size_text(size_t n, char *out, size_t cap)
{
	if (n >= (1u << 20) && n % (1u << 20) == 0)
		snprintf(out, cap, "%zu MiB", n >> 20);
	else if (n >= 1024 && n % 1024 == 0)
		snprintf(out, cap, "%zu KiB", n >> 10);
	else
		snprintf(out, cap, "%zu bytes", n);
}

/* Reads fd to its end, at most max bytes; -1 with errno EFBIG past max
 * (the file may have grown since fstat: the buffer never passes max + 1). */
static int read_all(int fd, size_t hint, size_t max, char **buf, size_t *len)
{
	size_t cap = (hint < max ? hint : max) + 1, n = 0;
	char *b = malloc(cap + 1);
	if (!b)
		return -1;
	for (;;) {
		if (n == cap) {
			size_t grown = cap * 2 < max + 1 ? cap * 2 : max + 1;
			char *g = n > max ? NULL : realloc(b, grown + 1);
			if (!g) {
				errno = n > max ? EFBIG : ENOMEM;
				break;
			}
			b = g;
			cap = grown;
		}
		ssize_t r = read(fd, b + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			if (r < 0)
				break;
			b[n] = '\0';
			*buf = b;
			*len = n;
			return 0;
		}
		n += (size_t)r;
	}
	free(b);
	return -1;
}

/* The open descriptor's checks, then its bytes. */
static int read_fd(int fd, const char *dir, const char *rel, size_t max, char **buf, size_t *len,
                   char **err)
{
	struct stat st;
	char lim[32];
	size_text(max, lim, sizeof lim);
	if (fstat(fd, &st) != 0)
		return fail(err, TXS_EIO, dir, rel, "cannot be read: %s", strerror(errno));
	if (!S_ISREG(st.st_mode))
		return fail(err, TXS_EINVAL, dir, rel, "not a regular file (%s)",
		            S_ISDIR(st.st_mode) ? "a folder" : S_ISFIFO(st.st_mode) ? "a FIFO"
		            : S_ISSOCK(st.st_mode) ? "a socket" : "a device");
	if (pseudo_fs(fd))
		return fail(err, TXS_EINVAL, dir, rel, "on a kernel file system (procfs or sysfs)");
	if ((unsigned long long)st.st_size > max)
		return fail(err, TXS_EINVAL, dir, rel, "larger than %s", lim);
	if (read_all(fd, (size_t)st.st_size, max, buf, len) == 0)
		return 0;
	if (errno == EFBIG)
		return fail(err, TXS_EINVAL, dir, rel, "larger than %s", lim);
	return fail(err, errno == ENOMEM ? TXS_ENOMEM : TXS_EIO, dir, rel, "cannot be read: %s",
	            strerror(errno));
}

int plugin_read_file(const char *dir, const char *rel, size_t max, char **buf, size_t *len,
                     char **err)
{
	char *root = NULL, *path = NULL, *real = NULL;
	int dfd = -1, fd = -1, rc;
	*buf = NULL;
	*err = NULL;
	if (!rel[0] || rel[0] == '/') {
		rc = fail(err, TXS_EINVAL, dir, rel, "not a relative path");
		goto out;
	}
	root = realpath(dir, NULL);
	if (!root || asprintf(&path, "%s/%s", dir, rel) < 0) {
		path = NULL;
		rc = fail(err, TXS_EIO, dir, rel, "the plugin folder cannot be resolved: %s",
		          strerror(errno));
		goto out;
	}
	real = realpath(path, NULL);
	const char *sub = real ? below(root, real) : NULL;
	if (!real)
		rc = fail(err, TXS_EIO, dir, rel, "cannot be read: %s", strerror(errno));
	else if (!strcmp(real, root))
		rc = fail(err, TXS_EINVAL, dir, rel, "not a regular file (the plugin folder itself)");
	else if (!sub)
		rc = fail(err, TXS_EINVAL, dir, rel, "leads outside the plugin folder (a symlink); "
		          "only files inside it are read");
	else if ((dfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 ||
	         (fd = open_beneath(dfd, sub, root)) < 0)
		rc = fail(err, errno == ELOOP || errno == EXDEV ? TXS_EINVAL : TXS_EIO, dir, rel,
		          "cannot be read: %s", errno == ELOOP || errno == EXDEV
		          ? "it changed into a symlink while being opened" : strerror(errno));
	else
		rc = read_fd(fd, dir, rel, max, buf, len, err);
out:
	if (fd >= 0)
		close(fd);
	if (dfd >= 0)
		close(dfd);
	free(real);
	free(path);
	free(root);
	return rc;
}
