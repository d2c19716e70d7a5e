/*
 * jsc_private.h - the few exported-but-private JavaScriptCore functions txscan
 * needs, declared once, with the signatures from WebKit's JSContextRefPrivate.h
 * and JSBasePrivate.h (WebKitGTK 2.50, javascriptcoregtk-4.1).
 *
 * They are exported by libjavascriptcoregtk-4.1.so but absent from its public
 * headers. Only the engine (src/engine.c, src/calls.c) includes this file.
 */
#ifndef TXS_JSC_PRIVATE_H
#define TXS_JSC_PRIVATE_H

#include <JavaScriptCore/JavaScript.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Called on the VM's thread when the group's time limit has elapsed; return
 * true to terminate execution. Returning false does not re-arm the watchdog;
 * calling JSContextGroupSetExecutionTimeLimit() from inside the callback does. */
typedef bool (*JSShouldTerminateCallback)(JSContextRef ctx, void *context);

JS_EXPORT void JSContextGroupSetExecutionTimeLimit(JSContextGroupRef group,
                                                   double limit,
                                                   JSShouldTerminateCallback callback,
                                                   void *context);
JS_EXPORT void JSContextGroupClearExecutionTimeLimit(JSContextGroupRef group);

/* Disabled eval makes eval() and new Function() throw EvalError(message). */
JS_EXPORT void JSGlobalContextSetEvalEnabled(JSGlobalContextRef ctx, bool enabled,
                                             JSStringRef message);

/* Walks the heap: heapSize, heapCapacity, extraMemorySize, objectCount, ... */
JS_EXPORT JSObjectRef JSGetMemoryUsageStatistics(JSContextRef ctx);

JS_EXPORT void JSGlobalContextSetUnhandledRejectionCallback(JSGlobalContextRef ctx,
                                                            JSObjectRef function,
                                                            JSValueRef *exception);

JS_EXPORT JSStringRef JSContextCreateBacktrace(JSContextRef ctx, unsigned maxStackSize);

/* Three exported C++ functions, called with the Itanium ABI (`this` first).
 * A JSContextGroupRef is the JSC::VM itself (APICast.h: toJS(group)).
 *
 * JSC::VM::drainMicrotasks(), called from a native function inside a VM
 * entry (as the JSC shell's own drainMicrotasks() does), runs every queued
 * microtask inside that entry. Without it JSC drains microtasks as the API
 * call returns, each job in a fresh VM entry with a fresh watchdog budget,
 * so a microtask flood (f = () => Promise.resolve().then(f)) is never
 * stopped. JSC drops the API lock around C callbacks, so the caller must
 * hold a JSC::JSLockHolder (one RefPtr<VM>, 8 bytes) while it drains. */
extern void txs_jsc_drain_microtasks(JSContextGroupRef vm) __asm__("_ZN3JSC2VM15drainMicrotasksEv");
typedef struct { void *opaque[4]; } txs_jsc_lock_holder; /* room for JSC::JSLockHolder */
extern void txs_jsc_lock_holder_init(txs_jsc_lock_holder *self, JSContextGroupRef vm)
    __asm__("_ZN3JSC12JSLockHolderC1EPNS_2VME");
extern void txs_jsc_lock_holder_destroy(txs_jsc_lock_holder *self)
    __asm__("_ZN3JSC12JSLockHolderD1Ev");

/* Two more, for a transaction's JSON text that is all ASCII: a JSC string
 * of its bytes as they are (8-bit characters), without the UTF-8 decoder
 * JSStringCreateWithUTF8CString runs over every byte first (9 % of the CPU
 * of `txscan scan`, perf). WTF::StringImpl::create(std::span<const LChar>)
 * returns a Ref<StringImpl> (one pointer, through a hidden result pointer:
 * Ref is not trivially destructible); OpaqueJSString::tryCreate(String&&)
 * takes a WTF::String (one StringImpl pointer) by reference, moves it into
 * a new JSStringRef and returns that as a RefPtr (one pointer, hidden
 * result pointer too). engine_json_string (calls.c) checks the results. */
extern void txs_wtf_string_latin1(void **ref_out, const unsigned char *chars, size_t len)
    __asm__("_ZN3WTF10StringImpl6createESt4spanIKhLm18446744073709551615EE");
extern void txs_jsc_string_adopt(JSStringRef *ref_out, void **wtf_string)
    __asm__("_ZN14OpaqueJSString9tryCreateEON3WTF6StringE");

/* JSC::JSONParse(JSGlobalObject*, WTF::StringView): JSON.parse without a
 * reviver, over characters that stay where they are. A JSContextRef is the
 * JSGlobalObject itself (APICast.h), and on 64-bit a JSValueRef is the
 * encoded JSValue, which comes back in a register (JSValue is trivially
 * copyable); 0, the empty value, when the text is not JSON. A release
 * build's WTF::StringView is {characters, length, is8Bit}, trivially
 * copyable, so it is passed in two registers as this struct is. The VM's
 * lock must be held (it is not taken here). */
typedef struct {
	const void *chars;
	unsigned length;
	bool is8bit;
} txs_wtf_string_view;
extern uint64_t txs_jsc_json_parse(JSContextRef global, txs_wtf_string_view json)
    __asm__("_ZN3JSC9JSONParseEPNS_14JSGlobalObjectEN3WTF10StringViewE");

#ifdef __cplusplus
}
#endif

#endif
