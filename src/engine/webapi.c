/*
 * webapi.c - the web-standard globals of the WinterTC minimum common API
 * that need no I/O: TextEncoder/TextDecoder, atob/btoa, queueMicrotask,
 * timers, crypto (getRandomValues, randomUUID, subtle.digest), performance,
 * structuredClone, DOMException, Event/EventTarget, AbortController and
 * AbortSignal.
 *
 * Cost: none until used. Each name is an accessor on the global object
 * (only the names the plugin's source mentions: webapi_install); the first
 * read builds the value and defines it on the global object in the
 * accessor's place, where every later read finds it. The work is in C
 * (UTF-8, base64, digests through GLib's GChecksum, random bytes from
 * getrandom, timers); the classes whose shape is JavaScript's own (Event,
 * EventTarget, AbortController, DOMException, structuredClone's walk, and
 * the TextEncoder/TextDecoder wrappers around the C codecs) are one small
 * script (webapi_js.h), compiled only by an engine that reads one of them.
 *
 * Timers run inside the execution that set them: when a call's promise is
 * still pending once its microtasks are drained, the due timers run in
 * order (the thread sleeps until each is due) until it settles; a timer
 * due after the scan's budget is a timeout; timers still pending when the
 * call settles are dropped.
 */
#define _GNU_SOURCE
#include "webapi.h"

#include "jsc_private.h"
#include "jsval.h"
#include "webapi_js.h"

#include <errno.h>
#include <pthread.h>
#include <glib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

_Static_assert(WEB_OP_COUNT <= WEB_FNS, "engine_impl.h: WEB_FNS too small");

/* Throws an error of the global constructor named kind (TypeError,
 * RangeError) with msg. */
static JSValueRef throw_kind(JSContextRef ctx, JSValueRef *exc, const char *kind, const char *msg)
{
	JSValueRef m = jsv_string(ctx, msg);
	*exc = JSObjectMakeError(ctx, 1, &m, NULL);
	JSObjectRef o = (JSObjectRef)*exc;
	JSObjectRef g = JSContextGetGlobalObject(ctx);
	JSObjectRef c = jsv_object_prop(ctx, g, kind);
	JSValueRef proto = c ? jsv_prop(ctx, c, "prototype") : NULL;
	if (proto)
		JSObjectSetPrototype(ctx, o, proto);
	return JSValueMakeUndefined(ctx);
}

static JSValueRef throw_type(JSContextRef ctx, JSValueRef *exc, const char *msg)
{
	return throw_kind(ctx, exc, "TypeError", msg);
}

static JSObjectRef web_js(engine *e, JSContextRef ctx, JSValueRef *exc);

/* Throws new DOMException(msg, name), txscan's own even when the plugin
 * replaced the global. */
static JSValueRef throw_dom(engine *e, JSContextRef ctx, JSValueRef *exc, const char *msg,
                            const char *name)
{
	JSValueRef x = NULL;
	JSObjectRef js = web_js(e, ctx, &x);
	JSValueRef ctor = js ? jsv_get(ctx, js, "DOMException", &x) : NULL;
	JSValueRef args[2] = {jsv_string(ctx, msg), jsv_string(ctx, name)};
	if (ctor && JSValueIsObject(ctx, ctor))
		*exc = JSObjectCallAsConstructor(ctx, (JSObjectRef)ctor, 2, args, &x);
	if (x)
		*exc = x;
	return JSValueMakeUndefined(ctx);
}

/* ---- bytes in and out ---------------------------------------------------- */

/* The bytes of an ArrayBuffer or a view on one (a typed array, a
 * DataView); false if v is neither, or a view past its buffer's end (a
 * resizable buffer shrunk under it). A view's buffer, offset and length
 * are JSC's own (its internal slots, through the C API), never the
 * object's properties: a DataView's `byteOffset` and `byteLength` are the
 * plugin's to redefine, and were read here once, so that a DataView over
 * 16 bytes that said it started at 2^40 crashed the process, or let it
 * read the host's memory. Call it after anything that may run the
 * plugin's code (a toString), which could resize or detach the buffer;
 * the pointer is good until the plugin runs again. */
static bool bytes_of(JSContextRef ctx, JSValueRef v, uint8_t **p, size_t *n)
{
	if (!JSValueIsObject(ctx, v))
		return false;
	JSObjectRef o = (JSObjectRef)v;
	if (JSValueGetTypedArrayType(ctx, v, NULL) == kJSTypedArrayTypeArrayBuffer) {
		*p = JSObjectGetArrayBufferBytesPtr(ctx, o, NULL);
		*n = *p ? JSObjectGetArrayBufferByteLength(ctx, o, NULL) : 0;
		return true;
	}
	JSObjectRef buf = JSObjectGetTypedArrayBuffer(ctx, o, NULL); /* NULL: not a view */
	if (!buf)
		return false;
	uint8_t *base = JSObjectGetTypedArrayBytesPtr(ctx, o, NULL);
	size_t off = JSObjectGetTypedArrayByteOffset(ctx, o, NULL);
	size_t len = JSObjectGetTypedArrayByteLength(ctx, o, NULL);
	size_t cap = base ? JSObjectGetArrayBufferByteLength(ctx, buf, NULL) : 0;
	if (off > cap || len > cap - off)
		return false;
	*p = len ? base + off : NULL;
	*n = len;
	return true;
}

/* A new Uint8Array holding n bytes of p. */
static JSObjectRef make_u8(JSContextRef ctx, const void *p, size_t n, JSValueRef *exc)
{
	JSObjectRef a = JSObjectMakeTypedArray(ctx, kJSTypedArrayTypeUint8Array, n, exc);
	if (a && n)
		memcpy(JSObjectGetTypedArrayBytesPtr(ctx, a, NULL), p, n);
	return a;
}

/* ---- UTF-8 (WHATWG Encoding: UTF-8 encoder and decoder) ------------------ */

static size_t utf8_put(uint8_t *o, uint32_t cp)
{
	if (cp < 0x80) {
		o[0] = (uint8_t)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (uint8_t)(0xC0 | cp >> 6);
		o[1] = (uint8_t)(0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (uint8_t)(0xE0 | cp >> 12);
		o[1] = (uint8_t)(0x80 | (cp >> 6 & 0x3F));
		o[2] = (uint8_t)(0x80 | (cp & 0x3F));
		return 3;
	}
	o[0] = (uint8_t)(0xF0 | cp >> 18);
	o[1] = (uint8_t)(0x80 | (cp >> 12 & 0x3F));
	o[2] = (uint8_t)(0x80 | (cp >> 6 & 0x3F));
	o[3] = (uint8_t)(0x80 | (cp & 0x3F));
	return 4;
}

/* The code point at c[*i] (a lone surrogate is U+FFFD), advancing *i. */
static uint32_t next_cp(const JSChar *c, size_t n, size_t *i)
{
	uint32_t u = c[(*i)++];
	if (u < 0xD800 || u > 0xDFFF)
		return u;
	if (u <= 0xDBFF && *i < n && c[*i] >= 0xDC00 && c[*i] <= 0xDFFF)
		return 0x10000 + ((u - 0xD800) << 10) + (c[(*i)++] - 0xDC00);
	return 0xFFFD;
}

/* Encodes UTF-16 c[0..n) into out (room for cap bytes), whole code points
 * only; *read gets the UTF-16 units consumed. Returns bytes written. */
static size_t utf8_encode(const JSChar *c, size_t n, uint8_t *out, size_t cap, size_t *read)
{
	size_t i = 0, w = 0;
	while (i < n) {
		size_t at = i;
		uint8_t tmp[4];
		size_t k = utf8_put(tmp, next_cp(c, n, &i));
		if (w + k > cap) {
			i = at;
			break;
		}
		memcpy(out + w, tmp, k);
		w += k;
	}
	*read = i;
	return w;
}

/* String(v) as a string value, still in the VM (a symbol throws, as
 * ToString does); NULL with *exc set. */
static JSValueRef to_string_value(engine *e, JSContextRef ctx, JSValueRef v, JSValueRef *exc)
{
	if (JSValueIsString(ctx, v))
		return v;
	if (JSValueIsSymbol(ctx, v)) {
		JSStringRef s = JSValueToStringCopy(ctx, v, exc); /* the TypeError */
		if (s)
			JSStringRelease(s);
		return NULL;
	}
	JSValueRef r = JSObjectCallAsFunction(ctx, e->string_fn, NULL, 1, &v, exc);
	return r && JSValueIsString(ctx, r) ? r : NULL;
}

/* String(v), the string argument of a codec (what: its name), copied out
 * of the VM. Refused with a RangeError when it has more UTF-16 units
 * than the plugin's heap limit holds at two bytes each: the copy (two
 * bytes a unit) and what the codec makes of it are the host's memory,
 * which the limit does not see, made in native code the watchdog cannot
 * stop (2^29 characters, ~1 MB of the plugin's heap as a rope, took the
 * host 2.4 GB through atob). max_units (0: all) takes only the head. */
static JSStringRef string_arg(engine *e, JSContextRef ctx, JSValueRef v, const char *what,
                              size_t max_units, JSValueRef *exc)
{
	v = to_string_value(e, ctx, v, exc);
	if (!v)
		return NULL;
	size_t units = jsv_string_units(ctx, v);
	if (max_units && units > max_units) {
		JSObjectRef wrapped = JSValueToObject(ctx, v, exc);
		JSValueRef args[2] = {JSValueMakeNumber(ctx, 0), JSValueMakeNumber(ctx, (double)max_units)};
		v = wrapped ? JSObjectCallAsFunction(ctx, e->slice_fn, wrapped, 2, args, exc) : NULL;
		if (!v)
			return NULL;
		units = max_units;
	}
	if (e->heap_limit && units > e->heap_limit / 2) {
		char msg[160];
		snprintf(msg, sizeof msg, "%s: the string has %zu characters, more than the plugin's "
		         "heap limit (%zu MB) holds", what, units, e->heap_limit >> 20);
		throw_kind(ctx, exc, "RangeError", msg);
		return NULL;
	}
	return JSValueToStringCopy(ctx, v, exc);
}

static JSValueRef utf8_encode_fn(engine *e, JSContextRef ctx, size_t argc, const JSValueRef argv[],
                                 JSValueRef *exc)
{
	JSStringRef s = !argc || JSValueIsUndefined(ctx, argv[0]) /* encode(input = "") */
	                    ? JSStringCreateWithUTF8CString("")
	                    : string_arg(e, ctx, argv[0], "TextEncoder.encode", 0, exc);
	if (!s)
		return JSValueMakeUndefined(ctx);
	size_t n = JSStringGetLength(s), read = 0;
	uint8_t *buf = malloc(n * 3 + 1);
	JSObjectRef r = NULL;
	if (buf) {
		size_t w = utf8_encode(JSStringGetCharactersPtr(s), n, buf, n * 3, &read);
		r = make_u8(ctx, buf, w, exc);
	}
	free(buf);
	JSStringRelease(s);
	return r ? r : JSValueMakeUndefined(ctx);
}

/* encodeInto(string, u8) -> [read, written] */
static JSValueRef utf8_encode_into_fn(engine *e, JSContextRef ctx, size_t argc,
                                      const JSValueRef argv[], JSValueRef *exc)
{
	uint8_t *p = NULL;
	size_t cap = 0, read = 0;
	if (argc < 2 || JSValueGetTypedArrayType(ctx, argv[1], NULL) != kJSTypedArrayTypeUint8Array)
		return throw_type(ctx, exc, "TextEncoder.encodeInto: the destination is not a Uint8Array");
	/* the string first: its toString is the plugin's, and may resize the
	 * destination's buffer; no more of it than the destination can take
	 * (a unit is a byte or more; one more unit completes a pair) */
	size_t room = JSObjectGetTypedArrayByteLength(ctx, (JSObjectRef)argv[1], NULL);
	JSStringRef s = string_arg(e, ctx, argv[0], "TextEncoder.encodeInto", room + 1, exc);
	if (!s)
		return JSValueMakeUndefined(ctx);
	if (!bytes_of(ctx, argv[1], &p, &cap)) {
		JSStringRelease(s);
		return throw_type(ctx, exc, "TextEncoder.encodeInto: the destination is not a Uint8Array");
	}
	size_t w = utf8_encode(JSStringGetCharactersPtr(s), JSStringGetLength(s), p, cap, &read);
	JSStringRelease(s);
	JSValueRef r[2] = {JSValueMakeNumber(ctx, (double)read), JSValueMakeNumber(ctx, (double)w)};
	return JSObjectMakeArray(ctx, 2, r, exc);
}

struct u8dec {
	JSChar *out;
	size_t n;
	bool error;
};

static void emit(struct u8dec *d, uint32_t cp)
{
	if (cp >= 0x10000) {
		d->out[d->n++] = (JSChar)(0xD800 + ((cp - 0x10000) >> 10));
		d->out[d->n++] = (JSChar)(0xDC00 + ((cp - 0x10000) & 0x3FF));
	} else {
		d->out[d->n++] = (JSChar)cp;
	}
}

/* The WHATWG UTF-8 decoder over p[0..n): each maximal invalid subpart is
 * one U+FFFD (d->error set). Returns how many trailing bytes form an
 * incomplete sequence that was not consumed (only when !flush). */
static size_t utf8_decode(const uint8_t *p, size_t n, bool flush, struct u8dec *d)
{
	uint32_t cp = 0;
	unsigned need = 0, seen = 0;
	uint8_t lo = 0x80, hi = 0xBF;
	for (size_t i = 0; i < n; i++) {
		uint8_t b = p[i];
		if (need == 0) {
			if (b < 0x80) {
				d->out[d->n++] = b;
			} else if (b >= 0xC2 && b <= 0xDF) {
				need = 1;
				cp = b & 0x1F;
			} else if (b >= 0xE0 && b <= 0xEF) {
				lo = b == 0xE0 ? 0xA0 : 0x80;
				hi = b == 0xED ? 0x9F : 0xBF;
				need = 2;
				cp = b & 0xF;
			} else if (b >= 0xF0 && b <= 0xF4) {
				lo = b == 0xF0 ? 0x90 : 0x80;
				hi = b == 0xF4 ? 0x8F : 0xBF;
				need = 3;
				cp = b & 0x7;
			} else {
				d->error = true;
				d->out[d->n++] = 0xFFFD;
			}
			continue;
		}
		if (b < lo || b > hi) {
			cp = need = seen = 0;
			lo = 0x80;
			hi = 0xBF;
			d->error = true;
			d->out[d->n++] = 0xFFFD;
			i--; /* the byte starts afresh */
			continue;
		}
		lo = 0x80;
		hi = 0xBF;
		cp = cp << 6 | (b & 0x3F);
		if (++seen == need) {
			emit(d, cp);
			cp = need = seen = 0;
		}
	}
	if (need && !flush)
		return seen + 1;
	if (need) {
		d->error = true;
		d->out[d->n++] = 0xFFFD;
	}
	return 0;
}

/* decode(u8, fatal, flush) -> [string, bytes left pending] */
static JSValueRef utf8_decode_fn(JSContextRef ctx, size_t argc, const JSValueRef argv[],
                                 JSValueRef *exc)
{
	uint8_t *p = NULL;
	size_t n = 0;
	if (argc < 3 || !bytes_of(ctx, argv[0], &p, &n))
		return throw_type(ctx, exc, "TextDecoder.decode: the input is not a BufferSource");
	bool fatal = JSValueToBoolean(ctx, argv[1]), flush = JSValueToBoolean(ctx, argv[2]);
	struct u8dec d = {malloc((n + 1) * sizeof(JSChar)), 0, false};
	if (!d.out)
		return throw_type(ctx, exc, "TextDecoder.decode: out of memory");
	size_t left = utf8_decode(p, n, flush, &d);
	JSValueRef r = NULL;
	if (d.error && fatal) {
		throw_type(ctx, exc, "The encoded data was not valid for encoding utf-8");
	} else {
		JSStringRef s = JSStringCreateWithCharacters(d.out, d.n);
		JSValueRef pair[2] = {JSValueMakeString(ctx, s), JSValueMakeNumber(ctx, (double)left)};
		JSStringRelease(s);
		r = JSObjectMakeArray(ctx, 2, pair, exc);
	}
	free(d.out);
	return r ? r : JSValueMakeUndefined(ctx);
}

/* ---- atob and btoa (HTML's forgiving-base64) ---------------------------- */

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int b64_value(JSChar c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	return c == '+' ? 62 : c == '/' ? 63 : -1;
}

/* forgiving-base64 decode of c[0..n) into out; -1 on failure. */
static long b64_decode(const JSChar *c, size_t n, uint8_t *out)
{
	JSChar *s = malloc((n + 1) * sizeof *s);
	if (!s)
		return -1;
	size_t m = 0;
	for (size_t i = 0; i < n; i++)
		if (c[i] != ' ' && c[i] != '\t' && c[i] != '\n' && c[i] != '\f' && c[i] != '\r')
			s[m++] = c[i];
	if (m % 4 == 0 && m && s[m - 1] == '=')
		m -= m > 1 && s[m - 2] == '=' ? 2 : 1;
	long w = m % 4 == 1 ? -1 : 0;
	uint32_t acc = 0;
	for (size_t i = 0; w >= 0 && i < m; i++) {
		int v = b64_value(s[i]);
		if (v < 0) {
			w = -1;
			break;
		}
		acc = acc << 6 | (uint32_t)v;
		if (i % 4 == 3) {
			out[w++] = (uint8_t)(acc >> 16);
			out[w++] = (uint8_t)(acc >> 8);
			out[w++] = (uint8_t)acc;
			acc = 0;
		}
	}
	if (w >= 0 && m % 4 == 2)
		out[w++] = (uint8_t)(acc >> 4);
	else if (w >= 0 && m % 4 == 3) {
		out[w++] = (uint8_t)(acc >> 10);
		out[w++] = (uint8_t)(acc >> 2);
	}
	free(s);
	return w;
}

static JSValueRef atob_fn(engine *e, JSContextRef ctx, size_t argc, const JSValueRef argv[],
                          JSValueRef *exc)
{
	if (!argc)
		return throw_type(ctx, exc, "atob: 1 argument required");
	JSStringRef s = string_arg(e, ctx, argv[0], "atob", 0, exc);
	if (!s)
		return JSValueMakeUndefined(ctx);
	size_t n = JSStringGetLength(s);
	uint8_t *bytes = malloc(n + 1);
	JSChar *wide = malloc((n + 1) * sizeof *wide);
	long w = bytes && wide ? b64_decode(JSStringGetCharactersPtr(s), n, bytes) : -1;
	JSStringRelease(s);
	JSValueRef r = NULL;
	if (w < 0) {
		throw_dom(e, ctx, exc, "The string to be decoded is not correctly encoded.",
		          "InvalidCharacterError");
	} else {
		for (long i = 0; i < w; i++)
			wide[i] = bytes[i];
		JSStringRef t = JSStringCreateWithCharacters(wide, (size_t)w);
		r = JSValueMakeString(ctx, t);
		JSStringRelease(t);
	}
	free(bytes);
	free(wide);
	return r ? r : JSValueMakeUndefined(ctx);
}

static JSValueRef btoa_fn(engine *e, JSContextRef ctx, size_t argc, const JSValueRef argv[],
                          JSValueRef *exc)
{
	if (!argc)
		return throw_type(ctx, exc, "btoa: 1 argument required");
	JSStringRef s = string_arg(e, ctx, argv[0], "btoa", 0, exc);
	if (!s)
		return JSValueMakeUndefined(ctx);
	size_t n = JSStringGetLength(s);
	const JSChar *c = JSStringGetCharactersPtr(s);
	char *out = malloc((n + 2) / 3 * 4 + 1);
	size_t w = 0;
	bool bad = false;
	for (size_t i = 0; out && i < n && !bad; i += 3) {
		uint32_t acc = 0;
		size_t k = n - i < 3 ? n - i : 3;
		for (size_t j = 0; j < k; j++) {
			bad |= c[i + j] > 0xFF;
			acc |= (uint32_t)(c[i + j] & 0xFF) << (16 - 8 * j);
		}
		for (size_t j = 0; j < 4; j++)
			out[w++] = j <= k ? b64[acc >> (18 - 6 * j) & 0x3F] : '=';
	}
	JSStringRelease(s);
	JSValueRef r = NULL;
	if (bad)
		throw_dom(e, ctx, exc, "The string to be encoded contains characters outside of the "
		                       "Latin1 range.", "InvalidCharacterError");
	else if (out) {
		out[w] = '\0';
		r = jsv_string(ctx, out);
	}
	free(out);
	return r ? r : JSValueMakeUndefined(ctx);
}

/* ---- crypto ---------------------------------------------------------------- */

static bool random_bytes(void *p, size_t n)
{
	for (size_t done = 0; done < n;) {
		ssize_t k = getrandom((char *)p + done, n - done, 0);
		if (k < 0 && errno != EINTR)
			return false;
		done += k > 0 ? (size_t)k : 0;
	}
	return true;
}

static JSValueRef get_random_values_fn(engine *e, JSContextRef ctx, size_t argc,
                                       const JSValueRef argv[], JSValueRef *exc)
{
	JSTypedArrayType t = argc ? JSValueGetTypedArrayType(ctx, argv[0], NULL) : kJSTypedArrayTypeNone;
	if (t == kJSTypedArrayTypeNone || t == kJSTypedArrayTypeArrayBuffer ||
	    t == kJSTypedArrayTypeFloat32Array || t == kJSTypedArrayTypeFloat64Array)
		return throw_dom(e, ctx, exc, "crypto.getRandomValues: the argument is not an integer "
		                              "typed array", "TypeMismatchError");
	uint8_t *p = NULL;
	size_t n = 0;
	bytes_of(ctx, argv[0], &p, &n);
	if (n > 65536)
		return throw_dom(e, ctx, exc, "crypto.getRandomValues: more than 65536 bytes requested",
		                 "QuotaExceededError");
	if (n && !random_bytes(p, n))
		return throw_type(ctx, exc, "crypto.getRandomValues: no randomness available");
	return argv[0];
}

static JSValueRef random_uuid_fn(JSContextRef ctx, JSValueRef *exc)
{
	uint8_t b[16];
	if (!random_bytes(b, sizeof b))
		return throw_type(ctx, exc, "crypto.randomUUID: no randomness available");
	b[6] = (uint8_t)((b[6] & 0x0F) | 0x40);
	b[8] = (uint8_t)((b[8] & 0x3F) | 0x80);
	char s[37];
	snprintf(s, sizeof s,
	         "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
	         b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
	         b[14], b[15]);
	return jsv_string(ctx, s);
}

/* The digest an algorithm identifier ("SHA-256" or {name: "SHA-256"},
 * case-insensitive) names; -1 when it names none. */
static int digest_type(JSContextRef ctx, JSValueRef alg)
{
	if (JSValueIsObject(ctx, alg))
		alg = jsv_prop(ctx, (JSObjectRef)alg, "name");
	if (!alg || !JSValueIsString(ctx, alg) || jsv_string_units(ctx, alg) > 16)
		return -1; /* no name is longer: a long one is not copied out */
	char *name = jsv_text(ctx, alg);
	int t = -1;
	if (name && !strcasecmp(name, "SHA-1"))
		t = G_CHECKSUM_SHA1;
	else if (name && !strcasecmp(name, "SHA-256"))
		t = G_CHECKSUM_SHA256;
	else if (name && !strcasecmp(name, "SHA-384"))
		t = G_CHECKSUM_SHA384;
	else if (name && !strcasecmp(name, "SHA-512"))
		t = G_CHECKSUM_SHA512;
	free(name);
	return t;
}

/* crypto.subtle.digest(alg, data): a promise of an ArrayBuffer. Errors
 * reject the promise, as the standard says. */
static JSValueRef digest_fn(engine *e, JSContextRef ctx, size_t argc, const JSValueRef argv[],
                            JSValueRef *exc)
{
	JSObjectRef resolve, reject;
	JSObjectRef p = JSObjectMakeDeferredPromise(ctx, &resolve, &reject, exc);
	if (!p)
		return JSValueMakeUndefined(ctx);
	int t = argc ? digest_type(ctx, argv[0]) : -1;
	uint8_t *bytes = NULL;
	size_t n = 0;
	JSValueRef x = NULL, v = NULL;
	if (t < 0)
		throw_dom(e, ctx, &x, "crypto.subtle.digest: unsupported algorithm (SHA-1, SHA-256, "
		                      "SHA-384 and SHA-512 are)", "NotSupportedError");
	else if (argc < 2 || !bytes_of(ctx, argv[1], &bytes, &n))
		throw_type(ctx, &x, "crypto.subtle.digest: data is not a BufferSource");
	else {
		GChecksum *g = g_checksum_new((GChecksumType)t);
		uint8_t out[64];
		gsize len = sizeof out;
		g_checksum_update(g, bytes ? bytes : (const uint8_t *)"", (gssize)n);
		g_checksum_get_digest(g, out, &len);
		g_checksum_free(g);
		JSObjectRef u8 = make_u8(ctx, out, len, &x);
		v = u8 ? JSObjectGetTypedArrayBuffer(ctx, u8, &x) : NULL;
	}
	JSObjectCallAsFunction(ctx, x ? reject : resolve, NULL, 1, x ? &x : &v, exc);
	return p;
}

/* ---- timers and microtasks -------------------------------------------- */

static void timer_release(engine *e, struct web_timer *t)
{
	JSValueUnprotect(e->ctx, t->fn);
	if (t->args)
		JSValueUnprotect(e->ctx, t->args);
}

static JSValueRef set_timer(engine *e, JSContextRef ctx, bool repeat, size_t argc,
                            const JSValueRef argv[], JSValueRef *exc)
{
	if (!argc || !jsv_is_function(ctx, argv[0]))
		return throw_type(ctx, exc, "setTimeout/setInterval: the callback must be a function "
		                            "(strings are code: txscan runs no eval)");
	/* The delay first: its valueOf is the plugin's, and may set timers
	 * itself (which, after the checks below, wrote past the array), or
	 * throw (which goes to the caller). */
	JSValueRef x = NULL;
	double ms = argc > 1 ? JSValueToNumber(ctx, argv[1], &x) : 0;
	if (x) {
		*exc = x;
		return JSValueMakeUndefined(ctx);
	}
	if (e->ntimers >= WEB_TIMERS_MAX)
		return throw_type(ctx, exc, "setTimeout/setInterval: too many pending timers");
	if (e->ntimers >= e->timers_cap) {
		size_t cap = e->timers_cap ? e->timers_cap * 2 : 8;
		struct web_timer *t = realloc(e->timers, cap * sizeof *t);
		if (!t)
			return throw_type(ctx, exc, "setTimeout: out of memory");
		e->timers = t;
		e->timers_cap = cap;
	}
	if (!(ms >= 1)) /* NaN, negative, below 1 */
		ms = repeat ? 1 : 0;
	if (ms > 2147483647.0)
		ms = 2147483647.0;
	struct web_timer *t = &e->timers[e->ntimers];
	*t = (struct web_timer){.id = ++e->timer_seq, .fn = (JSObjectRef)argv[0]};
	t->interval_ns = repeat ? (uint64_t)(ms * 1e6) : 0;
	t->due_ns = now_ns() + (uint64_t)(ms * 1e6);
	t->args = argc > 2 ? JSObjectMakeArray(ctx, argc - 2, argv + 2, NULL) : NULL;
	JSValueProtect(ctx, t->fn);
	if (t->args)
		JSValueProtect(ctx, t->args);
	e->ntimers++;
	return JSValueMakeNumber(ctx, t->id);
}

static JSValueRef clear_timer(engine *e, JSContextRef ctx, size_t argc, const JSValueRef argv[])
{
	double id = argc && JSValueIsNumber(ctx, argv[0]) ? JSValueToNumber(ctx, argv[0], NULL) : -1;
	for (size_t i = 0; i < e->ntimers; i++)
		if ((double)e->timers[i].id == id) {
			timer_release(e, &e->timers[i]);
			memmove(&e->timers[i], &e->timers[i + 1], (e->ntimers - i - 1) * sizeof *e->timers);
			e->ntimers--;
			break;
		}
	return JSValueMakeUndefined(ctx);
}

void webapi_drop_timers(engine *e)
{
	for (size_t i = 0; i < e->ntimers; i++)
		timer_release(e, &e->timers[i]);
	e->ntimers = 0;
}

static void sleep_until(uint64_t due)
{
	uint64_t now = now_ns();
	if (due <= now)
		return;
	struct timespec ts = {(time_t)((due - now) / 1000000000ull), (long)((due - now) % 1000000000ull)};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* The earliest due timer (by due time, then by the order they were set). */
static size_t earliest(const engine *e)
{
	size_t best = 0;
	for (size_t i = 1; i < e->ntimers; i++)
		if (e->timers[i].due_ns < e->timers[best].due_ns ||
		    (e->timers[i].due_ns == e->timers[best].due_ns &&
		     e->timers[i].id < e->timers[best].id))
			best = i;
	return best;
}

/* Runs timer i now (after sleeping until it is due): a timeout leaves the
 * list first, an interval is due again one interval later. The callback
 * may clear timers, its own included: fn and args stay protected across
 * the call. */
static void run_timer(engine *e, JSContextRef ctx, size_t i, JSValueRef *exc)
{
	struct web_timer t = e->timers[i];
	sleep_until(t.due_ns);
	JSValueProtect(ctx, t.fn);
	if (t.args)
		JSValueProtect(ctx, t.args);
	if (t.interval_ns) {
		uint64_t now = now_ns();
		e->timers[i].due_ns = (t.due_ns > now ? t.due_ns : now) + t.interval_ns;
	} else {
		timer_release(e, &e->timers[i]);
		memmove(&e->timers[i], &e->timers[i + 1], (e->ntimers - i - 1) * sizeof t);
		e->ntimers--;
	}
	JSValueRef args[16];
	JSValueRef len = t.args ? jsv_prop(ctx, t.args, "length") : NULL;
	size_t argc = len ? (size_t)JSValueToNumber(ctx, len, NULL) : 0;
	argc = argc < 16 ? argc : 16;
	for (size_t k = 0; k < argc; k++)
		args[k] = JSObjectGetPropertyAtIndex(ctx, t.args, (unsigned)k, NULL);
	JSObjectCallAsFunction(ctx, t.fn, NULL, argc, args, exc);
	timer_release(e, &t);
}

JSValueRef webapi_run_timers(engine *e, JSContextRef ctx)
{
	JSValueRef first = NULL;
	while (e->ntimers && !e->settled && e->killed == ENGINE_OK) {
		size_t i = earliest(e);
		if (e->timers[i].due_ns > e->bstart_ns + e->budget_ns) {
			e->killed = ENGINE_TIMEOUT; /* it would wait past the deadline */
			return NULL;
		}
		JSValueRef x = NULL;
		run_timer(e, ctx, i, &x);
		if (e->killed != ENGINE_OK)
			return NULL;
		if (x && !first)
			first = x;
		txs_jsc_drain_microtasks_now(ctx);
	}
	return first;
}

/* queueMicrotask(fn): fn runs as a reaction of a resolved promise. */
static JSValueRef queue_microtask_fn(engine *e, JSContextRef ctx, size_t argc,
                                     const JSValueRef argv[], JSValueRef *exc)
{
	if (!argc || !jsv_is_function(ctx, argv[0]))
		return throw_type(ctx, exc, "queueMicrotask: the callback must be a function");
	JSObjectRef resolve, reject;
	JSObjectRef p = JSObjectMakeDeferredPromise(ctx, &resolve, &reject, exc);
	if (!p)
		return JSValueMakeUndefined(ctx);
	JSObjectCallAsFunction(ctx, resolve, NULL, 0, NULL, exc);
	JSValueRef p2 = *exc ? NULL : JSObjectCallAsFunction(ctx, e->then_fn, p, 1, argv, exc);
	/* what the callback throws is reported on the console, as a browser
	 * reports it, instead of vanishing in a rejected promise */
	JSValueRef on[2] = {JSValueMakeUndefined(ctx), engine_native_fn(e, OP_REPORT_MICROTASK)};
	if (p2 && JSValueIsObject(ctx, p2))
		JSObjectCallAsFunction(ctx, e->then_fn, (JSObjectRef)p2, 2, on, exc);
	return JSValueMakeUndefined(ctx);
}

static JSValueRef report_microtask(engine *e, JSContextRef ctx, size_t argc,
                                   const JSValueRef argv[], JSValueRef *exc)
{
	JSValueRef args[2] = {jsv_string(ctx, "Uncaught (in queueMicrotask)"),
	                      argc ? argv[0] : JSValueMakeUndefined(ctx)};
	JSObjectCallAsFunction(ctx, engine_native_fn(e, OP_CON_ERROR), NULL, 2, args, exc);
	return JSValueMakeUndefined(ctx);
}

static double realtime_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* performance's time origin: the first time anything asked for it. */
static void perf_origin(engine *e)
{
	if (e->perf_origin_ns)
		return;
	e->perf_origin_ns = now_ns();
	e->perf_origin_ms = realtime_ms();
}

JSValueRef webapi_call(engine *e, enum web_op op, JSContextRef ctx, JSObjectRef self, size_t argc,
                       const JSValueRef argv[], JSValueRef *exc)
{
	(void)self;
	switch (op) {
	case OP_ATOB: return atob_fn(e, ctx, argc, argv, exc);
	case OP_BTOA: return btoa_fn(e, ctx, argc, argv, exc);
	case OP_QUEUE_MICROTASK: return queue_microtask_fn(e, ctx, argc, argv, exc);
	case OP_SET_TIMEOUT: return set_timer(e, ctx, false, argc, argv, exc);
	case OP_SET_INTERVAL: return set_timer(e, ctx, true, argc, argv, exc);
	case OP_CLEAR_TIMEOUT: case OP_CLEAR_INTERVAL: return clear_timer(e, ctx, argc, argv);
	case OP_GET_RANDOM_VALUES: return get_random_values_fn(e, ctx, argc, argv, exc);
	case OP_RANDOM_UUID: return random_uuid_fn(ctx, exc);
	case OP_DIGEST: return digest_fn(e, ctx, argc, argv, exc);
	case OP_PERF_NOW:
		perf_origin(e);
		return JSValueMakeNumber(ctx, (double)(now_ns() - e->perf_origin_ns) / 1e6);
	case OP_UTF8_ENCODE: return utf8_encode_fn(e, ctx, argc, argv, exc);
	case OP_UTF8_ENCODE_INTO: return utf8_encode_into_fn(e, ctx, argc, argv, exc);
	case OP_UTF8_DECODE: return utf8_decode_fn(ctx, argc, argv, exc);
	case OP_REPORT_MICROTASK: return report_microtask(e, ctx, argc, argv, exc);
	default: return JSValueMakeUndefined(ctx);
	}
}

/* ---- building the globals ---------------------------------------------- */

static bool put_fn(engine *e, JSObjectRef o, const char *name, enum web_op op)
{
	return jsv_set(e->ctx, o, name, engine_native_fn(e, op), kJSPropertyAttributeDontEnum);
}

static JSValueRef make_crypto(engine *e, JSContextRef ctx)
{
	JSObjectRef crypto = JSObjectMake(ctx, NULL, NULL);
	JSObjectRef subtle = JSObjectMake(ctx, NULL, NULL);
	put_fn(e, crypto, "getRandomValues", OP_GET_RANDOM_VALUES);
	put_fn(e, crypto, "randomUUID", OP_RANDOM_UUID);
	put_fn(e, subtle, "digest", OP_DIGEST);
	jsv_set(ctx, crypto, "subtle", subtle, kJSPropertyAttributeDontEnum);
	return crypto;
}

static JSValueRef make_performance(engine *e, JSContextRef ctx)
{
	perf_origin(e);
	JSObjectRef perf = JSObjectMake(ctx, NULL, NULL);
	put_fn(e, perf, "now", OP_PERF_NOW);
	jsv_set(ctx, perf, "timeOrigin", JSValueMakeNumber(ctx, e->perf_origin_ms),
	        kJSPropertyAttributeDontEnum);
	return perf;
}

/* The JS part, evaluated once per engine that needs it: its exports. */
static JSObjectRef web_js(engine *e, JSContextRef ctx, JSValueRef *exc)
{
	if (e->web_js || e->web_building)
		return e->web_js;
	e->web_building = true;
	JSStringRef src = JSStringCreateWithUTF8CString(WEBAPI_JS);
	JSStringRef url = JSStringCreateWithUTF8CString("txscan:webapi.js");
	JSValueRef f = JSEvaluateScript(ctx, src, NULL, url, 1, exc);
	JSStringRelease(src);
	JSStringRelease(url);
	JSObjectRef n = JSObjectMake(ctx, NULL, NULL);
	put_fn(e, n, "encode", OP_UTF8_ENCODE);
	put_fn(e, n, "encodeInto", OP_UTF8_ENCODE_INTO);
	put_fn(e, n, "decode", OP_UTF8_DECODE);
	jsv_set(ctx, n, "setTimeout", engine_native_fn(e, OP_SET_TIMEOUT), kJSPropertyAttributeNone);
	jsv_set(ctx, n, "now", engine_native_fn(e, OP_PERF_NOW), kJSPropertyAttributeNone);
	JSValueRef r = f && !*exc ? JSObjectCallAsFunction(ctx, (JSObjectRef)f, NULL, 1,
	                                                    (JSValueRef[]){n}, exc)
	                          : NULL;
	e->web_building = false;
	if (!r || *exc || !JSValueIsObject(ctx, r))
		return NULL;
	e->web_js = (JSObjectRef)r;
	JSValueProtect(ctx, e->web_js);
	return e->web_js;
}

static JSValueRef build(engine *e, JSContextRef ctx, const char *name, JSValueRef *exc)
{
	static const struct { const char *name; enum web_op op; } fns[] = {
	    {"atob", OP_ATOB}, {"btoa", OP_BTOA}, {"queueMicrotask", OP_QUEUE_MICROTASK},
	    {"setTimeout", OP_SET_TIMEOUT}, {"clearTimeout", OP_CLEAR_TIMEOUT},
	    {"setInterval", OP_SET_INTERVAL}, {"clearInterval", OP_CLEAR_INTERVAL}};
	for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++)
		if (!strcmp(name, fns[i].name))
			return engine_native_fn(e, fns[i].op);
	if (!strcmp(name, "crypto"))
		return make_crypto(e, ctx);
	if (!strcmp(name, "performance"))
		return make_performance(e, ctx);
	JSObjectRef js = web_js(e, ctx, exc);
	return js ? jsv_get(ctx, js, name, exc) : NULL;
}

static const char *const lazy_names[] = {
    "TextEncoder", "TextDecoder", "structuredClone", "DOMException", "Event", "EventTarget",
    "AbortController", "AbortSignal", "atob", "btoa", "queueMicrotask", "setTimeout",
    "clearTimeout", "setInterval", "clearInterval", "crypto", "performance"};
#define NLAZY (sizeof lazy_names / sizeof lazy_names[0])
_Static_assert(NLAZY <= WEB_LAZY_MAX, "engine_impl.h: WEB_LAZY_MAX too small");

/* globalThis[name] becomes a data property holding v: writable,
 * configurable, not enumerable, as the web's globals are (a define, not a
 * delete and a set, which would turn the global object into a
 * dictionary). */
static void define_value(JSContextRef ctx, const char *name, JSValueRef v, JSValueRef *exc)
{
	JSObjectRef g = JSContextGetGlobalObject(ctx);
	JSObjectRef object = jsv_object_prop(ctx, g, "Object");
	JSObjectRef define = object ? jsv_object_prop(ctx, object, "defineProperty") : NULL;
	JSObjectRef desc = JSObjectMake(ctx, NULL, NULL);
	jsv_set(ctx, desc, "value", v, kJSPropertyAttributeNone);
	jsv_set(ctx, desc, "writable", JSValueMakeBoolean(ctx, true), kJSPropertyAttributeNone);
	jsv_set(ctx, desc, "configurable", JSValueMakeBoolean(ctx, true), kJSPropertyAttributeNone);
	JSValueRef args[3] = {g, jsv_string(ctx, name), desc};
	if (define)
		JSObjectCallAsFunction(ctx, define, NULL, 3, args, exc);
}

/* The accessor of a name not yet built, its getter and its setter in one
 * function: called with no argument it builds the value and defines it on
 * the global object (every later read finds it there); with one, it
 * defines the plugin's own value instead (a polyfill's assignment). */
static JSValueRef lazy_call(JSContextRef ctx, JSObjectRef fn, JSObjectRef self, size_t argc,
                            const JSValueRef argv[], JSValueRef *exc)
{
	(void)self;
	const struct web_fn *lf = JSObjectGetPrivate(fn);
	engine *e = lf->e;
	const char *name = lazy_names[lf->op];
	if (argc) {
		define_value(ctx, name, argv[0], exc);
		return JSValueMakeUndefined(ctx);
	}
	JSValueRef v = build(e, ctx, name, exc);
	if (!v || *exc)
		return JSValueMakeUndefined(ctx);
	define_value(ctx, name, v, exc);
	return v;
}

/* The names as JSC strings, made once for the process (JSC's strings are
 * thread-safe reference counted): no UTF-8 conversion per engine. */
static JSStringRef lazy_strings[NLAZY], get_string, set_string;
static pthread_once_t strings_once = PTHREAD_ONCE_INIT;

static void make_strings(void)
{
	for (size_t i = 0; i < NLAZY; i++)
		lazy_strings[i] = JSStringCreateWithUTF8CString(lazy_names[i]);
	get_string = JSStringCreateWithUTF8CString("get");
	set_string = JSStringCreateWithUTF8CString("set");
}

/* Which of the lazy names the plugin's source mentions (bit i: lazy_names[i]),
 * remembered for the last source this thread asked about: an executor
 * rebuilds its engines from the same code, so a restart does not search
 * it again. */
static uint32_t names_in(const char *src, size_t len)
{
	static _Thread_local struct {
		const char *src;
		size_t len;
		uint32_t mask;
	} seen;
	if (src && src == seen.src && len == seen.len)
		return seen.mask;
	uint32_t mask = 0;
	for (size_t i = 0; i < NLAZY; i++)
		if (!src || memmem(src, len, lazy_names[i], strlen(lazy_names[i])))
			mask |= 1u << i;
	seen.src = src;
	seen.len = len;
	seen.mask = mask;
	return mask;
}

/* Each name an accessor property of the global object (configurable, not
 * enumerable), defined through the pristine Object.defineProperty with one
 * descriptor object reused: ~1.2-2 us a name (adding a property to the
 * global object is most of it; a global object of a class with static
 * values instead would cost nothing here but made every global lookup of
 * the plugin ~2x slower). Only the names the plugin's source mentions get
 * one: a rule that uses none of them pays a search of its source, once per
 * executor, and nothing per engine. A name built from pieces at run time
 * (globalThis['set' + 'Timeout']) is not found: write it out. */
bool webapi_install(engine *e, JSObjectRef define, const char *src, size_t len)
{
	pthread_once(&strings_once, make_strings);
	uint32_t mask = names_in(src, len);
	if (!mask)
		return true;
	JSClassDefinition def = kJSClassDefinitionEmpty;
	def.className = "Function";
	def.callAsFunction = lazy_call;
	e->lazy_class = JSClassCreate(&def);
	JSContextRef ctx = e->ctx;
	JSObjectRef g = JSContextGetGlobalObject(ctx);
	JSObjectRef desc = JSObjectMake(ctx, NULL, NULL);
	if (!jsv_set(ctx, desc, "configurable", JSValueMakeBoolean(ctx, true), kJSPropertyAttributeNone))
		return false;
	bool ok = true;
	for (size_t i = 0; ok && i < NLAZY; i++) {
		if (!(mask & 1u << i))
			continue;
		e->lazy_fns[i] = (struct web_fn){e, (int)i};
		JSObjectRef acc = JSObjectMake(ctx, e->lazy_class, &e->lazy_fns[i]);
		JSObjectSetProperty(ctx, desc, get_string, acc, kJSPropertyAttributeNone, NULL);
		JSObjectSetProperty(ctx, desc, set_string, acc, kJSPropertyAttributeNone, NULL);
		JSValueRef x = NULL;
		JSValueRef args[3] = {g, JSValueMakeString(ctx, lazy_strings[i]), desc};
		ok = JSObjectCallAsFunction(ctx, define, NULL, 3, args, &x) && !x;
	}
	return ok;
}

void webapi_free(engine *e)
{
	if (e->ctx) {
		webapi_drop_timers(e);
		if (e->web_js)
			JSValueUnprotect(e->ctx, e->web_js);
		for (size_t i = 0; i < WEB_FNS; i++)
			if (e->console_more[i])
				JSValueUnprotect(e->ctx, e->console_more[i]);
	}
	free(e->timers);
	for (size_t i = 0; i < e->nlabels; i++)
		free(e->labels[i].name);
	if (e->lazy_class)
		JSClassRelease(e->lazy_class);
}
