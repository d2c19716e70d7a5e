/*
 * host.c - plugin registry, per-plugin executor pools, fan-out, deadlines,
 * restart and reload.
 *
 * A scan is a "fan-out": the transaction is checked once here (size cap, a
 * JSON object), then submitted to one executor of every plugin (the least
 * busy instance). Each answer lands in its slot; the last one builds the
 * report and calls the user back. A slot is claimed exactly once, by its
 * answer or by the deadline thread (CAS on slot->state), so a late answer
 * after the deadline is dropped, never reported twice. The fan-out is freed
 * when its last reference goes: one per outstanding executor callback plus
 * one for delivery.
 *
 * Deadlines: every fan-out has the same scan timeout, so the pending list,
 * kept in submission order, is also in deadline order; the deadline thread
 * sleeps until the head's deadline.
 */
#define _GNU_SOURCE
#include "executor/bell.h"
#include "util/clock.h"
#include "console.h"
#include "util/error.h"
#include "util/jscan.h"
#include "plugin.h"
#include "report.h"
#include "txscan.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CONSOLE_BUFFER 4096
#define NO_DEADLINE UINT32_MAX

typedef struct plugin {
	char id[65];
	char *dir;
	uint32_t instances;
	txs_executor **ex;
	pthread_mutex_t mu; /* guards version, limits and reloads */
	char version[65];
	txs_limits limits;
} plugin;

struct fanout;

typedef struct slot {
	struct fanout *f;
	_Atomic int state; /* SLOT_PENDING, then ANSWERED or EXPIRED */
	report_part part;  /* written once, by whoever claimed the slot */
} slot;

enum { SLOT_PENDING, SLOT_ANSWERED, SLOT_EXPIRED };

typedef struct fanout {
	txs_host *h;
	_Atomic int refs, remaining;
	uint64_t t0_ns, deadline_ns;
	txs_report_fn cb;
	void *userdata;
	json_t *txid;
	uint64_t line;
	struct fanout *prev, *next; /* pending list, under h->dmu */
	bool listed;
	size_t n;
	slot slots[];
} fanout;

struct txs_host {
	txs_host_options opt;
	console_sink *sink;
	plugin **plugins;
	size_t n;
	uint32_t scan_timeout_ms;
	size_t max_input;
	_Atomic uint32_t in_flight;
	txs_bell bell; /* every executor of the host sleeps on it: one ring per fan-out */

	pthread_t deadline_thread;
	bool deadline_started;
	pthread_mutex_t dmu;
	pthread_cond_t dcv;
	fanout *head, *tail; /* under dmu */
	uint64_t dsleep_ns;  /* under dmu: the deadline thread sleeps until then (0: awake) */
	bool stopping;       /* under dmu */
};

static uint64_t now_ns(void)
{
	return txs_now_ns();
}

/* ---- pending list and deadline thread ------------------------------- */

static void list_remove_locked(txs_host *h, fanout *f)
{
	if (!f->listed)
		return;
	if (f->prev)
		f->prev->next = f->next;
	else
		h->head = f->next;
	if (f->next)
		f->next->prev = f->prev;
	else
		h->tail = f->prev;
	f->listed = false;
}

static void list_add(txs_host *h, fanout *f)
{
	pthread_mutex_lock(&h->dmu);
	f->prev = h->tail;
	f->next = NULL;
	if (h->tail)
		h->tail->next = f;
	else
		h->head = f;
	h->tail = f;
	f->listed = true;
	/* Deadlines come in order, so the sleeper is woken only from an
	 * untimed wait, not once per fan-out. */
	bool wake = f->deadline_ns < h->dsleep_ns;
	pthread_mutex_unlock(&h->dmu);
	if (wake)
		pthread_cond_signal(&h->dcv);
}

static void release(fanout *f)
{
	if (atomic_fetch_sub(&f->refs, 1) != 1)
		return;
	for (size_t i = 0; i < f->n; i++)
		report_part_clear(&f->slots[i].part);
	json_decref(f->txid);
	free(f);
}

static void deliver(fanout *f)
{
	txs_host *h = f->h;
	pthread_mutex_lock(&h->dmu);
	list_remove_locked(h, f);
	pthread_mutex_unlock(&h->dmu);
	const char *ids[f->n];
	report_part parts[f->n];
	for (size_t i = 0; i < f->n; i++) {
		ids[i] = h->plugins[i]->id;
		parts[i] = f->slots[i].part;
	}
	txs_report *rep =
	    report_build(f->txid, f->line, (double)(now_ns() - f->t0_ns) / 1e6, ids, parts, f->n);
	if (!rep)
		rep = report_oom();
	atomic_fetch_sub(&h->in_flight, 1);
	f->cb(rep, f->userdata);
	release(f);
}

/* Claims slot i for its answer or for the deadline; the last claim delivers. */
static bool claim(fanout *f, size_t i, int how)
{
	int expect = SLOT_PENDING;
	return atomic_compare_exchange_strong(&f->slots[i].state, &expect, how);
}

static void settle_one(fanout *f)
{
	if (atomic_fetch_sub(&f->remaining, 1) == 1)
		deliver(f);
}

static void expire(fanout *f)
{
	double waited = (double)(now_ns() - f->t0_ns) / 1e6;
	for (size_t i = 0; i < f->n; i++) {
		if (!claim(f, i, SLOT_EXPIRED))
			continue;
		slot *s = &f->slots[i];
		s->part.status = TXS_STATUS_TIMEOUT;
		s->part.ms = waited;
		if (asprintf(&s->part.error, "no answer within the scan deadline of %u ms (queued behind "
		             "other scans)", f->h->scan_timeout_ms) < 0)
			s->part.error = NULL;
		settle_one(f);
	}
}

static void *deadline_main(void *arg)
{
	txs_host *h = arg;
	pthread_mutex_lock(&h->dmu);
	while (!h->stopping) {
		fanout *f = h->head;
		if (f && now_ns() >= f->deadline_ns) {
			list_remove_locked(h, f);
			atomic_fetch_add(&f->refs, 1);
			pthread_mutex_unlock(&h->dmu);
			expire(f);
			release(f);
			pthread_mutex_lock(&h->dmu);
			continue;
		}
		h->dsleep_ns = f ? f->deadline_ns : UINT64_MAX;
		if (f) {
			struct timespec ts = txs_timespec(f->deadline_ns);
			pthread_cond_timedwait(&h->dcv, &h->dmu, &ts);
		} else {
			pthread_cond_wait(&h->dcv, &h->dmu);
		}
		h->dsleep_ns = 0;
	}
	pthread_mutex_unlock(&h->dmu);
	return NULL;
}

/* ---- fan-out ----------------------------------------------------------- */

static void on_answer(txs_scan_result *res, void *ud)
{
	slot *s = ud;
	fanout *f = s->f;
	size_t i = (size_t)(s - f->slots);
	if (claim(f, i, SLOT_ANSWERED)) {
		/* validated here, on the executor's thread: in parallel with the
		 * other plugins of the fan-out, not serially when the last answers */
		report_part_set(&s->part, f->h->plugins[i]->id, res);
		settle_one(f);
	} else {
		txs_scan_result_clear(res);
	}
	release(f);
}

/* Least pending commands among the plugin's instances. */
static txs_executor *pick(const plugin *p)
{
	txs_executor *best = p->ex[0];
	uint32_t load = p->instances > 1 ? txs_executor_load(best) : 0;
	for (uint32_t i = 1; i < p->instances && load; i++) {
		uint32_t l = txs_executor_load(p->ex[i]);
		if (l < load) {
			load = l;
			best = p->ex[i];
		}
	}
	return best;
}

static void refused(fanout *f, size_t i, int rc)
{
	slot *s = &f->slots[i];
	if (!claim(f, i, SLOT_ANSWERED))
		return;
	s->part.status = rc == TXS_EOVERLOADED    ? TXS_STATUS_OVERLOADED
	                : rc == TXS_EUNAVAILABLE ? TXS_STATUS_UNAVAILABLE
	                : rc == TXS_ESTOPPED     ? TXS_STATUS_STOPPED
	                                         : TXS_STATUS_ERROR;
	s->part.error = strdup(txs_last_error());
	settle_one(f);
}

typedef struct tx_ids {
	span hash, id; /* top-level members; a repeated key: the last wins */
} tx_ids;

static void tx_member(const jstr *key, span value, void *ud)
{
	tx_ids *t = ud;
	if (key->nul)
		return;
	if (key->len == 4 && !memcmp(key->buf, "hash", 4))
		t->hash = value;
	else if (key->len == 2 && !memcmp(key->buf, "id", 2))
		t->id = value;
}

/* The input's "hash" when it is a string, else its "id" when a string or a
 * number (integral ones within double's exact range as integers): a new
 * reference, or NULL. jansson reads just that value. */
static json_t *txid_of(const tx_ids *t)
{
	span v = t->hash.p && *t->hash.p == '"' ? t->hash : t->id;
	if (!v.p || !(*v.p == '"' || *v.p == '-' || (*v.p >= '0' && *v.p <= '9')))
		return NULL;
	json_t *j = json_loadb(v.p, (size_t)(v.end - v.p),
	                       JSON_DECODE_ANY | JSON_ALLOW_NUL | JSON_DECODE_INT_AS_REAL, NULL);
	double num = json_is_real(j) ? json_real_value(j) : 0.5;
	if (num >= -9007199254740992.0 && num <= 9007199254740992.0 && num == floor(num)) {
		json_decref(j);
		return json_integer((json_int_t)num);
	}
	return j;
}

/* The one C-side check before fan-out: size, JSON syntax (jscan.c: checked
 * in place, nothing built), a JSON object. On success *txid is the input's
 * id (see txid_of). */
static char *check_input(const txs_host *h, const char *tx, size_t len, json_t **txid)
{
	char *msg = NULL;
	if (len > h->max_input) {
		if (asprintf(&msg, "transaction is %zu bytes, the cap is %zu", len, h->max_input) < 0)
			msg = NULL;
		return msg ? msg : strdup("transaction too large");
	}
	jscan s;
	jscan_init(&s, tx, len);
	tx_ids ids = {{0}, {0}};
	jscan_ws(&s);
	const char *v0 = s.p;
	bool ok = jscan_at(&s, '{') ? jscan_object(&s, 1, tx_member, &ids)
	        : s.p < s.end       ? jscan_value(&s, 1)
	                            : jscan_fail(&s, "no JSON value");
	if (ok)
		jscan_end(&s);
	if (s.syntax) {
		size_t line, col;
		jscan_position(&s, &line, &col);
		int rc = line > 1 ? asprintf(&msg, "invalid JSON: %s at line %zu, column %zu", s.syntax, line, col)
		                  : asprintf(&msg, "invalid JSON: %s at column %zu", s.syntax, col);
		return rc < 0 ? strdup("invalid JSON") : msg;
	}
	if (*v0 != '{') {
		if (asprintf(&msg, "transaction must be a JSON object, got %s", jscan_kind(v0)) < 0)
			msg = NULL;
		return msg ? msg : strdup("invalid input");
	}
	*txid = txid_of(&ids);
	return NULL;
}

static fanout *fanout_new(txs_host *h, json_t *txid, uint64_t line, txs_report_fn cb, void *ud)
{
	fanout *f = calloc(1, sizeof *f + h->n * sizeof(slot));
	if (!f)
		return NULL;
	*f = (fanout){.h = h, .cb = cb, .userdata = ud, .txid = txid, .line = line, .n = h->n,
	              .t0_ns = now_ns()};
	atomic_init(&f->refs, (int)h->n + 1);
	atomic_init(&f->remaining, (int)h->n);
	f->deadline_ns = h->scan_timeout_ms == NO_DEADLINE
	                     ? UINT64_MAX
	                     : f->t0_ns + (uint64_t)h->scan_timeout_ms * 1000000ull;
	for (size_t i = 0; i < h->n; i++)
		f->slots[i].f = f;
	return f;
}

int txs_host_submit(txs_host *h, const char *tx, size_t len, uint64_t line, txs_report_fn cb,
                    void *ud)
{
	if (!h || !tx || !cb)
		return txs_fail(TXS_EINVAL, "txs_host_submit: NULL argument");
	if (!h->n)
		return txs_fail(TXS_EINVAL, "no plugins loaded");
	json_t *txid = NULL;
	char *bad = check_input(h, tx, len, &txid);
	if (bad) {
		txs_report *rep = report_input_error(line, bad);
		free(bad);
		if (!rep)
			rep = report_oom();
		cb(rep, ud);
		return 0;
	}
	fanout *f = fanout_new(h, txid, line, cb, ud);
	if (!f) {
		json_decref(txid);
		return txs_fail(TXS_ENOMEM, "out of memory");
	}
	atomic_fetch_add(&h->in_flight, 1);
	if (f->deadline_ns != UINT64_MAX)
		list_add(h, f);
	bool ring = false;
	for (size_t i = 0; i < h->n; i++) {
		int rc = txs_executor_submit_quiet(pick(h->plugins[i]), tx, len, on_answer, &f->slots[i],
		                                   &ring);
		if (rc) {
			refused(f, i, rc);
			release(f);
		}
	}
	if (ring)
		txs_bell_ring(&h->bell);
	return 0;
}

struct sync_wait {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	txs_report *rep;
};

static void sync_done(txs_report *rep, void *ud)
{
	struct sync_wait *w = ud;
	pthread_mutex_lock(&w->mu);
	w->rep = rep;
	/* under the lock: w lives on the waiter's stack and dies once it sees rep */
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

int txs_host_scan(txs_host *h, const char *tx, size_t len, uint64_t line, txs_report **out)
{
	struct sync_wait w = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
	*out = NULL;
	int rc = txs_host_submit(h, tx, len, line, sync_done, &w);
	if (rc)
		return rc;
	pthread_mutex_lock(&w.mu);
	while (!w.rep)
		pthread_cond_wait(&w.cv, &w.mu);
	pthread_mutex_unlock(&w.mu);
	pthread_cond_destroy(&w.cv);
	pthread_mutex_destroy(&w.mu);
	*out = w.rep;
	return 0;
}

/* ---- registry ------------------------------------------------------------ */

static void plugin_free(plugin *p)
{
	if (!p)
		return;
	for (uint32_t i = 0; p->ex && i < p->instances; i++)
		txs_executor_free(p->ex[i]);
	free(p->ex);
	free(p->dir);
	pthread_mutex_destroy(&p->mu);
	free(p);
}

static txs_plugin_code code_of(const plugin_manifest *m)
{
	return (txs_plugin_code){.id = m->id, .version = m->version, .filename = m->main_path,
	                         .source = m->source, .source_len = m->source_len,
	                         .config_json = m->config_json};
}

static int plugin_start(txs_host *h, const plugin_manifest *m, plugin **out)
{
	plugin *p = calloc(1, sizeof *p);
	if (!p)
		return txs_fail(TXS_ENOMEM, "out of memory");
	pthread_mutex_init(&p->mu, NULL);
	snprintf(p->id, sizeof p->id, "%s", m->id);
	snprintf(p->version, sizeof p->version, "%s", m->version);
	p->dir = strdup(m->dir);
	p->limits = m->limits;
	p->ex = calloc(m->instances, sizeof *p->ex);
	txs_plugin_code code = code_of(m);
	txs_console_fn con = h->opt.console ? h->opt.console : h->sink ? console_sink_push : NULL;
	void *ud = h->opt.console ? h->opt.console_userdata : h->sink;
	int rc = p->dir && p->ex ? 0 : txs_fail(TXS_ENOMEM, "out of memory");
	for (uint32_t i = 0; !rc && i < m->instances; i++) {
		rc = txs_executor_new(&p->ex[i], &code, &m->limits, con, ud);
		p->instances = i + (rc == 0);
		if (!rc)
			txs_executor_use_bell(p->ex[i], &h->bell);
	}
	if (rc) {
		plugin_free(p);
		return rc;
	}
	*out = p;
	return 0;
}

/* Plugin folders under path: path itself when it holds plugin.json, else
 * its subfolders (sorted; hidden ones skipped), each of which must. */
static int list_dirs(const char *path, char ***dirs, size_t *n)
{
	char probe[4096];
	struct stat st;
	*dirs = NULL;
	*n = 0;
	if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
		return txs_fail(TXS_EIO, "%s: not a plugin folder: %s", path,
		                errno ? strerror(errno) : "not a directory");
	snprintf(probe, sizeof probe, "%s/plugin.json", path);
	if (access(probe, F_OK) == 0) {
		*dirs = malloc(sizeof **dirs);
		(*dirs)[(*n)++] = strdup(path);
		return 0;
	}
	struct dirent **ents;
	int k = scandir(path, &ents, NULL, alphasort);
	if (k < 0)
		return txs_fail(TXS_EIO, "%s: cannot list: %s", path, strerror(errno));
	*dirs = calloc((size_t)k + 1, sizeof **dirs);
	for (int i = 0; i < k; i++) {
		snprintf(probe, sizeof probe, "%s/%s", path, ents[i]->d_name);
		if (ents[i]->d_name[0] != '.' && stat(probe, &st) == 0 && S_ISDIR(st.st_mode))
			(*dirs)[(*n)++] = strdup(probe);
		free(ents[i]);
	}
	free(ents);
	return *n ? 0 : txs_fail(TXS_EINVAL, "%s: no plugin.json and no plugin folders in it", path);
}

static void free_dirs(char **dirs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(dirs[i]);
	free(dirs);
}

static int check_duplicate(const txs_host *h, plugin **fresh, size_t k, const plugin_manifest *m)
{
	for (size_t i = 0; i < h->n; i++)
		if (!strcmp(h->plugins[i]->id, m->id))
			return txs_fail(TXS_EINVAL, "%s/plugin.json: duplicate plugin id \"%s\" (also in %s)",
			                m->dir, m->id, h->plugins[i]->dir);
	for (size_t i = 0; i < k; i++)
		if (!strcmp(fresh[i]->id, m->id))
			return txs_fail(TXS_EINVAL, "%s/plugin.json: duplicate plugin id \"%s\" (also in %s)",
			                m->dir, m->id, fresh[i]->dir);
	return 0;
}

static int load_one(txs_host *h, const char *dir, plugin **fresh, size_t k)
{
	plugin_manifest m;
	char *err = NULL;
	int rc = plugin_manifest_load(dir, &m, &err);
	if (rc) {
		txs_fail_msg(rc, err);
		free(err);
		return rc;
	}
	rc = plugin_manifest_set_config(&m, h->opt.config_json); /* txscan check --config */
	if (!rc)
		rc = check_duplicate(h, fresh, k, &m);
	if (!rc)
		rc = plugin_start(h, &m, &fresh[k]);
	plugin_manifest_clear(&m);
	return rc;
}

static void update_limits(txs_host *h)
{
	uint32_t max_timeout = 0;
	h->max_input = 0;
	for (size_t i = 0; i < h->n; i++) {
		const txs_limits *l = &h->plugins[i]->limits;
		max_timeout = l->timeout_ms > max_timeout ? l->timeout_ms : max_timeout;
		h->max_input = l->max_input_bytes > h->max_input ? l->max_input_bytes : h->max_input;
	}
	h->scan_timeout_ms = h->opt.scan_timeout_ms ? h->opt.scan_timeout_ms : max_timeout * 4 + 100;
}

int txs_host_load(txs_host *h, const char *path)
{
	char **dirs;
	size_t nd;
	int rc = list_dirs(path, &dirs, &nd);
	if (rc)
		return rc;
	plugin **fresh = calloc(nd, sizeof *fresh);
	plugin **grown = fresh ? realloc(h->plugins, (h->n + nd) * sizeof *grown) : NULL;
	if (!grown) {
		free(fresh);
		free_dirs(dirs, nd);
		return txs_fail(TXS_ENOMEM, "out of memory");
	}
	h->plugins = grown;
	size_t k = 0;
	for (; !rc && k < nd; k++)
		rc = load_one(h, dirs[k], fresh, k);
	if (rc) {
		for (size_t i = 0; i < nd; i++)
			plugin_free(fresh[i]);
	} else {
		memcpy(h->plugins + h->n, fresh, nd * sizeof *fresh);
		h->n += nd;
		update_limits(h);
	}
	free(fresh);
	free_dirs(dirs, nd);
	return rc;
}

int txs_host_new(txs_host **out, const txs_host_options *opts)
{
	*out = NULL;
	txs_host *h = calloc(1, sizeof *h);
	if (!h)
		return txs_fail(TXS_ENOMEM, "out of memory");
	if (opts)
		h->opt = *opts;
	pthread_mutex_init(&h->dmu, NULL);
	txs_cond_init(&h->dcv);
	txs_bell_init(&h->bell);
	if (!h->opt.console && !h->opt.console_quiet)
		h->sink = console_sink_new(CONSOLE_BUFFER);
	h->deadline_started = pthread_create(&h->deadline_thread, NULL, deadline_main, h) == 0;
	if (!h->deadline_started || (!h->opt.console && !h->opt.console_quiet && !h->sink)) {
		txs_host_free(h);
		return txs_fail(TXS_ENOMEM, "cannot start the host's threads");
	}
	*out = h;
	return 0;
}

void txs_host_free(txs_host *h)
{
	if (!h)
		return;
	for (size_t i = 0; i < h->n; i++)
		plugin_free(h->plugins[i]); /* answers queued scans: every report is delivered */
	pthread_mutex_lock(&h->dmu);
	h->stopping = true;
	pthread_mutex_unlock(&h->dmu);
	pthread_cond_signal(&h->dcv);
	if (h->deadline_started)
		pthread_join(h->deadline_thread, NULL);
	console_sink_free(h->sink);
	pthread_mutex_destroy(&h->dmu);
	pthread_cond_destroy(&h->dcv);
	free(h->plugins);
	free(h);
}

/* ---- control and introspection ------------------------------------------ */

size_t txs_host_plugin_count(const txs_host *h)
{
	return h->n;
}

long txs_host_plugin_find(const txs_host *h, const char *id)
{
	for (size_t i = 0; id && i < h->n; i++)
		if (!strcmp(h->plugins[i]->id, id))
			return (long)i;
	return -1;
}

static plugin *find(txs_host *h, const char *id)
{
	long i = txs_host_plugin_find(h, id);
	if (i < 0)
		txs_fail(TXS_ENOTFOUND, "no plugin \"%s\"", id ? id : "(null)");
	return i < 0 ? NULL : h->plugins[i];
}

int txs_host_restart(txs_host *h, const char *id)
{
	plugin *p = find(h, id);
	if (!p)
		return TXS_ENOTFOUND;
	int rc = 0;
	pthread_mutex_lock(&p->mu);
	for (uint32_t i = 0; !rc && i < p->instances; i++)
		rc = txs_executor_restart(p->ex[i]);
	pthread_mutex_unlock(&p->mu);
	return rc;
}

static int reload_locked(plugin *p, const plugin_manifest *m)
{
	if (strcmp(m->id, p->id))
		return txs_fail(TXS_EINVAL, "%s/plugin.json: id changed from \"%s\" to \"%s\"; restart "
		                "the host to rename a plugin", p->dir, p->id, m->id);
	if (m->instances != p->instances)
		return txs_fail(TXS_EINVAL, "%s/plugin.json: instances changed from %u to %u; restart "
		                "the host to change it", p->dir, p->instances, m->instances);
	txs_plugin_code code = code_of(m);
	int rc = 0;
	for (uint32_t i = 0; !rc && i < p->instances; i++)
		rc = txs_executor_reload(p->ex[i], &code, &m->limits);
	if (!rc) {
		snprintf(p->version, sizeof p->version, "%s", m->version);
		p->limits = m->limits;
	}
	return rc;
}

int txs_host_reload(txs_host *h, const char *id)
{
	plugin *p = find(h, id);
	if (!p)
		return TXS_ENOTFOUND;
	plugin_manifest m;
	char *err = NULL;
	int rc = plugin_manifest_load(p->dir, &m, &err);
	if (rc) {
		txs_fail_msg(rc, err);
		free(err);
		return rc;
	}
	pthread_mutex_lock(&p->mu);
	rc = reload_locked(p, &m);
	pthread_mutex_unlock(&p->mu);
	plugin_manifest_clear(&m);
	return rc;
}

int txs_host_reload_all(txs_host *h)
{
	int first = 0;
	char msg[2048] = "";
	for (size_t i = 0; i < h->n; i++) {
		int rc = txs_host_reload(h, h->plugins[i]->id);
		if (rc && !first) {
			first = rc;
			snprintf(msg, sizeof msg, "%s", txs_last_error());
		}
	}
	return first ? txs_fail_msg(first, msg) : 0;
}

static void add_stats(txs_executor_stats *sum, const txs_executor_stats *s)
{
	uint64_t gen = sum->generation > s->generation ? sum->generation : s->generation;
	sum->scans += s->scans;
	sum->ok += s->ok;
	sum->errors += s->errors;
	sum->timeouts += s->timeouts;
	sum->memory_stops += s->memory_stops;
	sum->overloaded += s->overloaded;
	sum->unavailable += s->unavailable;
	sum->restarts_scheduled += s->restarts_scheduled;
	sum->restarts_heap += s->restarts_heap;
	sum->restarts_killed += s->restarts_killed;
	sum->restarts_manual += s->restarts_manual;
	sum->reloads += s->reloads;
	sum->standby_swaps += s->standby_swaps;
	sum->heap_readings += s->heap_readings;
	sum->failed_starts += s->failed_starts;
	sum->heap_bytes += s->heap_bytes;
	sum->console_dropped += s->console_dropped;
	sum->queue_depth += s->queue_depth;
	sum->consecutive_failures += s->consecutive_failures;
	sum->quarantined = sum->quarantined || s->quarantined;
	sum->running = sum->running && s->running;
	sum->busy = sum->busy || s->busy;
	sum->latency_sum_ms += s->latency_sum_ms;
	for (int i = 0; i < TXS_LATENCY_BUCKETS; i++)
		sum->latency_buckets[i] += s->latency_buckets[i];
	sum->generation = gen;
}

int txs_host_plugin_info(txs_host *h, size_t index, txs_plugin_info *info)
{
	if (index >= h->n)
		return txs_fail(TXS_ENOTFOUND, "no plugin at index %zu", index);
	plugin *p = h->plugins[index];
	memset(info, 0, sizeof *info);
	snprintf(info->id, sizeof info->id, "%s", p->id);
	snprintf(info->dir, sizeof info->dir, "%s", p->dir);
	info->instances = p->instances;
	pthread_mutex_lock(&p->mu);
	snprintf(info->version, sizeof info->version, "%s", p->version);
	info->limits = p->limits;
	pthread_mutex_unlock(&p->mu);
	info->stats.running = true;
	for (uint32_t i = 0; i < p->instances; i++) {
		txs_executor_stats s;
		txs_executor_stats_get(p->ex[i], &s);
		add_stats(&info->stats, &s);
	}
	return 0;
}

static json_t *info_json(const txs_plugin_info *in)
{
	const txs_executor_stats *s = &in->stats;
	json_t *limits = json_pack("{s:I,s:I,s:I,s:I}", "timeout_ms", (json_int_t)in->limits.timeout_ms,
	                           "heap_limit_mb", (json_int_t)in->limits.heap_limit_mb,
	                           "heap_restart_mb", (json_int_t)in->limits.heap_restart_mb,
	                           "restart_every", (json_int_t)in->limits.restart_every);
	json_t *restarts = json_pack("{s:I,s:I,s:I,s:I,s:I,s:I}", "scheduled", (json_int_t)s->restarts_scheduled,
	                             "heap", (json_int_t)s->restarts_heap, "killed",
	                             (json_int_t)s->restarts_killed, "manual",
	                             (json_int_t)s->restarts_manual, "reload", (json_int_t)s->reloads,
	                             "from_standby", (json_int_t)s->standby_swaps);
	json_t *stats = json_pack(
	    "{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:o,s:I,s:I,s:I,s:I,s:b,s:b,s:f}", "scans", (json_int_t)s->scans,
	    "ok", (json_int_t)s->ok, "errors", (json_int_t)s->errors, "timeouts",
	    (json_int_t)s->timeouts, "memory_stops", (json_int_t)s->memory_stops, "overloaded",
	    (json_int_t)s->overloaded, "unavailable", (json_int_t)s->unavailable, "restarts", restarts,
	    "failed_starts", (json_int_t)s->failed_starts, "generation", (json_int_t)s->generation,
	    "heap_bytes", (json_int_t)s->heap_bytes, "queue_depth", (json_int_t)s->queue_depth,
	    "quarantined", s->quarantined, "running", s->running, "latency_avg_ms",
	    s->scans ? s->latency_sum_ms / (double)s->scans : 0.0);
	return json_pack("{s:s,s:s,s:s,s:I,s:o,s:o}", "id", in->id, "version", in->version, "dir",
	                 in->dir, "instances", (json_int_t)in->instances, "limits", limits, "stats",
	                 stats);
}

int txs_host_plugins_json(txs_host *h, char **out)
{
	json_t *arr = json_array();
	txs_plugin_info info;
	for (size_t i = 0; i < h->n; i++)
		if (txs_host_plugin_info(h, i, &info) == 0)
			json_array_append_new(arr, info_json(&info));
	*out = json_dumps(arr, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
	json_decref(arr);
	return *out ? 0 : txs_fail(TXS_ENOMEM, "out of memory");
}

bool txs_host_ready(txs_host *h)
{
	for (size_t i = 0; i < h->n; i++) {
		plugin *p = h->plugins[i];
		for (uint32_t k = 0; k < p->instances; k++) {
			txs_executor_stats s;
			txs_executor_stats_get(p->ex[k], &s);
			if (s.quarantined || !s.running)
				return false;
		}
	}
	return h->n > 0;
}

uint32_t txs_host_in_flight(const txs_host *h)
{
	return atomic_load(&((txs_host *)h)->in_flight);
}

uint64_t txs_host_console_dropped(const txs_host *h)
{
	return h->sink ? console_sink_dropped(h->sink) : 0;
}
