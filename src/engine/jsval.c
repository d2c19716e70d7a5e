/*
 * jsval.c - small helpers over JavaScriptCore's C API: property access by
 * C name, strings in and out, and an exception or value as text. Nothing
 * here knows about engines; every function runs on the VM's thread (the
 * table of property names, jsv_name, is the process's).
 */
#define _GNU_SOURCE
#include "jsval.h"
#include "util/utf8.h"

#include "util/srcmap.h"

#ifdef __SSE2__
#include <emmintrin.h>
#endif
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *jsv_printf(const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;
	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	return s;
}

/* Copies n UTF-16 units to out as bytes; false at the first one that is
 * not ASCII. Sixteen at a time where SSE2 is there (x86-64 always). */
static bool narrow_ascii(const JSChar *c, size_t n, char *out)
{
	size_t i = 0;
#ifdef __SSE2__
	const __m128i high = _mm_set1_epi16((short)0xff80), zero = _mm_setzero_si128();
	for (; i + 16 <= n; i += 16) {
		__m128i a = _mm_loadu_si128((const __m128i *)(const void *)(c + i));
		__m128i b = _mm_loadu_si128((const __m128i *)(const void *)(c + i + 8));
		__m128i bad = _mm_and_si128(_mm_or_si128(a, b), high);
		if (_mm_movemask_epi8(_mm_cmpeq_epi16(bad, zero)) != 0xffff)
			return false;
		_mm_storeu_si128((__m128i *)(void *)(out + i), _mm_packus_epi16(a, b));
	}
#endif
	for (; i < n; i++) {
		if (c[i] >= 0x80)
			return false;
		out[i] = (char)c[i];
	}
	return true;
}

/* The text when it is all ASCII (answers nearly always are), else NULL.
 * JSStringGetUTF8CString encodes one character at a time; JSC widens an
 * 8-bit string to UTF-16 with SIMD, and narrowing it back is cheap. */
static char *string_ascii(JSStringRef s, size_t *len)
{
	size_t n = JSStringGetLength(s);
	const JSChar *c = JSStringGetCharactersPtr(s);
	char *p = c ? malloc(n + 1) : NULL;
	if (!p)
		return NULL;
	if (!narrow_ascii(c, n, p)) {
		free(p);
		return NULL;
	}
	p[n] = '\0';
	*len = n;
	return p;
}

/* n UTF-16 units as UTF-8 into out (room for 3 bytes a unit), a lone
 * surrogate as U+FFFD (JSStringGetUTF8CString stops there, silently
 * dropping the rest), at most max bytes and whole characters. Returns the
 * bytes written; *used gets the units converted. */
static size_t encode_utf8(const JSChar *c, size_t n, char *out, size_t max, size_t *used)
{
	unsigned char *o = (unsigned char *)out;
	size_t w = 0, i = 0;
	while (i < n) {
		uint32_t cp = c[i];
		size_t k = 1;
		if (cp >= 0xD800 && cp <= 0xDBFF && i + 1 < n && c[i + 1] >= 0xDC00 && c[i + 1] <= 0xDFFF) {
			cp = 0x10000 + ((cp - 0xD800) << 10) + (c[i + 1] - 0xDC00u);
			k = 2;
		} else if (cp >= 0xD800 && cp <= 0xDFFF) {
			cp = 0xFFFD;
		}
		size_t b = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
		if (w + b > max)
			break;
		if (b == 1) {
			o[w] = (unsigned char)cp;
		} else if (b == 2) {
			o[w] = (unsigned char)(0xC0 | cp >> 6);
			o[w + 1] = (unsigned char)(0x80 | (cp & 0x3F));
		} else if (b == 3) {
			o[w] = (unsigned char)(0xE0 | cp >> 12);
			o[w + 1] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
			o[w + 2] = (unsigned char)(0x80 | (cp & 0x3F));
		} else {
			o[w] = (unsigned char)(0xF0 | cp >> 18);
			o[w + 1] = (unsigned char)(0x80 | (cp >> 12 & 0x3F));
			o[w + 2] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
			o[w + 3] = (unsigned char)(0x80 | (cp & 0x3F));
		}
		w += b;
		i += k;
	}
	*used = i;
	return w;
}

char *jsv_utf8(JSStringRef s, size_t *len)
{
	size_t ascii_len, used;
	char *ascii = string_ascii(s, &ascii_len);
	if (ascii) {
		if (len)
			*len = ascii_len;
		return ascii;
	}
	size_t n = JSStringGetLength(s);
	const JSChar *c = JSStringGetCharactersPtr(s);
	char *p = n <= (SIZE_MAX - 1) / 3 ? malloc(3 * n + 1) : NULL;
	if (!p || (!c && n)) {
		free(p);
		return NULL;
	}
	size_t w = encode_utf8(c, n, p, 3 * n, &used);
	p[w] = '\0';
	if (len)
		*len = w;
	return p;
}

char *jsv_utf8_head(JSStringRef s, size_t max, size_t *len, size_t *cut)
{
	size_t n = JSStringGetLength(s), used = 0;
	if (n > max) {
		/* A long string (JSON text) is not widened to UTF-16 in full:
		 * JSC converts just the head, whole characters, stopping early at
		 * a lone surrogate (JSON text has none). */
		char *p = malloc(max + 1);
		size_t w = p ? JSStringGetUTF8CString(s, p, max + 1) : 0;
		if (!w) {
			free(p);
			return NULL;
		}
		*len = w - 1;
		*cut = n - utf8_units(p, w - 1);
		return p;
	}
	const JSChar *c = JSStringGetCharactersPtr(s);
	size_t room = 3 * n < max ? 3 * n : max;
	char *p = malloc(room + 1);
	if (!p || (!c && n)) {
		free(p);
		return NULL;
	}
	size_t w = encode_utf8(c, n, p, room, &used);
	p[w] = '\0';
	*len = w;
	*cut = n - used;
	return p;
}

size_t jsv_string_units(JSContextRef ctx, JSValueRef s)
{
	JSObjectRef wrapped = JSValueIsString(ctx, s) ? JSValueToObject(ctx, s, NULL) : NULL;
	JSValueRef n = wrapped ? jsv_prop(ctx, wrapped, "length") : NULL;
	double d = n ? JSValueToNumber(ctx, n, NULL) : 0;
	return d > 0 ? (size_t)d : 0;
}

/* The length in UTF-16 units of the string value s, read without copying
 * it (a String object's length is its own, fixed). */
static size_t string_units(JSContextRef ctx, JSObjectRef wrapped)
{
	JSValueRef n = jsv_prop(ctx, wrapped, "length");
	double d = n ? JSValueToNumber(ctx, n, NULL) : 0;
	return d > 0 ? (size_t)d : 0;
}

char *jsv_text_head(JSContextRef ctx, JSObjectRef string_fn, JSObjectRef slice_fn, JSValueRef v,
                    size_t max, size_t *len, size_t *cut, JSValueRef *exc)
{
	*exc = NULL;
	*cut = 0;
	if (!JSValueIsString(ctx, v) && string_fn) /* String(v): toString, or a symbol's description */
		v = JSObjectCallAsFunction(ctx, string_fn, NULL, 1, &v, exc);
	if (*exc || !v || !JSValueIsString(ctx, v))
		return NULL;
	JSObjectRef wrapped = JSValueToObject(ctx, v, exc);
	size_t units = wrapped ? string_units(ctx, wrapped) : 0;
	size_t more = 0;
	if (wrapped && slice_fn && units > max) { /* copy out only the head */
		JSValueRef args[2] = {JSValueMakeNumber(ctx, 0), JSValueMakeNumber(ctx, (double)max)};
		JSValueRef head = JSObjectCallAsFunction(ctx, slice_fn, wrapped, 2, args, exc);
		if (*exc || !head)
			return NULL;
		v = head;
		more = units - max;
	}
	JSStringRef s = JSValueToStringCopy(ctx, v, exc);
	if (!s)
		return NULL;
	char *p = jsv_utf8_head(s, max, len, cut);
	JSStringRelease(s);
	*cut += more;
	return p;
}

/* ---- property names -------------------------------------------------- */

/* The names C code reads and writes properties by are a few dozen
 * constants, looked up again in every engine built: each lookup made a JSC
 * string from UTF-8 and released it (~1.6 K instructions; ~50 per fresh
 * realm). They are made once for the process instead, found by their
 * text, and never released (as webapi.c's strings). A JSStringRef is
 * thread-safe (JSC copies its characters into each VM it is used in), so
 * every engine thread shares them. Lookups take no lock: a slot's text is
 * written before its string is published (release), and read after
 * (acquire); slots are filled under names_mu and never change. A long
 * name, or one past the table's room, is made and released as before. */
#define NAMES_SLOTS 256 /* a power of two; about 60 names are in use */
#define NAME_MAX_LEN 32

static struct name_slot {
	_Atomic(JSStringRef) s;
	char text[NAME_MAX_LEN];
} names[NAMES_SLOTS];
static pthread_mutex_t names_mu = PTHREAD_MUTEX_INITIALIZER;
static unsigned names_used;

static uint32_t name_hash(const char *name, size_t len)
{
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < len; i++)
		h = (h ^ (unsigned char)name[i]) * 16777619u;
	return h;
}

/* The slot holding name, or the empty slot where it belongs (s NULL);
 * NULL when the table is full of others. */
static struct name_slot *name_find(const char *name, size_t len, uint32_t h)
{
	for (uint32_t i = 0; i < NAMES_SLOTS; i++) {
		struct name_slot *sl = &names[(h + i) & (NAMES_SLOTS - 1)];
		if (!atomic_load_explicit(&sl->s, memory_order_acquire) ||
		    (!memcmp(sl->text, name, len) && !sl->text[len]))
			return sl;
	}
	return NULL;
}

JSStringRef jsv_name(const char *name)
{
	size_t len = strlen(name);
	if (len >= NAME_MAX_LEN)
		return NULL;
	uint32_t h = name_hash(name, len);
	struct name_slot *sl = name_find(name, len, h);
	JSStringRef s = sl ? atomic_load_explicit(&sl->s, memory_order_acquire) : NULL;
	if (s || !sl)
		return s;
	pthread_mutex_lock(&names_mu);
	sl = name_find(name, len, h); /* another thread may have added it */
	s = sl ? atomic_load_explicit(&sl->s, memory_order_acquire) : NULL;
	if (sl && !s && names_used < NAMES_SLOTS / 2 && (s = JSStringCreateWithUTF8CString(name))) {
		memcpy(sl->text, name, len + 1);
		atomic_store_explicit(&sl->s, s, memory_order_release);
		names_used++;
	}
	pthread_mutex_unlock(&names_mu);
	return s;
}

/* name as a JSC string: the process's (jsv_name), or a new one that the
 * caller releases (*made). */
static JSStringRef name_string(const char *name, bool *made)
{
	JSStringRef s = jsv_name(name);
	*made = !s;
	return s ? s : JSStringCreateWithUTF8CString(name);
}

static void name_done(JSStringRef s, bool made)
{
	if (made && s)
		JSStringRelease(s);
}

JSValueRef jsv_prop(JSContextRef ctx, JSObjectRef o, const char *name)
{
	bool made;
	JSStringRef n = name_string(name, &made);
	JSValueRef v = JSObjectGetProperty(ctx, o, n, NULL);
	name_done(n, made);
	return v;
}

JSObjectRef jsv_object_prop(JSContextRef ctx, JSObjectRef o, const char *name)
{
	JSValueRef v = jsv_prop(ctx, o, name);
	return v && JSValueIsObject(ctx, v) ? (JSObjectRef)v : NULL;
}

JSValueRef jsv_string(JSContextRef ctx, const char *s)
{
	JSStringRef js = JSStringCreateWithUTF8CString(s);
	JSValueRef v = JSValueMakeString(ctx, js);
	JSStringRelease(js);
	return v;
}

/* o[name] = v: an existing property keeps its attributes, a new one gets
 * a. Replacing JSC's own global console this way costs ~15 us; deleting it
 * first costs ~0.2 ms per engine (the global object's layout becomes a
 * dictionary). */
bool jsv_set(JSContextRef ctx, JSObjectRef o, const char *name, JSValueRef v,
             JSPropertyAttributes a)
{
	bool made;
	JSStringRef n = name_string(name, &made);
	JSValueRef exc = NULL;
	JSObjectSetProperty(ctx, o, n, v, a, &exc);
	name_done(n, made);
	return !exc;
}

/* Keeps the stack lines that belong to the plugin: drops native frames. */
void jsv_strip_stack(char *st)
{
	char *out = st;
	for (char *line = st; *line;) {
		char *end = strchr(line, '\n');
		size_t n = end ? (size_t)(end - line) + 1 : strlen(line);
		if (!memmem(line, n, "[native code]", 13)) {
			memmove(out, line, n);
			out += n;
		}
		line += n;
	}
	*out = '\0';
	if (out > st && out[-1] == '\n')
		out[-1] = '\0';
}

/* "index.js:3: SyntaxError: Unexpected token '}'" plus the plugin's stack,
 * for errors thrown while the module is parsed or loaded; at most
 * JSV_ERROR_MAX bytes, then how much was cut. */
char *jsv_exception_text(JSContextRef ctx, JSObjectRef string_fn, JSObjectRef slice_fn,
                         JSValueRef exc)
{
	size_t len, cut = 0, stack_cut = 0;
	JSValueRef x = NULL;
	char *msg = exc ? jsv_text_head(ctx, string_fn, slice_fn, exc, JSV_ERROR_MAX, &len, &cut, &x)
	                : NULL;
	if (!msg)
		return strdup("exception that cannot be printed");
	if (!JSValueIsObject(ctx, exc))
		return msg;
	JSObjectRef o = (JSObjectRef)exc;
	JSValueRef line = jsv_prop(ctx, o, "line");
	JSValueRef url = jsv_prop(ctx, o, "sourceURL");
	JSValueRef stack = cut ? NULL : jsv_prop(ctx, o, "stack");
	char *u = url && JSValueIsString(ctx, url)
	              ? jsv_text_head(ctx, string_fn, slice_fn, url, 1024, &len, &stack_cut, &x)
	              : NULL;
	char *where = NULL, *st = NULL;
	if (u && line && JSValueIsNumber(ctx, line))
		where = jsv_printf("%s:%.0f: ", u, JSValueToNumber(ctx, line, NULL));
	if (stack && JSValueIsString(ctx, stack)) {
		st = jsv_text_head(ctx, string_fn, slice_fn, stack, JSV_ERROR_MAX, &len, &stack_cut, &x);
		if (st)
			jsv_strip_stack(st);
	}
	char *out = jsv_printf("%s%s%s%s", where ? where : "", msg, st && *st ? "\n" : "",
	                       st && *st ? st : "");
	free(msg);
	free(u);
	free(where);
	free(st);
	char *mapped = srcmap_rewrite(out, JSV_ERROR_MAX); /* a bundle's positions, as the original files' */
	if (mapped) {
		free(out);
		out = mapped;
	}
	if (out)
		utf8_cap(&out, strlen(out), JSV_ERROR_MAX, cut + stack_cut);
	return out;
}

const char *jsv_type_name(JSContextRef ctx, JSValueRef v)
{
	switch (JSValueGetType(ctx, v)) {
	case kJSTypeUndefined: return "undefined";
	case kJSTypeNull: return "null";
	case kJSTypeBoolean: return "boolean";
	case kJSTypeNumber: return "number";
	case kJSTypeString: return "string";
	case kJSTypeSymbol: return "symbol";
	case kJSTypeBigInt: return "bigint";
	default: return JSObjectIsFunction(ctx, (JSObjectRef)v) ? "function" : "object";
	}
}

/* o[name], or NULL with *exc set when a getter threw. */
JSValueRef jsv_get(JSContextRef ctx, JSObjectRef o, const char *name, JSValueRef *exc)
{
	bool made;
	JSStringRef n = name_string(name, &made);
	JSValueRef v = JSObjectGetProperty(ctx, o, n, exc);
	name_done(n, made);
	return *exc ? NULL : v;
}

bool jsv_is_function(JSContextRef ctx, JSValueRef v)
{
	return v && JSValueIsObject(ctx, v) && JSObjectIsFunction(ctx, (JSObjectRef)v);
}

/* String(v) as a JSString (owned); symbols through the pristine String,
 * which prints them. NULL with *exc set when it throws. */
JSStringRef jsv_string_of(JSContextRef ctx, JSObjectRef string_fn, JSValueRef v, JSValueRef *exc)
{
	*exc = NULL;
	if (JSValueIsSymbol(ctx, v) && string_fn) {
		JSValueRef t = JSObjectCallAsFunction(ctx, string_fn, NULL, 1, &v, exc);
		if (!t || *exc)
			return NULL;
		v = t;
	}
	return JSValueToStringCopy(ctx, v, exc);
}

/* String(v) as UTF-8 (owned), or a note when it cannot be printed. */
char *jsv_text(JSContextRef ctx, JSValueRef v)
{
	JSStringRef s = v ? JSValueToStringCopy(ctx, v, NULL) : NULL;
	if (!s)
		return strdup("exception that cannot be printed");
	char *p = jsv_utf8(s, NULL);
	JSStringRelease(s);
	return p;
}
