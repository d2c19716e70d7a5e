/*
 * console.h - the host's default console sink: plugins' console lines go
 * into a bounded buffer (push never blocks; a full buffer drops and counts)
 * and a thread writes them to stderr as JSON lines.
 */
#ifndef TXS_CONSOLE_H
#define TXS_CONSOLE_H

#include <stddef.h>
#include <stdint.h>

typedef struct console_sink console_sink;

console_sink *console_sink_new(size_t capacity);
/* Any thread; never blocks. Matches txs_console_fn with the sink as userdata. */
void console_sink_push(const char *plugin, const char *level, const char *msg, size_t len,
                       void *sink);
uint64_t console_sink_dropped(const console_sink *s);
/* Writes what is buffered, stops the thread, frees. */
void console_sink_free(console_sink *s);

#endif
