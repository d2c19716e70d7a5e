/*
 * jsval.h - small helpers over JavaScriptCore's C API (src/jsval.c), shared
 * by the engine's code. Strings returned as char * are malloc'd UTF-8 (the
 * caller frees them); NULL means out of memory unless a function says more.
 */
#ifndef TXS_JSVAL_H
#define TXS_JSVAL_H

#include <JavaScriptCore/JavaScript.h>
#include <stdbool.h>
#include <stddef.h>

/* Error text (message and stack) in bytes: a thrown 50 MB message is cut to
 * this, keeping the head, before it leaves the VM. */
#define JSV_ERROR_MAX 16384

/* asprintf that returns the string, or NULL. */
char *jsv_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* s as UTF-8 (a lone surrogate as U+FFFD); *len (may be NULL) gets its
 * length in bytes. */
char *jsv_utf8(JSStringRef s, size_t *len);
/* At most max bytes of s as UTF-8, whole characters (a lone surrogate as
 * U+FFFD, as jsv_utf8 writes it); *len its length, *cut the UTF-16 units
 * left out. Never copies more of s than that. */
char *jsv_utf8_head(JSStringRef s, size_t max, size_t *len, size_t *cut);
/* String(v) (string_fn: the pristine String, which prints symbols; without
 * it only a string value is printed, anything else gives NULL), at most
 * max bytes of it: a long string is sliced (slice_fn: the pristine
 * String.prototype.slice) before any of it is copied out of the VM. *cut
 * gets the UTF-16 units left out. NULL with *exc set when String(v) threw
 * (under the watchdog). */
char *jsv_text_head(JSContextRef ctx, JSObjectRef string_fn, JSObjectRef slice_fn, JSValueRef v,
                    size_t max, size_t *len, size_t *cut, JSValueRef *exc);
/* The length in UTF-16 units of the string value s, without copying it
 * out of the VM (0 for anything else). */
size_t jsv_string_units(JSContextRef ctx, JSValueRef s);
/* A string value made from UTF-8. */
JSValueRef jsv_string(JSContextRef ctx, const char *s);
/* String(v) as UTF-8 (owned), or a note when it cannot be printed. */
char *jsv_text(JSContextRef ctx, JSValueRef v);
/* String(v) as a JSString (owned; symbols print); NULL with *exc set. */
JSStringRef jsv_string_of(JSContextRef ctx, JSObjectRef string_fn, JSValueRef v, JSValueRef *exc);

/* name (a property name C code uses) as a JSC string made once for the
 * process and never released: the caller must not release it. NULL for a
 * name of 32 bytes or more, or when the table is full (make one then). */
JSStringRef jsv_name(const char *name);
/* o[name], ignoring what a getter throws. */
JSValueRef jsv_prop(JSContextRef ctx, JSObjectRef o, const char *name);
/* o[name] when it is an object, else NULL. */
JSObjectRef jsv_object_prop(JSContextRef ctx, JSObjectRef o, const char *name);
/* o[name], or NULL with *exc set when a getter threw. */
JSValueRef jsv_get(JSContextRef ctx, JSObjectRef o, const char *name, JSValueRef *exc);
/* o[name] = v (a new property gets attributes a); false if it threw. */
bool jsv_set(JSContextRef ctx, JSObjectRef o, const char *name, JSValueRef v,
             JSPropertyAttributes a);

/* typeof v, as JavaScript spells it. */
const char *jsv_type_name(JSContextRef ctx, JSValueRef v);
bool jsv_is_function(JSContextRef ctx, JSValueRef v);

/* Drops native frames from a stack trace, in place. */
void jsv_strip_stack(char *st);
/* "index.js:3: SyntaxError: Unexpected token '}'" plus the stack, for an
 * error thrown while a module is parsed or loaded; at most JSV_ERROR_MAX
 * bytes (string_fn, slice_fn: as for jsv_text_head). */
char *jsv_exception_text(JSContextRef ctx, JSObjectRef string_fn, JSObjectRef slice_fn,
                         JSValueRef exc);

#endif
