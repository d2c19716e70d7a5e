/*
 * answers.h - one thread reads the answer pipes of every engine process.
 *
 * A fan-out to eight engine processes gets eight answers back. With an I/O
 * thread per proxy reading its own pipe, each answer woke a different
 * thread: eight wake-ups (and switches) on top of the children's own.
 * One reader, in epoll over every pipe, takes whatever answers are ready
 * when it wakes, and often finds the next one ready before it sleeps
 * again (bench/fanout_floor.c: 18 % less latency and CPU per fan-out to
 * 8 than a thread per pipe, with no txscan code involved).
 *
 * A pipe is attached with the function that reads it. The reader calls
 * that function each time the pipe is readable (or at its end), one pipe
 * at a time, never two calls for one pipe at once; a call that returns
 * false ends the reading of that pipe (its end, or a violation). The
 * reader is one thread for the whole process, started on the first attach
 * and never stopped.
 */
#ifndef TXS_ANSWERS_H
#define TXS_ANSWERS_H

#include <stdbool.h>

typedef struct answers_slot answers_slot;

/* read(owner, fd): one round of reading fd; false when it is done with. */
typedef bool (*answers_read_fn)(void *owner, int fd);

/* Starts reading fd (non-blocking) with read(owner). NULL when out of
 * memory or the reader cannot start (errno set). */
answers_slot *answers_attach(int fd, answers_read_fn read, void *owner);

/* Stops it: when this returns, read(owner) is not running and never runs
 * again, so the caller may then read fd itself, close it, free owner. Call
 * it exactly once per slot, from any thread but from within read for the
 * same slot; it frees the slot. */
void answers_detach(answers_slot *s);

#endif
