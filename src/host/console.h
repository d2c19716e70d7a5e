/*
 * console.h - the host's log sink: plugins' console lines and plugin
 * failure events go into a bounded buffer (push never blocks; a full
 * buffer drops and counts) and a thread writes them to stderr, so a scan
 * never waits on a write(2) to a full pipe.
 */
#ifndef TXS_CONSOLE_H
#define TXS_CONSOLE_H

#include <stddef.h>
#include <stdint.h>

typedef struct console_sink console_sink;

console_sink *console_sink_new(size_t capacity);
/* Any thread; never blocks. Takes line (malloc'ed, newline included, len
 * bytes): it is written, or freed and counted as dropped. */
void console_sink_push(console_sink *s, char *line, size_t len);
uint64_t console_sink_dropped(const console_sink *s);
/* Writes what is buffered, stops the thread, frees. */
void console_sink_free(console_sink *s);

#endif
