/*
 * bundle.c - esbuild as a subprocess: the plugin's main and everything it
 * imports (its own files, its own node_modules) into one CommonJS file
 * and its source map.
 *
 * esbuild is a well-kept bundler and TypeScript transform (a hand-written
 * parser here would be a second, worse one). It runs with the plugin folder
 * as its working directory, an environment of PATH alone, stdin from
 * /dev/null, its output in a private temporary directory, and a time limit
 * (SIGKILL past it). --platform=browser makes it take the browser builds
 * and "exports" conditions of packages (ethers v6 and viem have Node
 * builds that import http, ws, crypto...). Its metafile lists every file it
 * read: each must be inside the plugin folder after realpath, or the load
 * fails (a package found in a parent folder's node_modules, a symlink out).
 * A Node built-in import fails with the importing file's position.
 */
#define _GNU_SOURCE
#include "bundle.h"

#include "txscan.h"
#include "util/error.h"
#include "util/sbuf.h"
#include "util/srcmap.h"

#include <errno.h>
#include <fcntl.h>
#include <glib.h>
#include <jansson.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define OUT_MAX (32u << 20)
#define STDERR_MAX (64u << 10)
#define TIMEOUT_MS 20000

static int fail(char **err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(char **err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	if (vasprintf(err, fmt, ap) < 0)
		*err = NULL;
	va_end(ap);
	return -1;
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);
	return n >= k && !strcmp(s + n - k, suffix);
}

/* package.json of dir says "type": "module". */
static bool type_module(const char *dir)
{
	char *path = NULL;
	if (asprintf(&path, "%s/package.json", dir) < 0)
		return false;
	json_t *pkg = json_load_file(path, 0, NULL);
	free(path);
	const char *t = pkg ? json_string_value(json_object_get(pkg, "type")) : NULL;
	bool esm = t && !strcmp(t, "module");
	json_decref(pkg);
	return esm;
}

/* An ES module statement at p (a line's first word): `import {`,
 * `import * as`, `import '...'`, `import x from` on one line, `export`
 * followed by a declaration, `default`, `{` or `*`. Prose that starts a line
 * with "import" inside a comment does not match. */
static bool esm_statement(const char *p, const char *end)
{
	static const char *const decl[] = {"default", "const ", "let ", "var ", "function",
	                                   "class ", "async ", "{", "*"};
	const char *nl = memchr(p, '\n', (size_t)(end - p));
	const char *eol = nl ? nl : end;
	if ((size_t)(eol - p) < 8)
		return false;
	bool imp = !memcmp(p, "import", 6), exp = !memcmp(p, "export", 6);
	if ((!imp && !exp) || (p[6] != ' ' && p[6] != '{' && p[6] != '*'))
		return false;
	const char *q = p + 6;
	while (q < eol && *q == ' ')
		q++;
	if (exp) {
		for (size_t i = 0; i < sizeof decl / sizeof decl[0]; i++)
			if ((size_t)(eol - q) >= strlen(decl[i]) && !memcmp(q, decl[i], strlen(decl[i])))
				return true;
		return false;
	}
	return q < eol && (strchr("{*'\"", *q) || memmem(q, (size_t)(eol - q), " from ", 6));
}

/* A line that starts (after blanks) with an ES module statement. Strings
 * and comments are not parsed: a false positive costs a bundling that
 * gives the same code back. */
static bool has_module_syntax(const char *s, size_t len)
{
	for (size_t i = 0; i < len;) {
		while (i < len && (s[i] == ' ' || s[i] == '\t'))
			i++;
		if (esm_statement(s + i, s + len))
			return true;
		const char *nl = memchr(s + i, '\n', len - i);
		i = nl ? (size_t)(nl - s) + 1 : len;
	}
	return false;
}

static bool exists(const char *dir, const char *base, size_t n, const char *suffix)
{
	char *path = NULL;
	struct stat st;
	bool ok = asprintf(&path, "%s/%.*s%s", dir, (int)n, base, suffix) >= 0 &&
	          stat(path, &st) == 0 && S_ISREG(st.st_mode);
	free(path);
	return ok;
}

/* CommonJS that requires a file of the plugin (require("./x") where x,
 * x.js or x/index.js exists beside main) or, in a folder with a
 * node_modules, anything: a self-contained bundle whose require() calls
 * are its own (browserify's) does not qualify. */
static bool requires_files(const char *dir, const char *main, const char *s, size_t len)
{
	struct stat st;
	char *nm = NULL;
	bool modules = asprintf(&nm, "%s/node_modules", dir) >= 0 && stat(nm, &st) == 0;
	free(nm);
	if (modules && memmem(s, len, "require(", 8))
		return true;
	const char *slash = strrchr(main, '/');
	char *here = NULL;
	if (asprintf(&here, "%s/%.*s", dir, slash ? (int)(slash - main) : 0, main) < 0)
		return false;
	bool found = false;
	for (const char *p = s, *end = s + len; !found && (p = memmem(p, (size_t)(end - p), "require(", 8));) {
		p += 8;
		char q = p < end ? *p : 0;
		const char *name = p + 1, *close = q == '\'' || q == '"' ? memchr(name, q, (size_t)(end - name)) : NULL;
		if (!close || *name != '.')
			continue;
		size_t n = (size_t)(close - name);
		found = exists(here, name, n, "") || exists(here, name, n, ".js") ||
		        exists(here, name, n, "/index.js");
	}
	free(here);
	return found;
}

bool bundle_needed(const char *dir, const char *main, const char *source, size_t len)
{
	static const char *const ts[] = {".ts", ".mts", ".cts", ".tsx", ".mjs", ".jsx"};
	for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++)
		if (ends_with(main, ts[i]))
			return true;
	if (ends_with(main, ".js") && type_module(dir))
		return true;
	/* a file that assigns module.exports is CommonJS, whatever its lines look like */
	bool cjs = memmem(source, len, "module.exports", 14) != NULL;
	return (!cjs && has_module_syntax(source, len)) || requires_files(dir, main, source, len);
}

char *bundle_url(const char *dir, const char *main)
{
	char *u = NULL;
	return asprintf(&u, "%s/%s (bundled)", dir, main) < 0 ? NULL : u;
}

void bundle_out_clear(bundle_out *b)
{
	free(b->code);
	free(b->map);
	memset(b, 0, sizeof *b);
}

/* ---- the subprocess ------------------------------------------------------ */

/* The esbuild to run: $TXS_ESBUILD, else the first on PATH, else NULL. */
static char *find_esbuild(void)
{
	const char *env = getenv("TXS_ESBUILD");
	if (env && *env)
		return access(env, X_OK) == 0 ? strdup(env) : NULL;
	const char *path = getenv("PATH");
	char *dirs = strdup(path && *path ? path : "/usr/local/bin:/usr/bin:/bin");
	char *found = NULL, *save = NULL;
	for (char *d = dirs ? strtok_r(dirs, ":", &save) : NULL; d && !found;
	     d = strtok_r(NULL, ":", &save)) {
		char *cand = NULL;
		if (asprintf(&cand, "%s/esbuild", d) >= 0 && access(cand, X_OK) == 0)
			found = cand;
		else
			free(cand);
	}
	free(dirs);
	return found;
}

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Reads fd to EOF into *out (at most STDERR_MAX kept) until deadline;
 * false when the time ran out. */
static bool drain(int fd, sbuf *out, uint64_t deadline)
{
	char buf[4096];
	for (;;) {
		uint64_t now = now_ms();
		if (now >= deadline)
			return false;
		struct pollfd p = {fd, POLLIN, 0};
		int r = poll(&p, 1, (int)(deadline - now));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return r == 0 ? false : true;
		ssize_t n = read(fd, buf, sizeof buf);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return true;
		if (out->len < STDERR_MAX)
			sb_put(out, buf, (size_t)n);
	}
}

static unsigned timeout_ms(void)
{
	const char *s = getenv("TXS_BUNDLE_TIMEOUT_MS");
	long v = s ? strtol(s, NULL, 10) : 0;
	return v > 0 ? (unsigned)v : TIMEOUT_MS;
}

/* Runs argv in dir with a clean environment; its stderr in *errout.
 * Its exit status, or -1 (could not run, or killed at the time limit:
 * *timed_out). */
static int run(char *const argv[], const char *dir, sbuf *errout, bool *timed_out)
{
	static char *const envp[] = {"PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8", NULL};
	int pipefd[2];
	*timed_out = false;
	if (pipe2(pipefd, O_CLOEXEC) != 0)
		return -1;
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, pipefd[1], 2);
	posix_spawn_file_actions_addchdir_np(&fa, dir);
	posix_spawn_file_actions_addclosefrom_np(&fa, 3); /* none of the host's descriptors */
	pid_t pid;
	int rc = posix_spawn(&pid, argv[0], &fa, NULL, argv, envp);
	posix_spawn_file_actions_destroy(&fa);
	close(pipefd[1]);
	if (rc != 0) {
		close(pipefd[0]);
		errno = rc;
		return -1;
	}
	if (!drain(pipefd[0], errout, now_ms() + timeout_ms())) {
		kill(pid, SIGKILL);
		*timed_out = true;
	}
	close(pipefd[0]);
	int st;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	return *timed_out || !WIFEXITED(st) ? -1 : WEXITSTATUS(st);
}

/* ---- what esbuild said --------------------------------------------------- */

static bool node_builtin(const char *name)
{
	static const char *const mods[] = {
	    "assert", "async_hooks", "buffer", "child_process", "cluster", "console", "constants",
	    "crypto", "dgram", "diagnostics_channel", "dns", "domain", "events", "fs", "http",
	    "http2", "https", "inspector", "module", "net", "os", "path", "perf_hooks", "process",
	    "punycode", "querystring", "readline", "repl", "stream", "string_decoder", "sys",
	    "timers", "tls", "trace_events", "tty", "url", "util", "v8", "vm", "wasi",
	    "worker_threads", "zlib"};
	if (!strncmp(name, "node:", 5))
		return true;
	size_t n = strcspn(name, "/");
	for (size_t i = 0; i < sizeof mods / sizeof mods[0]; i++)
		if (strlen(mods[i]) == n && !strncmp(name, mods[i], n))
			return true;
	return false;
}

/* "index.ts:1:15" from the location line under an esbuild error at p. */
static char *location_after(const char *p)
{
	const char *line = strchr(p, '\n');
	for (int i = 0; line && i < 3; i++) {
		line++;
		const char *end = strchr(line, '\n');
		if (!end)
			break;
		const char *s = line;
		while (s < end && *s == ' ')
			s++;
		if (end - s > 1 && end[-1] == ':' && memchr(s, ':', (size_t)(end - s - 1)))
			return strndup(s, (size_t)(end - s - 1));
		line = end;
	}
	return NULL;
}

/* The first unresolved import esbuild reported, as txscan's error. */
static int explain(const char *dir, const char *main, const char *msg, char **err)
{
	const char *p = strstr(msg, "Could not resolve \"");
	if (p) {
		const char *name = p + 19, *q = strchr(name, '"');
		char *mod = q ? strndup(name, (size_t)(q - name)) : NULL;
		char *where = location_after(p);
		int rc;
		if (mod && node_builtin(mod))
			rc = fail(err, "%s/%s: imports the Node built-in module \"%s\": txscan plugins "
			               "have no Node APIs (no files, network or process); use a package "
			               "that works in a browser, or remove the import",
			          dir, where ? where : main, mod);
		else if (mod && mod[0] != '.' && mod[0] != '/')
			rc = fail(err, "%s/%s: cannot find the package \"%s\": install it in the plugin "
			               "folder's own node_modules (cd %s && npm install %s)",
			          dir, where ? where : main, mod, dir, mod);
		else
			rc = fail(err, "%s/%s: cannot find the file \"%s\"", dir, where ? where : main,
			          mod ? mod : "?");
		free(mod);
		free(where);
		return rc;
	}
	return fail(err, "%s/%s: bundling with esbuild failed:\n%s", dir, main, msg);
}

/* ---- esbuild's output ---------------------------------------------------- */

/* path is inside root (both real paths). */
static bool inside(const char *root, const char *path)
{
	size_t n = strlen(root);
	return !strncmp(path, root, n) && (path[n] == '/' || path[n] == '\0');
}

/* Every input of the metafile is inside dir; else an error naming the
 * first that is not, and what imported it. */
static int check_inputs(const char *dir, const char *realdir, const char *metapath, sbuf *list,
                        char **err)
{
	json_t *meta = json_load_file(metapath, 0, NULL);
	json_t *inputs = meta ? json_object_get(meta, "inputs") : NULL;
	if (!json_is_object(inputs)) {
		json_decref(meta);
		return fail(err, "%s: esbuild wrote no metafile", dir);
	}
	const char *key;
	json_t *v;
	int rc = 0;
	json_object_foreach(inputs, key, v)
	{
		if (key[0] == '(' || strchr(key, ':')) /* "(disabled):..." and other namespaces */
			continue;
		char *path = NULL, *real = NULL;
		if (asprintf(&path, "%s/%s", dir, key) >= 0)
			real = realpath(path, NULL);
		if (!real || !inside(realdir, real))
			rc = fail(err, "%s: the bundle would read %s, which is outside the plugin folder "
			               "(a plugin may import only its own files and its own node_modules)",
			          dir, real ? real : key);
		else if (!strchr(key, '\n')) {
			sb_str(list, key);
			sb_put(list, "\n", 1);
		}
		free(path);
		free(real);
		if (rc)
			break;
	}
	json_decref(meta);
	return rc;
}

/* The map esbuild wrote, its sources relative to the plugin folder (they
 * are relative to the temporary directory). */
static char *fix_map(const char *realdir, const char *tmp, const char *mappath)
{
	json_t *map = json_load_file(mappath, 0, NULL);
	json_t *sources = map ? json_object_get(map, "sources") : NULL;
	size_t i;
	json_t *s;
	json_array_foreach(sources, i, s)
	{
		char *path = NULL, *real = NULL, *shown = NULL;
		if (json_is_string(s) && asprintf(&path, "%s/%s", tmp, json_string_value(s)) >= 0)
			real = realpath(path, NULL);
		if (real && inside(realdir, real) && real[strlen(realdir)] == '/' &&
		    (shown = strdup(real + strlen(realdir) + 1)))
			json_array_set_new(sources, i, json_string(shown));
		free(path);
		free(real);
		free(shown);
	}
	char *text = map ? json_dumps(map, JSON_COMPACT) : NULL;
	json_decref(map);
	return text;
}

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	sbuf b = {0};
	char buf[65536];
	size_t n;
	while ((n = fread(buf, 1, sizeof buf, f)) > 0 && b.len < OUT_MAX)
		sb_put(&b, buf, n);
	fclose(f);
	if (b.oom || b.len >= OUT_MAX) {
		free(b.p);
		return NULL;
	}
	*len = b.len;
	return b.p ? b.p : strdup("");
}

/* Drops esbuild's trailing "//# sourceMappingURL=out.js.map": the map is
 * registered by URL instead. */
static void drop_map_comment(bundle_out *b)
{
	const char *c = memmem(b->code, b->len, "\n//# sourceMappingURL=", 22);
	if (c) {
		b->len = (size_t)(c - b->code) + 1;
		b->code[b->len] = '\0';
	}
}

static void remove_tmp(const char *tmp)
{
	static const char *const files[] = {"out.js", "out.js.map", "meta.json"};
	char path[PATH_MAX];
	for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
		snprintf(path, sizeof path, "%s/%s", tmp, files[i]);
		unlink(path);
	}
	rmdir(tmp);
}

static int run_esbuild(const char *esbuild, const char *dir, const char *main, const char *tmp,
                       char **err)
{
	char entry[PATH_MAX], outfile[PATH_MAX], meta[PATH_MAX];
	snprintf(entry, sizeof entry, "%s%s", main[0] == '.' ? "" : "./", main);
	snprintf(outfile, sizeof outfile, "--outfile=%s/out.js", tmp);
	snprintf(meta, sizeof meta, "--metafile=%s/meta.json", tmp);
	char *argv[] = {(char *)esbuild, entry, "--bundle", "--format=cjs", "--platform=browser",
	                "--sourcemap=external", "--sources-content=false", outfile, meta,
	                "--log-level=error", "--color=false", "--log-limit=10", "--charset=utf8",
	                NULL};
	sbuf msg = {0};
	bool timed_out = false;
	int st = run(argv, dir, &msg, &timed_out);
	int rc = 0;
	if (timed_out)
		rc = fail(err, "%s/%s: bundling with esbuild took more than %u ms (TXS_BUNDLE_TIMEOUT_MS)",
		          dir, main, timeout_ms());
	else if (st < 0)
		rc = fail(err, "%s/%s: cannot run %s: %s", dir, main, esbuild, strerror(errno));
	else if (st != 0)
		rc = explain(dir, main, msg.p ? msg.p : "(no message)", err);
	free(msg.p);
	return rc;
}

/* ---- the cache ------------------------------------------------------------- */

/* Bundles are kept in $TXS_BUNDLE_CACHE (default $XDG_CACHE_HOME/txscan/
 * bundles, or ~/.cache/txscan/bundles; "0" turns it off), so that loading
 * the same plugin again (another `txscan scan`, a reload with nothing
 * changed) does not run esbuild. An entry is named after the plugin
 * (its folder's real path and main) and holds the hash of what the bundle
 * was made from: esbuild itself (path, size, mtime), every file esbuild
 * read (path and contents), the mtime of each folder one is in (a file
 * added beside one could change what an import resolves to), and the
 * plugin's package.json. Any change is a miss, and esbuild runs. */

static char *cache_dir(void)
{
	const char *env = getenv("TXS_BUNDLE_CACHE"), *xdg = getenv("XDG_CACHE_HOME");
	const char *home = getenv("HOME");
	char *d = NULL;
	if (env && !strcmp(env, "0"))
		return NULL;
	if (env && *env)
		d = strdup(env);
	else if (xdg && *xdg && asprintf(&d, "%s/txscan/bundles", xdg) < 0)
		d = NULL;
	else if (!(xdg && *xdg) && home && *home && asprintf(&d, "%s/.cache/txscan/bundles", home) < 0)
		d = NULL;
	return d;
}

static void hash_stat(GChecksum *g, const char *path)
{
	struct stat st;
	if (stat(path, &st) == 0) {
		long long v[3] = {(long long)st.st_size, (long long)st.st_mtim.tv_sec,
		                  (long long)st.st_mtim.tv_nsec};
		g_checksum_update(g, (const guchar *)v, sizeof v);
	}
	g_checksum_update(g, (const guchar *)path, (gssize)strlen(path) + 1);
}

static bool hash_file(GChecksum *g, const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return false;
	guchar buf[65536];
	size_t n;
	while ((n = fread(buf, 1, sizeof buf, f)) > 0)
		g_checksum_update(g, buf, (gssize)n);
	fclose(f);
	g_checksum_update(g, (const guchar *)path, (gssize)strlen(path) + 1);
	return true;
}

/* The hash of what a bundle of dir/main was made from (inputs: one path
 * relative to dir a line); NULL when an input is gone. */
static char *content_hash(const char *esbuild, const char *dir, const char *main,
                          const char *inputs)
{
	GChecksum *g = g_checksum_new(G_CHECKSUM_SHA256);
	char path[PATH_MAX];
	bool ok = true;
	g_checksum_update(g, (const guchar *)"txscan-bundle-1", 15);
	hash_stat(g, esbuild);
	g_checksum_update(g, (const guchar *)main, (gssize)strlen(main) + 1);
	snprintf(path, sizeof path, "%s/package.json", dir);
	hash_stat(g, path);
	for (const char *p = inputs; ok && *p;) {
		const char *nl = strchr(p, '\n');
		int n = nl ? (int)(nl - p) : (int)strlen(p);
		snprintf(path, sizeof path, "%s/%.*s", dir, n, p);
		ok = hash_file(g, path);
		char *slash = strrchr(path, '/');
		*slash = '\0';
		hash_stat(g, path);
		p += n + (nl != NULL);
	}
	char *h = ok ? strdup(g_checksum_get_string(g)) : NULL;
	g_checksum_free(g);
	return h;
}

/* dir/<sha256 of realdir and main>, the entry's name without extension. */
static char *entry_name(const char *realdir, const char *main)
{
	char *cdir = cache_dir();
	if (!cdir)
		return NULL;
	GChecksum *g = g_checksum_new(G_CHECKSUM_SHA256);
	g_checksum_update(g, (const guchar *)realdir, (gssize)strlen(realdir) + 1);
	g_checksum_update(g, (const guchar *)main, (gssize)strlen(main));
	char *name = NULL;
	if (asprintf(&name, "%s/%s", cdir, g_checksum_get_string(g)) < 0)
		name = NULL;
	g_checksum_free(g);
	free(cdir);
	return name;
}

static bool cache_get(const char *esbuild, const char *dir, const char *realdir,
                      const char *main, bundle_out *out)
{
	char *name = entry_name(realdir, main), path[PATH_MAX];
	if (!name)
		return false;
	size_t len = 0;
	snprintf(path, sizeof path, "%s.deps", name);
	char *deps = slurp(path, &len);
	char *nl = deps ? strchr(deps, '\n') : NULL;
	char *h = nl ? content_hash(esbuild, dir, main, nl + 1) : NULL;
	bool hit = h && !strncmp(deps, h, (size_t)(nl - deps)) && strlen(h) == (size_t)(nl - deps);
	if (hit) {
		snprintf(path, sizeof path, "%s.js", name);
		out->code = slurp(path, &out->len);
		snprintf(path, sizeof path, "%s.map", name);
		out->map = slurp(path, &out->map_len);
		hit = out->code && out->map;
		if (!hit)
			bundle_out_clear(out);
	}
	free(h);
	free(deps);
	free(name);
	return hit;
}

static void mkdirs(const char *path)
{
	char *p = strdup(path);
	for (char *s = p ? strchr(p + 1, '/') : NULL; s; s = strchr(s + 1, '/')) {
		*s = '\0';
		mkdir(p, 0700);
		*s = '/';
	}
	if (p)
		mkdir(p, 0700);
	free(p);
}

static int write_file(const char *path, const char *a, size_t alen, const char *b, size_t blen);

/* Best effort: a cache that cannot be written only costs the next load a
 * run of esbuild. The .deps file goes last: an entry without it is a miss. */
static void cache_put(const char *esbuild, const char *dir, const char *realdir,
                      const char *main, const bundle_out *out, const char *inputs)
{
	char *name = entry_name(realdir, main), path[PATH_MAX];
	char *h = name && out->map ? content_hash(esbuild, dir, main, inputs) : NULL;
	if (h) {
		char *cdir = cache_dir();
		if (cdir)
			mkdirs(cdir);
		free(cdir);
		snprintf(path, sizeof path, "%s.js", name);
		bool ok = write_file(path, out->code, out->len, "", 0) == 0;
		snprintf(path, sizeof path, "%s.map", name);
		ok = ok && write_file(path, out->map, out->map_len, "", 0) == 0;
		snprintf(path, sizeof path, "%s.deps", name);
		if (ok)
			write_file(path, h, strlen(h), "\n", 1);
		FILE *f = ok ? fopen(path, "ab") : NULL;
		if (f) {
			fputs(inputs, f);
			fclose(f);
		}
	}
	free(h);
	free(name);
}

int bundle_build(const char *dir, const char *main, bundle_out *out, char **err)
{
	memset(out, 0, sizeof *out);
	*err = NULL;
	char *esbuild = find_esbuild();
	if (!esbuild)
		return fail(err, "%s/%s is a module that needs bundling (ES module, TypeScript or "
		                 "imports) and esbuild is not installed: install the Debian package "
		                 "esbuild, or bundle it ahead of time on a host that has it "
		                 "(txscan bundle %s -o FILE) and set main to FILE",
		            dir, main, dir);
	char tmp[] = "/tmp/txscan-bundle-XXXXXX";
	char *realdir = realpath(dir, NULL);
	int rc = -1;
	if (!realdir || !mkdtemp(tmp)) {
		rc = fail(err, "%s: %s", realdir ? "cannot make a temporary directory" : dir,
		          strerror(errno));
		free(realdir);
		free(esbuild);
		return rc;
	}
	char path[PATH_MAX];
	sbuf inputs = {0};
	if (cache_get(esbuild, dir, realdir, main, out)) {
		remove_tmp(tmp);
		free(realdir);
		free(esbuild);
		return 0;
	}
	rc = run_esbuild(esbuild, dir, main, tmp, err);
	snprintf(path, sizeof path, "%s/meta.json", tmp);
	if (!rc)
		rc = check_inputs(dir, realdir, path, &inputs, err);
	snprintf(path, sizeof path, "%s/out.js", tmp);
	if (!rc && !(out->code = slurp(path, &out->len)))
		rc = fail(err, "%s/%s: the bundle cannot be read, or is over 32 MiB", dir, main);
	snprintf(path, sizeof path, "%s/out.js.map", tmp);
	if (!rc && (out->map = fix_map(realdir, tmp, path)))
		out->map_len = strlen(out->map);
	if (!rc) {
		drop_map_comment(out);
		cache_put(esbuild, dir, realdir, main, out, inputs.p ? inputs.p : "");
	} else {
		bundle_out_clear(out);
	}
	free(inputs.p);
	remove_tmp(tmp);
	free(realdir);
	free(esbuild);
	return rc;
}

/* A plain CommonJS main that ends with "//# sourceMappingURL=FILE" (a
 * bundle made ahead of time, by txscan bundle or by hand): FILE's map,
 * when it is inside dir, registered under url. Best effort. */
static void register_own_map(const char *dir, const char *main, const char *src, size_t len,
                             const char *url)
{
	static const char tag[] = "//# sourceMappingURL=";
	const char *c = len > 512 ? src + len - 512 : src, *hit = NULL, *h;
	while ((h = memmem(c, len - (size_t)(c - src), tag, sizeof tag - 1))) {
		hit = h;
		c = h + 1;
	}
	if (!hit || !strncmp(hit + sizeof tag - 1, "data:", 5))
		return;
	const char *name = hit + sizeof tag - 1;
	size_t n = strcspn(name, " \r\n");
	const char *slash = strrchr(main, '/');
	char *path = NULL, *real = NULL, *realdir = realpath(dir, NULL);
	if (asprintf(&path, "%s/%.*s%.*s", dir, slash ? (int)(slash - main + 1) : 0, main, (int)n,
	             name) >= 0)
		real = realpath(path, NULL);
	size_t mlen = 0;
	char *json = real && realdir && inside(realdir, real) ? slurp(real, &mlen) : NULL;
	char *prefix = NULL;
	txs_srcmap *map = json && asprintf(&prefix, "%s/", dir) >= 0
	                      ? srcmap_parse(json, mlen, prefix)
	                      : NULL;
	if (map)
		srcmap_register(url, map);
	free(prefix);
	free(json);
	free(path);
	free(real);
	free(realdir);
}

int bundle_plugin_source(const char *dir, const char *main, char **source, size_t *len,
                         char **url, char **err)
{
	*err = NULL;
	if (!bundle_needed(dir, main, *source, *len)) {
		register_own_map(dir, main, *source, *len, *url);
		return 0;
	}
	bundle_out b;
	if (bundle_build(dir, main, &b, err) != 0)
		return -1;
	char *u = bundle_url(dir, main), *prefix = NULL;
	if (!u || asprintf(&prefix, "%s/", dir) < 0) {
		free(u);
		bundle_out_clear(&b);
		return fail(err, "out of memory");
	}
	txs_srcmap *map = b.map ? srcmap_parse(b.map, b.map_len, prefix) : NULL;
	free(prefix);
	if (map)
		srcmap_register(u, map);
	free(*source);
	free(*url);
	*source = b.code;
	*len = b.len;
	*url = u;
	b.code = NULL;
	bundle_out_clear(&b);
	return 0;
}

/* ---- txscan bundle (public API) -------------------------------------------- */

static int write_file(const char *path, const char *a, size_t alen, const char *b, size_t blen)
{
	char *tmp = NULL;
	if (asprintf(&tmp, "%s.tmp", path) < 0)
		return -1;
	FILE *f = fopen(tmp, "wb");
	bool ok = f && fwrite(a, 1, alen, f) == alen && fwrite(b, 1, blen, f) == blen;
	ok = f && fclose(f) == 0 && ok;
	ok = ok && rename(tmp, path) == 0;
	if (!ok)
		unlink(tmp);
	free(tmp);
	return ok ? 0 : -1;
}

/* main of dir/plugin.json, or NULL with *err. */
static char *manifest_main(const char *dir, char **err)
{
	char *path = NULL;
	if (asprintf(&path, "%s/plugin.json", dir) < 0)
		return NULL;
	json_error_t je;
	json_t *m = json_load_file(path, 0, &je);
	const char *main = m ? json_string_value(json_object_get(m, "main")) : NULL;
	char *out = main ? strdup(main) : NULL;
	if (!out)
		fail(err, "%s: %s", path, m ? "no \"main\" string" : je.text);
	json_decref(m);
	free(path);
	return out;
}

int txs_plugin_bundle(const char *dir, const char *out_path)
{
	char *err = NULL;
	char *main = manifest_main(dir, &err);
	bundle_out b = {0};
	int rc = main ? bundle_build(dir, main, &b, &err) : -1;
	char *tail = NULL, *mappath = NULL;
	const char *base = strrchr(out_path, '/');
	base = base ? base + 1 : out_path;
	if (!rc && (asprintf(&tail, "//# sourceMappingURL=%s.map\n", base) < 0 ||
	            asprintf(&mappath, "%s.map", out_path) < 0))
		rc = fail(&err, "out of memory");
	if (!rc && (write_file(out_path, b.code, b.len, tail, strlen(tail)) != 0 ||
	            (b.map && write_file(mappath, b.map, b.map_len, "\n", 1) != 0)))
		rc = fail(&err, "%s: cannot write: %s", out_path, strerror(errno));
	rc = rc ? txs_fail(TXS_EINVAL, "%s", err ? err : "out of memory") : 0;
	free(err);
	free(main);
	free(tail);
	free(mappath);
	bundle_out_clear(&b);
	return rc;
}
