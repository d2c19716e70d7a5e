/*
 * fuzz_channel.c - libFuzzer driver for the host's side of the channel to
 * an engine process (src/isolate/parent.c, channel.c): the input is what a
 * compromised child writes. The parent must check every frame (lengths,
 * ids, status, JSON, UTF-8) and stop at the first violation, never read
 * past a frame, never answer a scan twice (txs_proc_fuzz_feed aborts on a
 * broken invariant; ASan catches the rest).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int txs_proc_fuzz_feed(const unsigned char *data, size_t n);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned char *copy = malloc(size ? size : 1);
	if (!copy)
		return 0;
	memcpy(copy, data, size);
	txs_proc_fuzz_feed(copy, size);
	free(copy);
	return 0;
}
