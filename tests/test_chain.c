/*
 * test_chain.c - the chain layer's checks of what a node sends (hex
 * quantities, hashes, data), the RPC client's URL handling (credentials
 * never shown), and the follower's window and checkpoint file (round trip,
 * bounded, every malformed field refused). The live behaviour against a
 * real node is tests/follow_test.py.
 */
#define _POSIX_C_SOURCE 200809L
#include "chain/checkpoint.h"
#include "chain/eth.h"
#include "chain/rpc.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

static bool quantity(const char *s, uint64_t *out)
{
	json_t *v = json_string(s);
	bool ok = eth_quantity(v, out);
	json_decref(v);
	return ok;
}

static void test_quantity(void **state)
{
	(void)state;
	uint64_t n = 0;
	assert_true(quantity("0x0", &n));
	assert_int_equal(n, 0);
	assert_true(quantity("0x1a", &n));
	assert_int_equal(n, 26);
	assert_true(quantity("0XFFFFFFFFFFFFFFFF", &n));
	assert_true(n == UINT64_MAX);
	const char *bad[] = {"", "0x", "1a", "0x1g", "0x10000000000000000", " 0x1", "0x1 ", "-0x1",
	                     "0x-1"};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
		assert_false(quantity(bad[i], &n));
	json_t *num = json_integer(5);
	assert_false(eth_quantity(num, &n)); /* JSON-RPC quantities are strings */
	json_decref(num);
	assert_false(eth_quantity(NULL, &n));
}

static bool fixed(const char *s, size_t bytes)
{
	json_t *v = json_string(s);
	bool ok = eth_fixed_hex(v, bytes);
	json_decref(v);
	return ok;
}

static void test_hashes_and_data(void **state)
{
	(void)state;
	char h[67] = "0x";
	memset(h + 2, 'a', 64);
	h[66] = '\0';
	assert_true(fixed(h, 32));
	assert_false(fixed(h, 20));
	h[10] = 'g';
	assert_false(fixed(h, 32));
	assert_true(fixed("0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266", 20));
	assert_false(fixed("f39fd6e51aad88f6f4ce6ab8827279cfffb9226600", 20));
	json_t *v = json_string("0x");
	assert_true(eth_data(v));
	json_decref(v);
	v = json_string("0x123");
	assert_false(eth_data(v)); /* odd length */
	json_decref(v);
	v = json_stringn("0x12\0" "4", 5);
	assert_false(eth_data(v)); /* a NUL inside */
	json_decref(v);
}

static void test_rpc_url(void **state)
{
	(void)state;
	rpc_client *c = NULL;
	char err[256];
	assert_int_equal(rpc_new(&c, "ftp://x", NULL, err, sizeof err), RPC_EPROTO);
	assert_null(c);
	assert_int_equal(rpc_new(&c, "file:///etc/passwd", NULL, err, sizeof err), RPC_EPROTO);
	assert_int_equal(rpc_new(&c, "https://user:s3cret@node.example:8545/v2/KEY?x=1", NULL, err,
	                         sizeof err), 0);
	assert_string_equal(rpc_display(c), "https://node.example:8545");
	assert_null(strstr(rpc_display(c), "s3cret"));
	rpc_free(c);
	rpc_free(NULL);
}

static void header(struct eth_header *h, uint64_t n)
{
	memset(h, 0, sizeof *h);
	h->number = n;
	h->timestamp = 1000 + n;
	snprintf(h->hash, sizeof h->hash, "0x%064llx", (unsigned long long)(0xb000 + n));
	snprintf(h->parent, sizeof h->parent, "0x%064llx", (unsigned long long)(0xb000 + n - 1));
}

static json_t *txs_of(uint64_t n, size_t k)
{
	json_t *a = json_array();
	for (size_t i = 0; i < k; i++) {
		char h[67];
		snprintf(h, sizeof h, "0x%064llx", (unsigned long long)(n * 100 + i));
		json_array_append_new(a, json_pack("{s:s}", "hash", h));
	}
	return a;
}

static char *tmp_path(void)
{
	char *p = strdup("/tmp/test_chain_XXXXXX");
	int fd = mkstemp(p);
	close(fd);
	unlink(p);
	return p;
}

static void test_window_and_checkpoint(void **state)
{
	(void)state;
	struct window w, r;
	char err[512];
	char *path = tmp_path();
	assert_int_equal(window_init(&w, 31337, 3), 0);
	for (uint64_t n = 1; n <= 6; n++) {
		struct eth_header h;
		json_t *txs = txs_of(n, n % 3);
		header(&h, n);
		assert_int_equal(window_push(&w, &h, n > 1, txs), 0);
		json_decref(txs);
	}
	assert_int_equal(w.n, 4); /* max_reorg 3: the tip and 3 before it */
	assert_int_equal(w.b[0].h.number, 3);
	assert_int_equal(window_tip(&w)->h.number, 6);
	assert_int_equal(checkpoint_save(&w, path, err, sizeof err), 0);

	assert_int_equal(window_init(&r, 31337, 3), 0);
	assert_int_equal(checkpoint_load(&r, path, err, sizeof err), 1);
	assert_int_equal(r.n, 4);
	for (size_t i = 0; i < r.n; i++) {
		assert_int_equal(r.b[i].h.number, w.b[i].h.number);
		assert_string_equal(r.b[i].h.hash, w.b[i].h.hash);
		assert_string_equal(r.b[i].h.parent, w.b[i].h.parent);
		assert_int_equal(r.b[i].ntx, w.b[i].ntx);
		for (size_t k = 0; k < r.b[i].ntx; k++)
			assert_string_equal(r.b[i].txs[k], w.b[i].txs[k]);
	}
	window_free(&r);

	/* a smaller --max-reorg on restart keeps the newest blocks */
	assert_int_equal(window_init(&r, 31337, 1), 0);
	assert_int_equal(checkpoint_load(&r, path, err, sizeof err), 1);
	assert_int_equal(r.n, 2);
	assert_int_equal(window_tip(&r)->h.number, 6);
	window_free(&r);

	/* another chain */
	assert_int_equal(window_init(&r, 1, 3), 0);
	assert_int_equal(checkpoint_load(&r, path, err, sizeof err), -1);
	assert_non_null(strstr(err, "written for chain 31337, the node is chain 1"));
	window_free(&r);

	window_pop(&w);
	assert_int_equal(window_tip(&w)->h.number, 5);
	window_free(&w);
	unlink(path);
	assert_int_equal(window_init(&r, 31337, 3), 0);
	assert_int_equal(checkpoint_load(&r, path, err, sizeof err), 0); /* no file: start */
	window_free(&r);
	free(path);
}

static int load_text(const char *text, char *err, size_t n)
{
	struct window r;
	char *path = tmp_path();
	FILE *f = fopen(path, "w");
	fputs(text, f);
	fclose(f);
	window_init(&r, 5, 8);
	int rc = checkpoint_load(&r, path, err, n);
	assert_int_equal(r.n, rc == 1 ? r.n : 0); /* nothing kept from a bad file */
	window_free(&r);
	unlink(path);
	free(path);
	return rc;
}

#define H64 "0x0000000000000000000000000000000000000000000000000000000000000001"
#define H64B "0x0000000000000000000000000000000000000000000000000000000000000002"

static void test_checkpoint_malformed(void **state)
{
	(void)state;
	char err[512];
	const char *ok = "{\"txscan_checkpoint\":1,\"chainId\":5,\"number\":7,\"hash\":\"" H64 "\","
	                 "\"blocks\":[{\"number\":7,\"hash\":\"" H64 "\",\"parentHash\":\"" H64B "\","
	                 "\"timestamp\":9,\"reported\":true,\"txs\":[\"" H64B "\"]}]}";
	assert_int_equal(load_text(ok, err, sizeof err), 1);
	const char *bad[] = {
	    "", "{", "[]", "{\"txscan_checkpoint\":1}",
	    "{\"txscan_checkpoint\":1,\"chainId\":5,\"blocks\":[]}",
	    /* a hash that is not 32 bytes */
	    "{\"txscan_checkpoint\":1,\"chainId\":5,\"blocks\":[{\"number\":7,\"hash\":\"0x12\","
	    "\"parentHash\":\"" H64B "\",\"timestamp\":9,\"reported\":true,\"txs\":[]}]}",
	    /* a tx hash that is not one */
	    "{\"txscan_checkpoint\":1,\"chainId\":5,\"blocks\":[{\"number\":7,\"hash\":\"" H64 "\","
	    "\"parentHash\":\"" H64B "\",\"timestamp\":9,\"reported\":true,\"txs\":[\"x\"]}]}",
	    /* a negative number, a missing field */
	    "{\"txscan_checkpoint\":1,\"chainId\":5,\"blocks\":[{\"number\":-7,\"hash\":\"" H64 "\","
	    "\"parentHash\":\"" H64B "\",\"timestamp\":9,\"reported\":true,\"txs\":[]}]}",
	    "{\"txscan_checkpoint\":1,\"chainId\":5,\"blocks\":[{\"number\":7,\"hash\":\"" H64 "\","
	    "\"timestamp\":9,\"reported\":true,\"txs\":[]}]}",
	    /* blocks that do not follow one another */
	    "{\"txscan_checkpoint\":1,\"chainId\":5,\"blocks\":[{\"number\":7,\"hash\":\"" H64 "\","
	    "\"parentHash\":\"" H64B "\",\"timestamp\":9,\"reported\":true,\"txs\":[]},"
	    "{\"number\":9,\"hash\":\"" H64 "\",\"parentHash\":\"" H64B "\",\"timestamp\":9,"
	    "\"reported\":true,\"txs\":[]}]}",
	    /* a duplicate key */
	    "{\"txscan_checkpoint\":1,\"chainId\":5,\"chainId\":6,\"blocks\":[]}",
	};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		err[0] = '\0';
		assert_int_equal(load_text(bad[i], err, sizeof err), -1);
		assert_true(err[0] != '\0');
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_quantity),
	    cmocka_unit_test(test_hashes_and_data),
	    cmocka_unit_test(test_rpc_url),
	    cmocka_unit_test(test_window_and_checkpoint),
	    cmocka_unit_test(test_checkpoint_malformed),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
