/*
 * jsval.c - small helpers over JavaScriptCore's C API: property access by
 * C name, strings in and out, and an exception or value as text. Nothing
 * here knows about engines; every function runs on the VM's thread.
 */
#define _GNU_SOURCE
#include "jsval.h"

#include "util/srcmap.h"

#ifdef __SSE2__
#include <emmintrin.h>
#endif
#include <stdarg.h>
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

char *jsv_utf8(JSStringRef s, size_t *len)
{
	size_t ascii_len;
	char *ascii = string_ascii(s, &ascii_len);
	if (ascii) {
		if (len)
			*len = ascii_len;
		return ascii;
	}
	size_t cap = JSStringGetMaximumUTF8CStringSize(s);
	char *p = malloc(cap ? cap : 1);
	if (!p)
		return NULL;
	size_t n = JSStringGetUTF8CString(s, p, cap);
	if (n == 0)
		p[0] = '\0';
	if (len)
		*len = n ? n - 1 : 0;
	return p;
}

/* Converts any value to text; under the watchdog, so a looping toString is
 * terminated. Never returns NULL unless out of memory. */
char *jsv_text(JSContextRef ctx, JSValueRef v)
{
	JSStringRef s = v ? JSValueToStringCopy(ctx, v, NULL) : NULL;
	if (!s)
		return strdup("exception that cannot be printed");
	char *p = jsv_utf8(s, NULL);
	JSStringRelease(s);
	return p;
}

JSValueRef jsv_prop(JSContextRef ctx, JSObjectRef o, const char *name)
{
	JSStringRef n = JSStringCreateWithUTF8CString(name);
	JSValueRef v = JSObjectGetProperty(ctx, o, n, NULL);
	JSStringRelease(n);
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

/* String(v) as a JSC string; a symbol goes through string_fn (the
 * pristine String, which prints symbols where ToString throws). NULL with
 * *exc set when it threw. */
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

/* o[name] = v: an existing property keeps its attributes, a new one gets
 * a. Replacing JSC's own global console this way costs ~15 us; deleting it
 * first costs ~0.2 ms per engine (the global object's layout becomes a
 * dictionary). */
bool jsv_set(JSContextRef ctx, JSObjectRef o, const char *name, JSValueRef v,
             JSPropertyAttributes a)
{
	JSStringRef n = JSStringCreateWithUTF8CString(name);
	JSValueRef exc = NULL;
	JSObjectSetProperty(ctx, o, n, v, a, &exc);
	JSStringRelease(n);
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
 * for errors thrown while the module is parsed or loaded. */
char *jsv_exception_text(JSContextRef ctx, JSValueRef exc)
{
	char *msg = jsv_text(ctx, exc);
	if (!msg || !exc || !JSValueIsObject(ctx, exc))
		return msg;
	JSObjectRef o = (JSObjectRef)exc;
	JSValueRef line = jsv_prop(ctx, o, "line");
	JSValueRef url = jsv_prop(ctx, o, "sourceURL");
	JSValueRef stack = jsv_prop(ctx, o, "stack");
	char *u = url && JSValueIsString(ctx, url) ? jsv_text(ctx, url) : NULL;
	char *where = NULL, *st = NULL;
	if (u && line && JSValueIsNumber(ctx, line))
		where = jsv_printf("%s:%.0f: ", u, JSValueToNumber(ctx, line, NULL));
	if (stack && JSValueIsString(ctx, stack)) {
		st = jsv_text(ctx, stack);
		if (st)
			jsv_strip_stack(st);
	}
	char *out = jsv_printf("%s%s%s%s", where ? where : "", msg, st && *st ? "\n" : "",
	                       st && *st ? st : "");
	free(msg);
	free(u);
	free(where);
	free(st);
	char *mapped = srcmap_rewrite(out); /* a bundle's positions, as the original files' */
	if (mapped) {
		free(out);
		out = mapped;
	}
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
	JSStringRef n = JSStringCreateWithUTF8CString(name);
	JSValueRef v = JSObjectGetProperty(ctx, o, n, exc);
	JSStringRelease(n);
	return *exc ? NULL : v;
}

bool jsv_is_function(JSContextRef ctx, JSValueRef v)
{
	return v && JSValueIsObject(ctx, v) && JSObjectIsFunction(ctx, (JSObjectRef)v);
}
