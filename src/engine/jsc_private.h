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

/* Runs every queued microtask now, inside the VM entry that is running. */
static inline void txs_jsc_drain_microtasks_now(JSContextRef ctx)
{
	JSContextGroupRef vm = JSContextGetGroup(ctx);
	txs_jsc_lock_holder lock;
	txs_jsc_lock_holder_init(&lock, vm);
	txs_jsc_drain_microtasks(vm);
	txs_jsc_lock_holder_destroy(&lock);
}

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
