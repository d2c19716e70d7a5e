/*
 * scan.c - `txscan scan`: transactions in (JSON Lines, one JSON object, or a
 * JSON array; files or stdin), one report line per input, in input order.
 *
 * Batch throughput comes from keeping WINDOW fan-outs in flight: the main
 * thread submits, executor threads drop finished reports into a reorder
 * ring, and the main thread writes them out strictly in input order.
 *
 * Both hand-offs go by the CHUNK, since every wake-up of a thread is a
 * trip through the kernel (and the hypervisor, on a virtual machine): the
 * main thread submits CHUNK transactions with one wake-up of the executors
 * (txs_host_submit_many), and once the window is full it sleeps until
 * CHUNK reports can be written, woken by the report that completes them.
 * All input is in memory by then, so holding a chunk back delays nothing.
 */
#define _GNU_SOURCE
#include "cli.h"
#include "util/clock.h"
#include "util/jscan.h"
#include "util/log.h"
#include "util/sbuf.h"
#include "txscan.h"

#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define WINDOW 512
#define CHUNK 64 /* submissions per wake-up of the executors; divides WINDOW */
#define MAX_DIRS 32

enum format { FORMAT_JSONL, FORMAT_TABLE };

struct opts {
	const char *dirs[MAX_DIRS];
	int ndirs;
	txs_severity fail_on;
	enum format format;
	int progress; /* -1 auto */
	int quiet_console;
	int quiet;    /* -q: no progress, no summary, no console */
	int allow_partial;
};

struct totals {
	uint64_t inputs, input_errors, incomplete, findings;
	uint64_t by_verdict[6];
	uint64_t failing; /* verdict >= fail_on */
};

struct pipeline {
	txs_host *host;
	const struct opts *o;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	txs_report *ring[WINDOW]; /* under mu */
	uint64_t wait_seq;        /* under mu: the report the main thread sleeps for */
	uint64_t next_in, next_out;
	txs_submission pending[CHUNK]; /* taken in, not yet submitted */
	size_t npending;
	const char *file;
	struct totals t;
	size_t bytes_total, bytes_done;
	double t0, last_progress;
	bool drawn;      /* the progress line is on the terminal now */
	bool err_tty;    /* stderr is a terminal: the progress line is erased with \033[K */
	bool shared_tty; /* stdout is a terminal too: rows and progress share it */
};

struct ticket {
	struct pipeline *p;
	uint64_t seq;
};
static struct ticket tickets[WINDOW];

static double now_s(void)
{
	return (double)txs_now_ns() / 1e9;
}

static void usage(FILE *out)
{
	fprintf(out,
	        "usage: txscan scan [-p DIR]... [--fail-on SEVERITY] [--format jsonl|table]\n"
	        "                   [--progress|--no-progress] [-q] [--quiet-console] [--allow-partial]\n"
	        "                   [--isolation thread|process] [FILE...]\n"
	        "       txscan scan [--rpc URL] (--tx HASH... | --block N|latest | --blocks A..B)\n"
	        "                   [-p DIR]... [--no-receipts] [--fail-on SEVERITY]\n"
	        "                   [--timeout-ms N] [--retries N] [--max-response-mb N]\n\n"
	        "Scans transactions with every plugin and prints one report per input, in input\n"
	        "order. Input: JSON Lines, one JSON object, or a JSON array, from each FILE or\n"
	        "from stdin ('-' or no FILE). JSON Lines on stdin or a pipe are a stream: each\n"
	        "report is written once its line is in and scanned, not at end of input. An\n"
	        "input line that is not a JSON object gets an error line and the run goes on.\n"
	        "Options may come before or after the files;\n"
	        "'--' ends them (a FILE after it may start with '-').\n\n"
	        CLI_PLUGINS_HELP
	        "  --fail-on SEVERITY  exit 1 when any verdict is at or above SEVERITY\n"
	        "                      (info, low, medium, high, critical; default high)\n"
	        "  --format FORMAT     jsonl (default): one report per line, and a closing\n"
	        "                      summary on stderr when that is a terminal; table: a row\n"
	        "                      per report and the closing summary\n"
	        "  --progress          progress on stderr (default: when stderr is a terminal)\n"
	        CLI_QUIET_HELP
	        "  --quiet-console     discard plugins' console output (default: JSON lines on\n"
	        "                      stderr)\n"
	        "  --allow-partial     scan with the plugins that start: one that fails to load\n"
	        "                      is \"unavailable\" in every report (complete: false) and\n"
	        "                      retried in the background (default: every failing plugin\n"
	        "                      is listed and nothing is scanned)\n"
	        CLI_ISOLATION_HELP
	        CLI_LOG_HELP
	        "  --rpc URL           fetch from an Ethereum node (default $TXSCAN_RPC_URL): the\n"
	        "                      transactions --tx (repeatable), or every transaction of\n"
	        "                      --block or --blocks, with receipts; JSON Lines reports\n"
	        "                      with \"chainId\" and \"block\" (docs/chains.md)\n\n"
	        "exit status: 0 clean; 1 a verdict at or above --fail-on; 2 a plugin failed to\n"
	        "load (each is listed), or an input or plugin error (invalid input, or a plugin\n"
	        "that did not answer ok: the scan is incomplete) -- 2 wins over 1; 64 usage\n"
	        "error.\n");
}

/* One option at argv[*i] (its value, if any, after it): 0, or -1 with the
 * error said. */
static int scan_opt(int argc, char **argv, int *i, struct opts *o)
{
	const char *a = argv[*i];
	int r = cli_plugins_opt(argc, argv, i, o->dirs, &o->ndirs, MAX_DIRS);
	if (r != 0)
		return r < 0 ? -1 : 0;
	if (!strcmp(a, "--fail-on") && *i + 1 < argc) {
		if (txs_severity_parse(argv[++*i], &o->fail_on) || o->fail_on == TXS_SEVERITY_NONE) {
			cli_error("--fail-on: unknown severity '%s' (info, low, medium, high, critical)",
			          argv[*i]);
			return -1;
		}
	} else if (!strcmp(a, "--format") && *i + 1 < argc) {
		const char *f = argv[++*i];
		if (strcmp(f, "jsonl") && strcmp(f, "table")) {
			cli_error("--format: unknown format '%s' (jsonl, table)", f);
			return -1;
		}
		o->format = !strcmp(f, "table") ? FORMAT_TABLE : FORMAT_JSONL;
	} else if (!strcmp(a, "--progress") || !strcmp(a, "--no-progress")) {
		o->progress = !strcmp(a, "--progress");
	} else if (!strcmp(a, "--quiet-console")) {
		o->quiet_console = 1;
	} else if (cli_is_quiet(a)) {
		o->quiet = o->quiet_console = 1;
	} else if (!strcmp(a, "--allow-partial")) {
		o->allow_partial = 1;
	} else if (!strcmp(a, "--fail-on") || !strcmp(a, "--format")) {
		cli_error("%s needs a value (see txscan scan --help)", a);
		return -1;
	} else {
		cli_error("scan: unknown option '%s' (see txscan scan --help)", a);
		return -1;
	}
	return 0;
}

/* Options may come before or after the files, as GNU tools take them
 * (`txscan scan tx.jsonl --format table` must not scan a file named
 * "--format"); "--" ends the options. The files are moved, in their
 * order, to the end of argv: *first_file is the first of them. */
static int parse_args(int argc, char **argv, struct opts *o, int *first_file)
{
	*o = (struct opts){.fail_on = TXS_SEVERITY_HIGH, .progress = -1};
	char **files = calloc((size_t)argc + 1, sizeof *files);
	if (!files) {
		cli_error("out of memory");
		return -1;
	}
	int nf = 0, rc = 0;
	for (int i = 1; i < argc && rc == 0; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "--")) {
			while (++i < argc)
				files[nf++] = argv[i];
			break;
		}
		if (a[0] != '-' || !a[1]) { /* a file, or "-" for standard input */
			files[nf++] = argv[i];
			continue;
		}
		rc = scan_opt(argc, argv, &i, o);
	}
	for (int k = 0; k < nf; k++)
		argv[argc - nf + k] = files[k];
	free(files);
	*first_file = argc - nf;
	return rc;
}

/* ---- output ---------------------------------------------------------------- */

static void table_header(void)
{
	printf("%-6s %-14s %-9s %s\n", "LINE", "TX", "VERDICT", "FINDINGS");
}

/* The escape that shows the character at s (n bytes left) when it must
 * not reach the terminal as it is, else NULL; *k gets its length. */
static const char *escape_of(const unsigned char *s, size_t n, char esc[12], size_t *k)
{
	unsigned c = s[0];
	*k = 1;
	if (c == 0xC2 && n > 1 && s[1] < 0xA0) { /* C1 controls, U+0080..U+009F */
		*k = 2;
		snprintf(esc, 12, "\\u%04x", s[1]);
	} else if (c == 0xE2 && n > 2 && ((s[1] == 0x80 && s[2] >= 0xA8 && s[2] <= 0xAE) ||
	                                  (s[1] == 0x81 && s[2] >= 0xA6 && s[2] <= 0xA9))) {
		*k = 3; /* line and paragraph separators, bidirectional overrides */
		snprintf(esc, 12, "\\u%04x", 0x2000u | (s[1] & 0x3Fu) << 6 | (s[2] & 0x3Fu));
	} else if (c == '\n' || c == '\r' || c == '\t' || c == '\\') {
		snprintf(esc, 12, "\\%c", c == '\n' ? 'n' : c == '\r' ? 'r' : c == '\t' ? 't' : '\\');
	} else if (c < 0x20 || c == 0x7f) {
		snprintf(esc, 12, "\\x%02x", c);
	} else {
		return NULL;
	}
	return esc;
}

/* Text from a report (NULs and all) as one table line may show it:
 * control characters (C0, DEL, C1), the line separators and the
 * bidirectional overrides as visible escapes, so that no value (an input's
 * hash, an error) can break a line, forge a row or steer the terminal. A
 * backslash is doubled: escapes are unambiguous. NULL when out of memory. */
static char *shown(const char *s, size_t n)
{
	sbuf b = {0};
	char esc[12];
	for (size_t i = 0, k; i < n; i += k) {
		const char *e = escape_of((const unsigned char *)s + i, n - i, esc, &k);
		sb_put(&b, e ? e : s + i, e ? strlen(e) : k);
	}
	sb_put(&b, "", 0);
	return b.oom ? NULL : b.p;
}

/* Byte offset of character `index` of UTF-8 s (len bytes), or len. */
static size_t char_at(const char *s, size_t len, size_t index)
{
	for (size_t i = 0, c = 0; i < len; i++)
		if (((unsigned char)s[i] & 0xC0) != 0x80 && c++ == index)
			return i;
	return len;
}

/* The input's hash or id, short (0x5c50f3..a1b2), in whole characters. */
static void short_tx(const txs_report *rep, char *buf, size_t n)
{
	size_t raw_len;
	const char *raw = txs_report_tx(rep, &raw_len);
	char *t = raw ? shown(raw, raw_len) : NULL;
	size_t len = t ? strlen(t) : 0, chars = 0;
	for (size_t i = 0; i < len; i++)
		chars += ((unsigned char)t[i] & 0xC0) != 0x80;
	if (!t)
		snprintf(buf, n, "-");
	else if (chars <= 13)
		snprintf(buf, n, "%s", t);
	else
		snprintf(buf, n, "%.*s..%s", (int)char_at(t, len, 6), t, t + char_at(t, len, chars - 4));
	free(t);
}

/* One row, from the report's own data through the public accessors (no
 * re-parse: jansson refused reports with a NUL in a string). Codes and
 * plugin ids are checked by the library; the tx and errors are escaped. */
static void table_row(const txs_report *rep)
{
	char tx[64];
	const char *err = txs_report_error(rep);
	unsigned long long line = (unsigned long long)txs_report_line(rep);
	if (err) {
		char *e = shown(err, strlen(err));
		printf("%-6llu %-14s %-9s %s\n", line, "-", "ERROR", e ? e : "?");
		free(e);
		return;
	}
	short_tx(rep, tx, sizeof tx);
	printf("%-6llu %-14s %-9s", line, tx, txs_severity_name(txs_report_verdict(rep)));
	txs_report_finding f;
	for (size_t i = 0; txs_report_finding_get(rep, i, &f) == 0; i++)
		printf(" %s:%s(%s)", f.plugin, f.code, txs_severity_name(f.severity));
	txs_report_plugin p;
	for (size_t i = 0; txs_report_plugin_get(rep, i, &p) == 0; i++)
		if (p.status != TXS_STATUS_OK)
			printf(" !%s:%s", p.id, txs_status_name(p.status));
	putchar('\n');
}

static void count(struct pipeline *p, const txs_report *rep)
{
	struct totals *t = &p->t;
	txs_severity v = txs_report_verdict(rep);
	t->inputs++;
	if (txs_report_input_error(rep)) {
		t->input_errors++;
		return;
	}
	t->incomplete += !txs_report_complete(rep);
	t->by_verdict[v]++;
	t->failing += v >= p->o->fail_on;
}

/* Before a row goes to a terminal that shows the progress line: the line is
 * cleared (carriage return, erase to end of line), so the row starts at
 * column 0 and nothing of the progress is left beside it; progress() draws
 * it again under the row. */
static void clear_progress(struct pipeline *p)
{
	if (!p->drawn || !p->shared_tty)
		return;
	fputs("\r\033[K", stderr);
	p->drawn = false;
}

static void emit(struct pipeline *p, txs_report *rep)
{
	size_t len;
	const char *json = txs_report_json(rep, &len);
	count(p, rep);
	clear_progress(p);
	if (p->o->format == FORMAT_TABLE) {
		table_row(rep);
	} else {
		fwrite(json, 1, len, stdout);
		fputc('\n', stdout);
	}
	if (p->shared_tty && p->o->progress == 1)
		fflush(stdout); /* the row is out before the progress is drawn again */
	txs_report_free(rep);
}

static void progress(struct pipeline *p, int done)
{
	double now = now_s();
	/* redrawn at once after a row cleared it, else at most every 0.2 s */
	if (p->o->progress != 1 || (!done && p->drawn && now - p->last_progress < 0.2))
		return;
	p->last_progress = now;
	p->drawn = true;
	double el = now - p->t0, rate = el > 0 ? (double)p->next_out / el : 0;
	fprintf(stderr, "\r%s%10llu tx  %8.0f tx/s", p->err_tty ? "\033[K" : "",
	        (unsigned long long)p->next_out, rate);
	if (p->bytes_total && p->bytes_done) {
		double frac = (double)p->bytes_done / (double)p->bytes_total;
		fprintf(stderr, "  %3.0f%%  ETA %.0fs ", frac * 100, frac > 0 ? el / frac - el : 0);
	}
	if (done)
		fputc('\n', stderr);
}

/* ---- the window ------------------------------------------------------------- */

static void on_report(txs_report *rep, void *ud)
{
	struct ticket *t = ud;
	struct pipeline *p = t->p;
	pthread_mutex_lock(&p->mu);
	p->ring[t->seq % WINDOW] = rep;
	bool wake = t->seq == p->wait_seq;
	pthread_mutex_unlock(&p->mu);
	if (wake)
		pthread_cond_signal(&p->cv);
}

/* Submits what is pending, with one wake-up of the executors. */
static void flush(struct pipeline *p)
{
	size_t n = p->npending, done = 0;
	p->npending = 0;
	while (done < n) {
		done += txs_host_submit_many(p->host, p->pending + done, n - done, on_report);
		if (done == n)
			break;
		/* only out of memory gets here: no report will come, say so */
		cli_error("%s:%llu: not scanned: %s", p->file,
		          (unsigned long long)p->pending[done].line, txs_last_error());
		p->t.input_errors++;
		struct ticket *t = p->pending[done].userdata;
		t->p = NULL; /* a hole: no report comes, and drain skips it */
		done++;
	}
}

/* Takes the report of seq, sleeping until it is in; NULL for a hole. */
static txs_report *take(struct pipeline *p, uint64_t seq, uint64_t last)
{
	if (!tickets[seq % WINDOW].p)
		return NULL;
	pthread_mutex_lock(&p->mu);
	txs_report **slot = &p->ring[seq % WINDOW];
	if (!*slot) {
		/* reports come nearly in order: sleep until the last one wanted is
		 * in, then for any before it that is still out */
		if (!p->ring[last % WINDOW] && tickets[last % WINDOW].p)
			p->wait_seq = last;
		else
			p->wait_seq = seq;
		while (!*slot) {
			pthread_cond_wait(&p->cv, &p->mu);
			if (p->wait_seq != seq && p->ring[p->wait_seq % WINDOW])
				p->wait_seq = seq;
		}
		p->wait_seq = UINT64_MAX;
	}
	txs_report *rep = *slot;
	*slot = NULL;
	pthread_mutex_unlock(&p->mu);
	return rep;
}

/* Writes reports in order until at most `keep` are in flight. */
static void drain(struct pipeline *p, uint64_t keep)
{
	flush(p);
	if (p->next_in - p->next_out <= keep)
		return;
	uint64_t last = p->next_in - keep - 1;
	while (p->next_out <= last) {
		txs_report *rep = take(p, p->next_out, last);
		p->next_out++;
		if (rep) {
			emit(p, rep);
			progress(p, 0);
		}
	}
}

/* Queues one transaction; `stable` says that tx outlives the next flush
 * (else it is submitted at once). */
static void submit(struct pipeline *p, const char *tx, size_t len, uint64_t line, bool stable)
{
	if (p->next_in - p->next_out == WINDOW)
		drain(p, WINDOW - CHUNK);
	struct ticket *t = &tickets[p->next_in % WINDOW];
	*t = (struct ticket){.p = p, .seq = p->next_in++};
	p->pending[p->npending++] = (txs_submission){.tx = tx, .len = len, .line = line, .userdata = t};
	if (!stable || p->npending == CHUNK)
		flush(p);
}

/* ---- input ------------------------------------------------------------------ */

static const char *skip_ws(const char *s, const char *end)
{
	while (s < end && (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n'))
		s++;
	return s;
}

struct array_walk {
	struct pipeline *p;
	const char *text;
	uint64_t n;
};

/* One element of a top-level array: submitted as the text it is. */
static bool array_element(jscan *s, int depth, void *ud)
{
	struct array_walk *w = ud;
	const char *b = s->p;
	if (!jscan_value(s, depth))
		return false;
	submit(w->p, b, (size_t)(s->p - b), ++w->n, false);
	w->p->bytes_done = (size_t)(s->p - w->text);
	return true;
}

/* A JSON array of transactions: checked whole first (a broken array is
 * one error, as before, and nothing of it is scanned), then each element
 * submitted as its own text, in place: no tree of the file is built (a
 * 13 MB array of 20,000 transactions took jansson's tree and a re-encoded
 * copy of each element: 139 MB peak RSS and 1.38 s against 87 MB and
 * 0.82 s, the same reports). */
static void scan_array(struct pipeline *p, const char *text, size_t len)
{
	jscan s;
	jscan_init(&s, text, len);
	jscan_ws(&s);
	if (jscan_value(&s, 1))
		jscan_end(&s);
	if (s.syntax) {
		/* the host reports the same parse error, as this input's one output */
		size_t at = (size_t)(s.p - text), line, column;
		jscan_position(&s, &line, &column);
		submit(p, text, at + 1 < len ? at + 1 : len, line, false);
		return;
	}
	struct array_walk w = {.p = p, .text = text};
	jscan_init(&s, text, len);
	jscan_ws(&s);
	jscan_array(&s, 1, array_element, &w);
}

/* True when text is exactly one JSON value (whitespace around it): checked
 * in place (util/jscan.c), nothing built, so a 300 MB first line costs no
 * memory beyond its bytes (jansson built it, twice, to answer this). */
static bool one_json_value(const char *text, size_t len)
{
	jscan s;
	jscan_init(&s, text, len);
	jscan_ws(&s);
	if (jscan_value(&s, 1))
		jscan_end(&s);
	return !s.syntax;
}

static void scan_lines(struct pipeline *p, const char *text, size_t len)
{
	const char *s = text, *end = text + len;
	uint64_t line = 0;
	while (s < end) {
		const char *nl = memchr(s, '\n', (size_t)(end - s));
		const char *e = nl ? nl : end;
		line++;
		if (skip_ws(s, e) < e)
			submit(p, s, (size_t)(e - s), line, true);
		s = e + 1;
		p->bytes_done = (size_t)(s - text);
	}
}

/* Which of the three an input is: one JSON array of transactions, one
 * JSON value over several lines (a pretty-printed object), or JSON Lines.
 * A text that starts with '[' is an array unless it is not one while its
 * first line is a value by itself: JSON Lines whose first line is an array
 * (an error of that line alone), not a broken array that would take every
 * line after it down with it. */
static void scan_text(struct pipeline *p, const char *text, size_t len)
{
	const char *start = skip_ws(text, text + len), *end = text + len;
	const char *nl = memchr(start, '\n', (size_t)(end - start));
	bool first_line = nl && one_json_value(start, (size_t)(nl - start));
	if (start < end && *start == '[' && !(first_line && !one_json_value(start, (size_t)(end - start))))
		scan_array(p, text, len);
	else if (nl && !first_line && one_json_value(start, (size_t)(end - start)))
		submit(p, start, (size_t)(end - start), 1, false);
	else
		scan_lines(p, text, len);
}

/* ---- a stream (stdin, a pipe) -------------------------------------------- */

struct inbuf {
	char *p;
	size_t len, cap;
	uint64_t total; /* bytes read in all: where an error stopped the input */
	bool eof; /* end of input, or an error (err) */
	int err;
};

/* Reads what is there (blocking until something is, or end of input) into
 * b, growing it when full. False at end of input or on an error (errno). */
static bool inbuf_read(struct inbuf *b, int fd)
{
	if (b->len == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 1 << 16;
		char *grown = realloc(b->p, cap);
		if (!grown) {
			b->eof = true;
			b->err = ENOMEM;
			return false;
		}
		b->p = grown;
		b->cap = cap;
	}
	ssize_t r;
	while ((r = read(fd, b->p + b->len, b->cap - b->len)) < 0 && errno == EINTR) {
	}
	if (r <= 0) {
		b->eof = true;
		b->err = r < 0 ? errno : 0;
		return false;
	}
	b->len += (size_t)r;
	b->total += (uint64_t)r;
	return true;
}

static bool readable_now(int fd)
{
	struct pollfd pf = {.fd = fd, .events = POLLIN};
	return poll(&pf, 1, 0) > 0;
}

/* Submits every complete line of b (line numbers from *line on), then
 * keeps only the partial last line. The host copies what it is given
 * (flush) before the buffer moves. */
static void stream_lines(struct pipeline *p, struct inbuf *b, uint64_t *line)
{
	char *s = b->p, *end = b->p + b->len, *nl;
	while ((nl = memchr(s, '\n', (size_t)(end - s)))) {
		++*line;
		if (skip_ws(s, nl) < nl)
			submit(p, s, (size_t)(nl - s), *line, true);
		s = nl + 1;
	}
	flush(p);
	b->len = (size_t)(end - s);
	memmove(b->p, s, b->len);
}

/* JSON Lines from a stream are scanned as they arrive: a line's report is
 * out once the line is in and scanned, not at end of input, so that
 * `producer | txscan scan` is a pipeline and its memory is bounded by the
 * longest line, not by the stream. Before blocking for more input, every
 * report of what came is written. An input that starts with '[' (an
 * array), or whose first line is not one JSON value (a pretty-printed
 * object), is read whole first, as from a file. */
static int scan_stream(struct pipeline *p, int fd)
{
	struct inbuf b = {0};
	const char *first = NULL, *nl = NULL;
	for (;;) {
		first = skip_ws(b.p, b.p + b.len);
		if (first < b.p + b.len &&
		    (*first == '[' || (nl = memchr(first, '\n', (size_t)(b.p + b.len - first)))))
			break;
		if (!inbuf_read(&b, fd))
			break;
	}
	bool lines = nl && *first != '[' && one_json_value(b.p, (size_t)(nl - b.p));
	uint64_t line = 0;
	while (lines && !b.eof) {
		stream_lines(p, &b, &line);
		if (!readable_now(fd)) { /* the reports of what came go out before waiting */
			drain(p, 0);
			fflush(stdout);
		}
		inbuf_read(&b, fd);
	}
	while (!b.eof)
		inbuf_read(&b, fd);
	if (b.err) /* what came is scanned; the rest is said lost */
		cli_error("%s: cannot read past byte %llu: %s", p->file, (unsigned long long)b.total,
		          strerror(b.err));
	if (lines) {
		stream_lines(p, &b, &line);
		if (skip_ws(b.p, b.p + b.len) < b.p + b.len) /* a last line without a newline */
			submit(p, b.p, b.len, line + 1, false);
	} else {
		p->bytes_total = b.len;
		scan_text(p, b.p ? b.p : "", b.len);
	}
	drain(p, 0);
	free(b.p);
	return b.err ? -1 : 0;
}

/* A regular file is mapped, not read: reading 60 MB into the heap costs a
 * page fault per 4 KiB page, while a mapping of the page cache faults in
 * pages by the 16 (fault-around). Anything else (stdin, a pipe) is read. */
static const char *map_file(FILE *f, size_t *len)
{
	struct stat st;
	if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode) || st.st_size <= 0 ||
	    (uint64_t)st.st_size > SIZE_MAX)
		return NULL;
	void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fileno(f), 0);
	if (m == MAP_FAILED)
		return NULL;
	madvise(m, (size_t)st.st_size, MADV_SEQUENTIAL);
	*len = (size_t)st.st_size;
	return m;
}

static int scan_file(struct pipeline *p, const char *path)
{
	bool is_stdin = !strcmp(path, "-");
	FILE *f = is_stdin ? stdin : fopen(path, "rb");
	if (!f) {
		cli_error("%s: %s", path, strerror(errno));
		return -1;
	}
	p->file = path;
	p->bytes_total = 0;
	p->bytes_done = 0;
	size_t len = 0;
	const char *mapped = is_stdin ? NULL : map_file(f, &len);
	int rc = 0;
	if (mapped) {
		p->bytes_total = len;
		scan_text(p, mapped, len);
		drain(p, 0);
		munmap((void *)mapped, len);
	} else {
		rc = scan_stream(p, fileno(f));
	}
	if (!is_stdin)
		fclose(f);
	return rc;
}

/* The closing summary: under the table on stdout, or (JSON Lines) on stderr
 * when that is a terminal, so the report stream stays one report per line. */
static void summary(const struct pipeline *p, FILE *out)
{
	const struct totals *t = &p->t;
	fprintf(out, "%s%llu transaction%s: %llu critical, %llu high, %llu medium, %llu low, "
	       "%llu info, %llu clean; %llu incomplete, %llu invalid input\n",
	       out == stdout ? "\n" : "", (unsigned long long)t->inputs, t->inputs == 1 ? "" : "s",
	       (unsigned long long)t->by_verdict[TXS_SEVERITY_CRITICAL],
	       (unsigned long long)t->by_verdict[TXS_SEVERITY_HIGH],
	       (unsigned long long)t->by_verdict[TXS_SEVERITY_MEDIUM],
	       (unsigned long long)t->by_verdict[TXS_SEVERITY_LOW],
	       (unsigned long long)t->by_verdict[TXS_SEVERITY_INFO],
	       (unsigned long long)t->by_verdict[TXS_SEVERITY_NONE],
	       (unsigned long long)t->incomplete, (unsigned long long)t->input_errors);
}

int cmd_scan(int argc, char **argv)
{
	struct opts o;
	int first;
	if (cli_wants_help(argc, argv)) {
		usage(stdout);
		return EXIT_CLEAN;
	}
	if (cli_scan_wants_rpc(argc, argv))
		return cmd_scan_rpc(argc, argv);
	if (parse_args(argc, argv, &o, &first) < 0)
		return EXIT_USAGE;
	bool err_tty = isatty(STDERR_FILENO);
	if (o.progress < 0)
		o.progress = err_tty;
	if (o.quiet)
		o.progress = 0;
	if (o.progress == 1 && err_tty)
		txs_log_erase_line(true); /* log lines start by erasing the progress line */
	txs_host_options hopt = {.scan_timeout_ms = UINT32_MAX, .console_quiet = o.quiet_console,
	                         .allow_partial = o.allow_partial != 0};
	txs_host *h = cli_load_host_opts(o.dirs, o.ndirs, &hopt);
	if (!h)
		return cli_load_exit();
	struct pipeline p = {.host = h, .o = &o, .mu = PTHREAD_MUTEX_INITIALIZER,
	                     .cv = PTHREAD_COND_INITIALIZER, .wait_seq = UINT64_MAX, .t0 = now_s(),
	                     .err_tty = err_tty, .shared_tty = isatty(STDOUT_FILENO) && err_tty};
	if (o.format == FORMAT_TABLE)
		table_header();
	int failed = 0;
	if (first >= argc)
		failed |= scan_file(&p, "-");
	for (int i = first; i < argc; i++)
		failed |= scan_file(&p, argv[i]);
	progress(&p, 1);
	if (o.format == FORMAT_TABLE && !o.quiet)
		summary(&p, stdout);
	else if (!o.quiet && err_tty)
		summary(&p, stderr);
	fflush(stdout);
	txs_host_free(h);
	if (failed || p.t.input_errors || p.t.incomplete)
		return EXIT_ERRORS;
	return p.t.failing ? EXIT_FINDING : EXIT_CLEAN;
}
