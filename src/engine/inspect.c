/*
 * inspect.c - values as a developer console prints them, in C (the console
 * runs on the scan path: no JavaScript of txscan's formats anything).
 *
 * The format follows Node's util.inspect, which rule authors read every
 * day: strings bare at the top level and quoted inside, `1n`, `-0`,
 * `[Function: f]`, `[ 1, 2 ]`, `{ a: 1 }`, `Map(1) { 'k' => 1 }`, Errors
 * with their name, message and stack, objects below depth 2 as `[Object]`,
 * a reference back to an ancestor as `[Circular]`, and no more than
 * CONSOLE_MAX_LINE bytes (the host cuts the line there anyway). Property
 * reads run the plugin's getters: they are under the watchdog like any
 * plugin code, and a getter that throws prints `[Exception]`.
 */
#define _GNU_SOURCE
#include "webapi.h"

#include "jsval.h"
#include "util/srcmap.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEPTH_MAX 2
#define ITEMS_MAX 100
#define ANCESTORS_MAX (DEPTH_MAX + 2)

struct insp {
	engine *e;
	JSContextRef ctx;
	sbuf *out;
	JSValueRef *exc;
	JSObjectRef ancestors[ANCESTORS_MAX];
	int nanc;
};

static bool stopped(const struct insp *in)
{
	return in->e->killed != ENGINE_OK;
}

static bool full(const struct insp *in)
{
	return in->out->oom || in->out->len > CONSOLE_MAX_LINE;
}

/* o[name]; a getter that threw gives NULL (the caller prints
 * [Exception]), the termination is kept in *exc. */
static JSValueRef get(struct insp *in, JSObjectRef o, const char *name)
{
	JSValueRef x = NULL;
	JSValueRef v = jsv_get(in->ctx, o, name, &x);
	if (x && stopped(in))
		*in->exc = x;
	return x ? NULL : v;
}

static JSObjectRef global_ctor(struct insp *in, const char *name)
{
	return jsv_object_prop(in->ctx, JSContextGetGlobalObject(in->ctx), name);
}

static bool is_a(struct insp *in, JSValueRef v, const char *ctor)
{
	JSObjectRef c = global_ctor(in, ctor);
	return c && JSObjectIsConstructor(in->ctx, c) &&
	       JSValueIsInstanceOfConstructor(in->ctx, v, c, NULL);
}

/* String(v) as UTF-8 (symbols too), no more of it than a line can show:
 * a long string is sliced in the VM before any of it is copied out (a
 * string of 2^28 characters nested in an object took the host ~1 GB, in
 * native code the watchdog cannot stop); NULL when it threw. */
static char *text_of(struct insp *in, JSValueRef v)
{
	JSValueRef x = NULL;
	size_t len, cut;
	char *t = jsv_text_head(in->ctx, in->e->string_fn, in->e->slice_fn, v, CONSOLE_MAX_LINE + 1,
	                        &len, &cut, &x);
	if (!t && stopped(in))
		*in->exc = x;
	in->e->console_cut += cut; /* the line's note counts it */
	return t;
}

/* A property name as UTF-8, no more of it than a line can show. */
static char *key_of(struct insp *in, JSStringRef k)
{
	size_t len, cut;
	char *t = jsv_utf8_head(k, CONSOLE_MAX_LINE + 1, &len, &cut);
	in->e->console_cut += cut;
	return t;
}

/* A string in single quotes, escaped as Node escapes it. */
static void put_quoted(sbuf *out, const char *s)
{
	sb_put(out, "'", 1);
	for (const unsigned char *p = (const unsigned char *)s; *p && out->len <= CONSOLE_MAX_LINE; p++) {
		char esc[8];
		switch (*p) {
		case '\'': sb_put(out, "\\'", 2); break;
		case '\\': sb_put(out, "\\\\", 2); break;
		case '\n': sb_put(out, "\\n", 2); break;
		case '\r': sb_put(out, "\\r", 2); break;
		case '\t': sb_put(out, "\\t", 2); break;
		default:
			if (*p < 0x20) {
				snprintf(esc, sizeof esc, "\\x%02X", *p);
				sb_str(out, esc);
			} else {
				sb_put(out, (const char *)p, 1);
			}
		}
	}
	sb_put(out, "'", 1);
}

static void put_key(sbuf *out, const char *k)
{
	bool ident = *k && (isalpha((unsigned char)*k) || *k == '_' || *k == '$');
	for (const char *p = k; ident && *p; p++)
		ident = isalnum((unsigned char)*p) || *p == '_' || *p == '$';
	if (ident)
		sb_str(out, k);
	else
		put_quoted(out, k);
}

static bool fmt(struct insp *in, JSValueRef v, int depth, bool top);

static bool fmt_primitive(struct insp *in, JSValueRef v, bool top)
{
	JSContextRef ctx = in->ctx;
	if (JSValueIsNumber(ctx, v)) {
		double d = JSValueToNumber(ctx, v, NULL);
		if (d == 0 && signbit(d)) {
			sb_str(in->out, "-0");
			return true;
		}
	}
	char *t = text_of(in, v);
	if (!t)
		return !stopped(in);
	if (JSValueIsString(ctx, v) && !top)
		put_quoted(in->out, t);
	else
		sb_str(in->out, t);
	if (JSValueGetType(ctx, v) == kJSTypeBigInt)
		sb_put(in->out, "n", 1);
	free(t);
	return true;
}

static char *name_of(struct insp *in, JSObjectRef o)
{
	JSValueRef n = get(in, o, "name");
	return n && JSValueIsString(in->ctx, n) ? text_of(in, n) : NULL;
}

/* The stack's lines, each as "    at fn (file:line:col)", native frames
 * dropped. */
static void put_stack(struct insp *in, const char *stack)
{
	char *st = srcmap_rewrite(stack, CONSOLE_MAX_LINE); /* a bundle's positions, as the original files' */
	if (!st)
		st = strdup(stack);
	if (!st)
		return;
	jsv_strip_stack(st);
	for (char *line = st; *line;) {
		char *nl = strchr(line, '\n');
		size_t n = nl ? (size_t)(nl - line) : strlen(line);
		const char *at = memchr(line, '@', n);
		if (n) /* JSC's "fn@file:1:2" as Node's "at fn (file:1:2)" */
			sb_str(in->out, "\n    at ");
		if (n && at && at > line) {
			sb_put(in->out, line, (size_t)(at - line));
			sb_str(in->out, " (");
			sb_put(in->out, at + 1, n - (size_t)(at - line) - 1);
			sb_str(in->out, ")");
		} else if (n) {
			sb_put(in->out, at ? at + 1 : line, at ? n - 1 : n);
		}
		line += n + (nl != NULL);
	}
	free(st);
}

/* "Name: message" and, at the top, its stack; nested: [Name: message]. */
static bool fmt_error(struct insp *in, JSObjectRef o, bool top)
{
	char *name = name_of(in, o);
	JSValueRef m = stopped(in) ? NULL : get(in, o, "message");
	char *msg = m && !JSValueIsUndefined(in->ctx, m) ? text_of(in, m) : NULL;
	JSValueRef s = stopped(in) ? NULL : get(in, o, "stack");
	char *stack = s && JSValueIsString(in->ctx, s) ? text_of(in, s) : NULL;
	if (!top)
		sb_put(in->out, "[", 1);
	sb_str(in->out, name ? name : "Error");
	if (msg && *msg) {
		sb_str(in->out, ": ");
		sb_str(in->out, msg);
	}
	if (top && stack)
		put_stack(in, stack);
	if (!top)
		sb_put(in->out, "]", 1);
	free(name);
	free(msg);
	free(stack);
	return !stopped(in);
}

/* Calls o[method]() and returns its value, or NULL. */
static JSValueRef call_method(struct insp *in, JSObjectRef o, const char *method)
{
	JSValueRef f = get(in, o, method);
	if (!jsv_is_function(in->ctx, f))
		return NULL;
	JSValueRef x = NULL;
	JSValueRef r = JSObjectCallAsFunction(in->ctx, (JSObjectRef)f, o, 0, NULL, &x);
	if (x && stopped(in))
		*in->exc = x;
	return x ? NULL : r;
}

/* Map(n) { k => v } and Set(n) { v }, through their entries() iterator. */
static bool fmt_collection(struct insp *in, JSObjectRef o, bool map, int depth)
{
	JSContextRef ctx = in->ctx;
	JSValueRef size = get(in, o, "size");
	char head[48];
	snprintf(head, sizeof head, "%s(%.0f) {", map ? "Map" : "Set",
	         size ? JSValueToNumber(ctx, size, NULL) : 0.0);
	sb_str(in->out, head);
	JSValueRef it = call_method(in, o, map ? "entries" : "values");
	int n = 0;
	while (it && JSValueIsObject(ctx, it) && !full(in) && !stopped(in)) {
		JSValueRef step = call_method(in, (JSObjectRef)it, "next");
		if (!step || !JSValueIsObject(ctx, step))
			break;
		JSValueRef done = get(in, (JSObjectRef)step, "done");
		if (!done || JSValueToBoolean(ctx, done))
			break;
		if (n++ == ITEMS_MAX) {
			sb_str(in->out, " ...");
			break;
		}
		sb_str(in->out, n > 1 ? ", " : " ");
		JSValueRef val = get(in, (JSObjectRef)step, "value");
		if (!val)
			break;
		if (map && JSValueIsObject(ctx, val)) {
			JSValueRef k = JSObjectGetPropertyAtIndex(ctx, (JSObjectRef)val, 0, NULL);
			JSValueRef w = JSObjectGetPropertyAtIndex(ctx, (JSObjectRef)val, 1, NULL);
			if (!fmt(in, k, depth + 1, false))
				return false;
			sb_str(in->out, " => ");
			val = w;
		}
		if (!fmt(in, val, depth + 1, false))
			return false;
	}
	sb_str(in->out, n ? " }" : "}");
	return !stopped(in);
}

/* [ a, b ] for arrays and Uint8Array(2) [ 1, 2 ] for typed arrays. */
static bool fmt_array(struct insp *in, JSObjectRef o, const char *prefix, int depth)
{
	JSContextRef ctx = in->ctx;
	JSValueRef lv = get(in, o, "length");
	double len = lv ? JSValueToNumber(ctx, lv, NULL) : 0;
	if (!(len >= 0))
		len = 0;
	if (prefix) {
		char head[64];
		snprintf(head, sizeof head, "%s(%.0f) ", prefix, len);
		sb_str(in->out, head);
	}
	if (len == 0) {
		sb_str(in->out, "[]");
		return true;
	}
	sb_str(in->out, "[ ");
	for (unsigned i = 0; i < len && !full(in); i++) {
		if (i == ITEMS_MAX) {
			char more[48];
			snprintf(more, sizeof more, "... %.0f more item%s", len - i, len - i > 1 ? "s" : "");
			sb_str(in->out, more);
			break;
		}
		if (i)
			sb_str(in->out, ", ");
		JSValueRef x = NULL;
		JSValueRef v = JSObjectGetPropertyAtIndex(ctx, o, i, &x);
		if (x) {
			if (stopped(in)) {
				*in->exc = x;
				return false;
			}
			sb_str(in->out, "[Exception]");
		} else if (!fmt(in, v, depth + 1, false)) {
			return false;
		}
	}
	sb_str(in->out, " ]");
	return true;
}

/* The constructor's name, when it is not Object; "[Object: null
 * prototype]" for an object without one. NULL for a plain object. */
static char *class_name(struct insp *in, JSObjectRef o)
{
	JSValueRef proto = JSObjectGetPrototype(in->ctx, o);
	if (JSValueIsNull(in->ctx, proto))
		return strdup("[Object: null prototype]");
	JSValueRef c = get(in, o, "constructor");
	char *n = jsv_is_function(in->ctx, c) ? name_of(in, (JSObjectRef)c) : NULL;
	if (n && (!*n || !strcmp(n, "Object"))) {
		free(n);
		n = NULL;
	}
	return n;
}

/* { key: value, ... } over the enumerable string keys. */
static bool fmt_props(struct insp *in, JSObjectRef o, const char *cls, int depth)
{
	JSContextRef ctx = in->ctx;
	JSPropertyNameArrayRef names = JSObjectCopyPropertyNames(ctx, o);
	size_t n = JSPropertyNameArrayGetCount(names);
	if (cls) {
		sb_str(in->out, cls);
		sb_put(in->out, " ", 1);
	}
	sb_str(in->out, n ? "{ " : "{}");
	bool ok = true;
	for (size_t i = 0; i < n && ok && !full(in); i++) {
		if (i == ITEMS_MAX) {
			sb_str(in->out, "...");
			break;
		}
		JSStringRef k = JSPropertyNameArrayGetNameAtIndex(names, i);
		char *key = key_of(in, k);
		if (i)
			sb_str(in->out, ", ");
		if (key)
			put_key(in->out, key);
		free(key);
		sb_str(in->out, ": ");
		JSValueRef x = NULL;
		JSValueRef v = JSObjectGetProperty(ctx, o, k, &x);
		if (x && stopped(in)) {
			*in->exc = x;
			ok = false;
		} else if (x) {
			sb_str(in->out, "[Exception]");
		} else {
			ok = fmt(in, v, depth + 1, false);
		}
	}
	JSPropertyNameArrayRelease(names);
	if (ok && n)
		sb_str(in->out, " }");
	return ok;
}

static bool fmt_function(struct insp *in, JSObjectRef o)
{
	char *n = name_of(in, o);
	sb_str(in->out, n && *n ? "[Function: " : "[Function (anonymous)");
	if (n && *n)
		sb_str(in->out, n);
	sb_str(in->out, "]");
	free(n);
	return !stopped(in);
}

/* An object of a kind printed in its own way, or false in *done. */
static bool fmt_special(struct insp *in, JSObjectRef o, int depth, bool top, bool *done)
{
	JSContextRef ctx = in->ctx;
	*done = true;
	JSTypedArrayType ta = JSValueGetTypedArrayType(ctx, o, NULL);
	if (ta == kJSTypedArrayTypeArrayBuffer) {
		char head[64];
		snprintf(head, sizeof head, "ArrayBuffer { byteLength: %zu }",
		         JSObjectGetArrayBufferByteLength(ctx, o, NULL));
		sb_str(in->out, head);
		return true;
	}
	if (ta != kJSTypedArrayTypeNone) {
		char *cls = class_name(in, o);
		bool ok = fmt_array(in, o, cls ? cls : "TypedArray", depth);
		free(cls);
		return ok;
	}
	if (JSValueIsDate(ctx, o)) {
		JSValueRef iso = call_method(in, o, "toISOString");
		char *t = iso ? text_of(in, iso) : NULL;
		sb_str(in->out, t ? t : "Invalid Date");
		free(t);
		return !stopped(in);
	}
	if (is_a(in, o, "Error"))
		return fmt_error(in, o, top);
	if (is_a(in, o, "RegExp"))
		return fmt_primitive(in, o, true);
	if (is_a(in, o, "Map"))
		return fmt_collection(in, o, true, depth);
	if (is_a(in, o, "Set"))
		return fmt_collection(in, o, false, depth);
	*done = false;
	return true;
}

static bool fmt_object(struct insp *in, JSObjectRef o, int depth, bool top)
{
	for (int i = 0; i < in->nanc; i++)
		if (in->ancestors[i] == o) {
			sb_str(in->out, "[Circular]");
			return true;
		}
	if (JSObjectIsFunction(in->ctx, o))
		return fmt_function(in, o);
	bool array = JSValueIsArray(in->ctx, o);
	if (depth > DEPTH_MAX) {
		char *cls = array ? NULL : class_name(in, o);
		sb_str(in->out, "[");
		sb_str(in->out, array ? "Array" : cls && cls[0] != '[' ? cls : "Object");
		sb_str(in->out, "]");
		free(cls);
		return !stopped(in);
	}
	in->ancestors[in->nanc++] = o;
	bool done = false, ok = array ? (done = true, fmt_array(in, o, NULL, depth))
	                              : fmt_special(in, o, depth, top, &done);
	if (ok && !done) {
		char *cls = class_name(in, o);
		ok = !stopped(in) && fmt_props(in, o, cls, depth);
		free(cls);
	}
	in->nanc--;
	return ok && !stopped(in);
}

static bool fmt(struct insp *in, JSValueRef v, int depth, bool top)
{
	if (full(in))
		return true;
	if (!JSValueIsObject(in->ctx, v))
		return fmt_primitive(in, v, top);
	return fmt_object(in, (JSObjectRef)v, depth, top);
}

void inspect_stack_here(engine *e, JSContextRef ctx, sbuf *out)
{
	struct insp in = {.e = e, .ctx = ctx, .out = out};
	JSValueRef x = NULL;
	in.exc = &x;
	JSObjectRef err = JSObjectMakeError(ctx, 0, NULL, NULL);
	JSValueRef s = err ? get(&in, err, "stack") : NULL;
	char *stack = s && JSValueIsString(ctx, s) ? text_of(&in, s) : NULL;
	if (stack)
		put_stack(&in, stack);
	free(stack);
}

bool inspect_value(engine *e, JSContextRef ctx, JSValueRef v, bool top, sbuf *out,
                   JSValueRef *exc)
{
	struct insp in = {.e = e, .ctx = ctx, .out = out, .exc = exc};
	return fmt(&in, v, 0, top);
}

/* One %-directive of a format string applied to v. */
static bool directive(struct insp *in, char d, JSValueRef v)
{
	JSContextRef ctx = in->ctx;
	switch (d) {
	case 'd': case 'i': case 'f': {
		if (JSValueGetType(ctx, v) == kJSTypeBigInt)
			return fmt_primitive(in, v, true);
		if (JSValueIsObject(ctx, v) || JSValueIsSymbol(ctx, v)) {
			sb_str(in->out, "NaN");
			return true;
		}
		double n = JSValueToNumber(ctx, v, NULL);
		if (d != 'f' && isfinite(n))
			n = trunc(n);
		return fmt_primitive(in, JSValueMakeNumber(ctx, n), true);
	}
	case 'o': case 'O':
		return fmt(in, v, 0, false);
	case 'c':
		return true;
	default: /* s */
		if (JSValueIsString(ctx, v) || !JSValueIsObject(ctx, v))
			return fmt_primitive(in, v, true);
		return fmt(in, v, 1, false);
	}
}

bool inspect_args(engine *e, JSContextRef ctx, size_t argc, const JSValueRef argv[], sbuf *out,
                  JSValueRef *exc)
{
	struct insp in = {.e = e, .ctx = ctx, .out = out, .exc = exc};
	size_t i = 0, start = out->len;
	if (argc && JSValueIsString(ctx, argv[0])) {
		char *f = text_of(&in, argv[0]);
		if (!f)
			return false;
		i = 1;
		for (const char *p = f; *p; p++) {
			if (p[0] != '%' || !p[1] || !strchr("sdifoOc%", p[1])) {
				sb_put(out, p, 1);
				continue;
			}
			p++;
			if (*p == '%') {
				sb_put(out, "%", 1);
			} else if (i >= argc) {
				sb_put(out, p - 1, 2);
			} else if (!directive(&in, *p, argv[i++])) {
				free(f);
				return false;
			}
		}
		free(f);
	}
	for (; i < argc && !full(&in); i++) {
		if (out->len > start)
			sb_put(out, " ", 1);
		if (!fmt(&in, argv[i], 0, true))
			return false;
	}
	return true;
}

/* ---- console.table ------------------------------------------------------ */

#define TABLE_ROWS 100
#define TABLE_COLS 20

struct table {
	char *cols[TABLE_COLS + 2]; /* (index), the keys, Values */
	size_t ncols;
	char *cells[TABLE_ROWS][TABLE_COLS + 2];
	size_t nrows;
	bool values;                /* some row is a primitive */
	bool fixed;                 /* the columns were given: no others */
};

/* Display width: code points, not bytes. */
static size_t width(const char *s)
{
	size_t w = 0;
	for (; s && *s; s++)
		w += ((unsigned char)*s & 0xC0) != 0x80;
	return w;
}

static size_t column(struct table *t, const char *key)
{
	for (size_t c = 1; c < t->ncols; c++)
		if (!strcmp(t->cols[c], key))
			return c;
	if (t->fixed || t->ncols == TABLE_COLS + 1)
		return 0;
	t->cols[t->ncols] = strdup(key);
	return t->cols[t->ncols] ? t->ncols++ : 0;
}

static char *cell(struct insp *in, JSValueRef v)
{
	sbuf b = {0};
	struct insp sub = *in;
	sub.out = &b;
	sub.nanc = 0;
	if (!fmt(&sub, v, DEPTH_MAX, false)) {
		free(b.p);
		return NULL;
	}
	return b.p ? b.p : strdup("");
}

/* One row: its cells by column (the row's own keys, or Values). */
static bool table_row(struct insp *in, struct table *t, const char *index, JSValueRef row)
{
	size_t r = t->nrows++;
	t->cells[r][0] = strdup(index);
	if (!JSValueIsObject(in->ctx, row) || JSObjectIsFunction(in->ctx, (JSObjectRef)row)) {
		t->values = true;
		t->cells[r][TABLE_COLS + 1] = cell(in, row);
		return !stopped(in);
	}
	JSPropertyNameArrayRef names = JSObjectCopyPropertyNames(in->ctx, (JSObjectRef)row);
	bool ok = true;
	for (size_t i = 0; ok && i < JSPropertyNameArrayGetCount(names); i++) {
		JSStringRef k = JSPropertyNameArrayGetNameAtIndex(names, i);
		char *key = key_of(in, k);
		size_t c = key ? column(t, key) : 0;
		free(key);
		JSValueRef x = NULL;
		JSValueRef v = c ? JSObjectGetProperty(in->ctx, (JSObjectRef)row, k, &x) : NULL;
		if (x && stopped(in))
			*in->exc = x;
		if (c && !x && !t->cells[r][c])
			t->cells[r][c] = cell(in, v);
		ok = !stopped(in);
	}
	JSPropertyNameArrayRelease(names);
	return ok;
}

static void rule(sbuf *out, const struct table *t, const size_t *w, const char *l, const char *m,
                 const char *r)
{
	sb_str(out, l);
	for (size_t c = 0; c < t->ncols; c++) {
		for (size_t i = 0; i < w[c] + 2; i++)
			sb_str(out, "\u2500");
		sb_str(out, c + 1 < t->ncols ? m : r);
	}
	sb_put(out, "\n", 1);
}

static void row_line(sbuf *out, const struct table *t, const size_t *w, char *const *cells)
{
	sb_str(out, "\u2502");
	for (size_t c = 0; c < t->ncols; c++) {
		const char *s = cells[c] ? cells[c] : "";
		sb_put(out, " ", 1);
		sb_str(out, s);
		for (size_t i = width(s); i < w[c] + 1; i++)
			sb_put(out, " ", 1);
		sb_str(out, "\u2502");
	}
	sb_put(out, "\n", 1);
}

static void table_draw(sbuf *out, struct table *t)
{
	if (t->values && !t->fixed) {
		/* the values are kept in the last column; with every key column
		 * taken they are already in place (moved onto themselves, they
		 * were lost: ~400 KB a call, and an empty column) */
		t->cols[t->ncols] = strdup("Values");
		for (size_t r = 0; r < t->nrows && t->ncols != TABLE_COLS + 1; r++) {
			t->cells[r][t->ncols] = t->cells[r][TABLE_COLS + 1];
			t->cells[r][TABLE_COLS + 1] = NULL;
		}
		t->ncols++;
	}
	size_t w[TABLE_COLS + 2];
	for (size_t c = 0; c < t->ncols; c++) {
		w[c] = width(t->cols[c]);
		for (size_t r = 0; r < t->nrows; r++)
			w[c] = width(t->cells[r][c]) > w[c] ? width(t->cells[r][c]) : w[c];
	}
	rule(out, t, w, "\u250c", "\u252c", "\u2510");
	row_line(out, t, w, t->cols);
	rule(out, t, w, "\u251c", "\u253c", "\u2524");
	for (size_t r = 0; r < t->nrows; r++)
		row_line(out, t, w, t->cells[r]);
	rule(out, t, w, "\u2514", "\u2534", "\u2518");
	out->len--; /* the last newline */
	out->p[out->len] = '\0';
}

static void table_free(struct table *t)
{
	for (size_t c = 0; c < TABLE_COLS + 2; c++)
		free(t->cols[c]);
	for (size_t r = 0; r < t->nrows; r++)
		for (size_t c = 0; c < TABLE_COLS + 2; c++)
			free(t->cells[r][c]);
	free(t);
}

/* console.table's second argument: the columns to show, in order. */
static void given_columns(struct insp *in, struct table *t, JSValueRef columns)
{
	if (!columns || !JSValueIsArray(in->ctx, columns))
		return;
	JSObjectRef a = (JSObjectRef)columns;
	JSValueRef lv = get(in, a, "length");
	double n = lv ? JSValueToNumber(in->ctx, lv, NULL) : 0;
	for (unsigned i = 0; i < n && t->ncols < TABLE_COLS + 1; i++) {
		char *k = text_of(in, JSObjectGetPropertyAtIndex(in->ctx, a, i, NULL));
		if (k)
			t->cols[t->ncols++] = k;
	}
	t->fixed = true;
}

bool inspect_table(engine *e, JSContextRef ctx, JSValueRef data, JSValueRef columns, sbuf *out,
                   JSValueRef *exc)
{
	struct insp in = {.e = e, .ctx = ctx, .out = out, .exc = exc};
	struct table *t = calloc(1, sizeof *t);
	if (!t)
		return false;
	t->cols[0] = strdup("(index)");
	t->ncols = 1;
	given_columns(&in, t, columns);
	JSObjectRef o = (JSObjectRef)data;
	JSPropertyNameArrayRef names = JSObjectCopyPropertyNames(ctx, o);
	bool ok = true;
	for (size_t i = 0; ok && i < JSPropertyNameArrayGetCount(names) && i < TABLE_ROWS; i++) {
		JSStringRef k = JSPropertyNameArrayGetNameAtIndex(names, i);
		char *key = key_of(&in, k);
		JSValueRef x = NULL;
		JSValueRef v = JSObjectGetProperty(ctx, o, k, &x);
		if (x && stopped(&in))
			*exc = x;
		ok = !stopped(&in) && table_row(&in, t, key ? key : "?", x ? JSValueMakeUndefined(ctx) : v);
		free(key);
	}
	JSPropertyNameArrayRelease(names);
	if (ok)
		table_draw(out, t);
	table_free(t);
	return ok;
}
