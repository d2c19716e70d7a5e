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

/* asprintf that returns the string, or NULL. */
char *jsv_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* s as UTF-8; *len (may be NULL) gets its length in bytes. */
char *jsv_utf8(JSStringRef s, size_t *len);
/* String(v), under the watchdog; never NULL unless out of memory. */
char *jsv_text(JSContextRef ctx, JSValueRef v);
/* String(v), a symbol through string_fn (the pristine String); NULL with
 * *exc set when it threw. */
JSStringRef jsv_string_of(JSContextRef ctx, JSObjectRef string_fn, JSValueRef v, JSValueRef *exc);
/* A string value made from UTF-8. */
JSValueRef jsv_string(JSContextRef ctx, const char *s);

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
 * error thrown while a module is parsed or loaded. */
char *jsv_exception_text(JSContextRef ctx, JSValueRef exc);

#endif
