/*
 * eth.c - Ethereum JSON-RPC shapes: checks and fetches (see eth.h).
 *
 * Plugins get the node's transaction object untouched plus three keys:
 * "receipt" {status, gasUsed, cumulativeGasUsed, effectiveGasPrice,
 * contractAddress, logs: [{address, topics, data, logIndex}]} (null with
 * --no-receipts or for a pending transaction), "block" {number, hash,
 * timestamp} (hex, as the node sends them; null when pending). Receipt
 * fields are copied one by one after a check, so a node cannot smuggle
 * anything else into them.
 */
#include "chain/eth.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

enum { RECEIPT_BATCH = 256 };

static int fail(struct eth_chain *c, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(struct eth_chain *c, int rc, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->err, sizeof c->err, fmt, ap);
	va_end(ap);
	return rc;
}

static int rpc_fail(struct eth_chain *c, int rc)
{
	return fail(c, rc, "%s", rpc_error(c->rpc));
}

static bool hex_digits(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];
		if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F')))
			return false;
	}
	return true;
}

bool eth_quantity(const json_t *v, uint64_t *out)
{
	const char *s = json_string_value(v);
	size_t n = s ? json_string_length(v) : 0;
	if (n < 3 || n > 18 || s[0] != '0' || (s[1] != 'x' && s[1] != 'X') || !hex_digits(s + 2, n - 2))
		return false;
	uint64_t x = 0;
	for (size_t i = 2; i < n; i++) {
		char ch = s[i];
		x = x << 4 | (uint64_t)(ch <= '9' ? ch - '0' : (ch | 0x20) - 'a' + 10);
	}
	*out = x;
	return true;
}

bool eth_fixed_hex(const json_t *v, size_t bytes)
{
	const char *s = json_string_value(v);
	return s && json_string_length(v) == 2 + 2 * bytes && s[0] == '0' &&
	       (s[1] == 'x' || s[1] == 'X') && hex_digits(s + 2, 2 * bytes);
}

bool eth_data(const json_t *v)
{
	const char *s = json_string_value(v);
	size_t n = s ? json_string_length(v) : 0;
	return n >= 2 && n % 2 == 0 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X') &&
	       hex_digits(s + 2, n - 2);
}

void eth_block_clear(struct eth_block *b)
{
	json_decref(b->txs);
	memset(b, 0, sizeof *b);
}

int eth_chain_id(struct eth_chain *c)
{
	json_t *r = NULL;
	int rc = rpc_call(c->rpc, "eth_chainId", NULL, &r);
	if (rc)
		return rpc_fail(c, rc);
	bool ok = eth_quantity(r, &c->chain_id);
	json_decref(r);
	return ok ? 0 : fail(c, RPC_EPROTO, "%s: eth_chainId: not a quantity", rpc_display(c->rpc));
}

static json_t *number_param(bool latest, uint64_t n)
{
	char q[24];
	snprintf(q, sizeof q, "0x%" PRIx64, n);
	return json_string(latest ? "latest" : q);
}

/* Hashes are compared as text: one case. */
static void lower(char *s)
{
	for (; *s; s++)
		if ((*s >= 'A' && *s <= 'F') || *s == 'X')
			*s = (char)(*s | 0x20);
}

/* Fills h from a block object; the message says which field is wrong. */
static int header_parse(struct eth_chain *c, const json_t *b, struct eth_header *h)
{
	const char *bad = NULL;
	if (!json_is_object(b))
		bad = "not an object";
	else if (!eth_quantity(json_object_get(b, "number"), &h->number))
		bad = "number";
	else if (!eth_fixed_hex(json_object_get(b, "hash"), 32))
		bad = "hash";
	else if (!eth_fixed_hex(json_object_get(b, "parentHash"), 32))
		bad = "parentHash";
	else if (!eth_quantity(json_object_get(b, "timestamp"), &h->timestamp))
		bad = "timestamp";
	if (bad)
		return fail(c, RPC_EPROTO, "%s: a block from the node is malformed: %s",
		            rpc_display(c->rpc), bad);
	snprintf(h->hash, sizeof h->hash, "%s", json_string_value(json_object_get(b, "hash")));
	snprintf(h->parent, sizeof h->parent, "%s", json_string_value(json_object_get(b, "parentHash")));
	lower(h->hash);
	lower(h->parent);
	return 0;
}

int eth_header_get(struct eth_chain *c, bool latest, uint64_t number, struct eth_header *h,
                   bool *found)
{
	json_t *r = NULL, *p = json_pack("[o,b]", number_param(latest, number), 0);
	int rc = rpc_call(c->rpc, "eth_getBlockByNumber", p, &r);
	*found = false;
	if (rc)
		return rpc_fail(c, rc);
	if (!json_is_null(r)) {
		rc = header_parse(c, r, h);
		*found = rc == 0;
	}
	json_decref(r);
	return rc;
}

/* {number, hash, timestamp} as the node wrote them (hex). */
static json_t *block_ref(const json_t *b)
{
	return json_pack("{s:O, s:O, s:O}", "number", json_object_get(b, "number"), "hash",
	                 json_object_get(b, "hash"), "timestamp", json_object_get(b, "timestamp"));
}

static bool same_hex(const json_t *a, const char *b)
{
	const char *s = json_string_value(a);
	return s && !strcasecmp(s, b);
}

/* Checks one transaction of block h; the message names it. */
static int tx_check(struct eth_chain *c, const json_t *tx, const struct eth_header *h, size_t i)
{
	uint64_t n;
	const char *bad = NULL;
	json_t *to = json_object_get(tx, "to");
	if (!json_is_object(tx))
		bad = "not an object (a block fetched without its transactions?)";
	else if (!eth_fixed_hex(json_object_get(tx, "hash"), 32))
		bad = "hash";
	else if (!eth_fixed_hex(json_object_get(tx, "from"), 20))
		bad = "from";
	else if (to && !json_is_null(to) && !eth_fixed_hex(to, 20))
		bad = "to";
	else if (!eth_data(json_object_get(tx, "input")))
		bad = "input";
	else if (!same_hex(json_object_get(tx, "blockHash"), h->hash))
		bad = "blockHash (not its block's)";
	else if (!eth_quantity(json_object_get(tx, "blockNumber"), &n) || n != h->number)
		bad = "blockNumber (not its block's)";
	if (bad)
		return fail(c, RPC_EPROTO, "%s: block %" PRIu64 ", transaction %zu is malformed: %s",
		            rpc_display(c->rpc), h->number, i, bad);
	return 0;
}

static bool log_ok(const json_t *l)
{
	size_t i;
	json_t *t, *topics = json_object_get(l, "topics");
	if (!json_is_object(l) || !eth_fixed_hex(json_object_get(l, "address"), 20) ||
	    !eth_data(json_object_get(l, "data")) || !json_is_array(topics) ||
	    json_array_size(topics) > 4)
		return false;
	json_array_foreach(topics, i, t) if (!eth_fixed_hex(t, 32)) return false;
	return true;
}

static json_t *copy_log(const json_t *l)
{
	json_t *out = json_pack("{s:O, s:O, s:O}", "address", json_object_get(l, "address"), "topics",
	                        json_object_get(l, "topics"), "data", json_object_get(l, "data"));
	uint64_t q;
	if (out && eth_quantity(json_object_get(l, "logIndex"), &q))
		json_object_set(out, "logIndex", json_object_get(l, "logIndex"));
	return out;
}

/* The receipt as plugins see it, or NULL (with the error) when it is not a
 * receipt of tx. */
static json_t *receipt_for(struct eth_chain *c, const json_t *r, const json_t *tx)
{
	static const char *const quantities[] = {"status", "gasUsed", "cumulativeGasUsed",
	                                         "effectiveGasPrice"};
	uint64_t q;
	const char *hash = json_string_value(json_object_get(tx, "hash"));
	if (!json_is_object(r) || !same_hex(json_object_get(r, "transactionHash"), hash)) {
		fail(c, RPC_EPROTO, "%s: the receipt of %s does not match it", rpc_display(c->rpc), hash);
		return NULL;
	}
	json_t *out = json_object(), *logs = json_array(), *ca = json_object_get(r, "contractAddress");
	for (size_t i = 0; i < sizeof quantities / sizeof *quantities; i++) {
		json_t *v = json_object_get(r, quantities[i]);
		if (eth_quantity(v, &q))
			json_object_set(out, quantities[i], v);
	}
	json_object_set(out, "contractAddress", eth_fixed_hex(ca, 20) ? ca : json_null());
	size_t i;
	json_t *l, *in = json_object_get(r, "logs");
	json_array_foreach(in, i, l)
	{
		if (!log_ok(l)) {
			fail(c, RPC_EPROTO, "%s: the receipt of %s has a malformed log (%zu)",
			     rpc_display(c->rpc), hash, i);
			json_decref(out);
			json_decref(logs);
			return NULL;
		}
		json_array_append_new(logs, copy_log(l));
	}
	json_object_set_new(out, "logs", logs);
	return out;
}

/* receipts[i] belongs to txs[i] (block order); NULL receipts: none. */
static int assemble(struct eth_chain *c, const json_t *raw, const json_t *receipts,
                    struct eth_block *out)
{
	json_t *txs = json_object_get(raw, "transactions"), *tx;
	size_t i;
	if (!json_is_array(txs))
		return fail(c, RPC_EPROTO, "%s: block %" PRIu64 " has no transactions array",
		            rpc_display(c->rpc), out->h.number);
	if (receipts && (!json_is_array(receipts) || json_array_size(receipts) != json_array_size(txs)))
		return fail(c, RPC_EPROTO, "%s: block %" PRIu64 ": %zu receipts for %zu transactions",
		            rpc_display(c->rpc), out->h.number, json_array_size(receipts),
		            json_array_size(txs));
	out->txs = json_array();
	json_array_foreach(txs, i, tx)
	{
		int rc = tx_check(c, tx, &out->h, i);
		json_t *rec = rc || !receipts ? NULL : receipt_for(c, json_array_get(receipts, i), tx);
		if (rc || (receipts && !rec))
			return RPC_EPROTO;
		json_t *one = json_copy(tx);
		json_object_set_new(one, "receipt", rec ? rec : json_null());
		json_object_set_new(one, "block", block_ref(raw));
		json_array_append_new(out->txs, one);
	}
	return 0;
}

static json_t *tx_hash_param(const json_t *tx)
{
	return json_pack("[O]", json_object_get(tx, "hash"));
}

/* One eth_getTransactionReceipt per transaction, in batches. */
static int receipts_per_tx(struct eth_chain *c, const json_t *txs, json_t **out)
{
	size_t n = json_array_size(txs);
	*out = json_array();
	for (size_t at = 0; at < n; at += RECEIPT_BATCH) {
		size_t k = n - at < RECEIPT_BATCH ? n - at : RECEIPT_BATCH;
		const char *m[RECEIPT_BATCH];
		json_t *p[RECEIPT_BATCH], *r[RECEIPT_BATCH];
		for (size_t i = 0; i < k; i++) {
			m[i] = "eth_getTransactionReceipt";
			p[i] = tx_hash_param(json_array_get(txs, at + i));
		}
		int rc = rpc_batch(c->rpc, k, m, p, r);
		if (rc)
			return rpc_fail(c, rc);
		for (size_t i = 0; i < k; i++)
			json_array_append_new(*out, r[i]);
	}
	return 0;
}

/* Is this error "the node has no eth_getBlockReceipts"? */
static bool method_missing(struct eth_chain *c)
{
	long code = rpc_error_code(c->rpc);
	return code == -32601 || code == -32600 || code == -32602;
}

/* Receipts of each block, in order: one batch of eth_getBlockReceipts, or
 * per-transaction calls on nodes without it. */
static int receipts_get(struct eth_chain *c, json_t *const *raw, size_t n, json_t **rec)
{
	const char *m[64];
	json_t *p[64];
	int rc = 0;
	for (size_t i = 0; i < n; i++) {
		m[i] = "eth_getBlockReceipts";
		p[i] = json_pack("[O]", json_object_get(raw[i], "hash"));
	}
	if (!c->block_receipts_off) {
		rc = rpc_batch(c->rpc, n, m, p, rec);
		if (rc != RPC_EREMOTE || !method_missing(c))
			return rc ? rpc_fail(c, rc) : 0;
		c->block_receipts_off = true; /* and fall back, for good */
		rc = 0;
	} else {
		for (size_t i = 0; i < n; i++)
			json_decref(p[i]);
	}
	for (size_t i = 0; i < n && !rc; i++)
		rc = receipts_per_tx(c, json_object_get(raw[i], "transactions"), &rec[i]);
	return rc;
}

static int blocks_raw(struct eth_chain *c, uint64_t first, size_t n, json_t **raw, size_t *got)
{
	const char *m[64];
	json_t *p[64];
	for (size_t i = 0; i < n; i++) {
		m[i] = "eth_getBlockByNumber";
		p[i] = json_pack("[o,b]", number_param(false, first + i), 1);
	}
	int rc = rpc_batch(c->rpc, n, m, p, raw);
	if (rc)
		return rpc_fail(c, rc);
	*got = 0;
	while (*got < n && !json_is_null(raw[*got]))
		++*got;
	return 0;
}

int eth_blocks_get(struct eth_chain *c, uint64_t first, size_t n, struct eth_block *out,
                   size_t *got)
{
	json_t *raw[64] = {0}, *rec[64] = {0};
	size_t have = 0;
	n = n > 64 ? 64 : n ? n : 1;
	*got = 0;
	memset(out, 0, n * sizeof *out); /* every one is cleared on failure */
	int rc = blocks_raw(c, first, n, raw, &have);
	for (size_t i = 0; !rc && i < have; i++) {
		if (!(rc = header_parse(c, raw[i], &out[i].h)) && out[i].h.number != first + i)
			rc = fail(c, RPC_EPROTO, "%s: asked for block %" PRIu64 ", got %" PRIu64,
			          rpc_display(c->rpc), first + i, out[i].h.number);
	}
	if (!rc && have && c->receipts)
		rc = receipts_get(c, raw, have, rec);
	for (size_t i = 0; !rc && i < have; i++)
		rc = assemble(c, raw[i], c->receipts ? rec[i] : NULL, &out[i]);
	for (size_t i = 0; i < n; i++) {
		json_decref(raw[i]);
		json_decref(rec[i]);
		if (rc && i < have)
			eth_block_clear(&out[i]);
	}
	if (!rc)
		*got = have;
	return rc;
}

int eth_tx_get(struct eth_chain *c, const char *hash, json_t **tx, struct eth_header *block_out,
               bool *pending)
{
	json_t *raw = NULL, *rec = NULL, *blk = NULL;
	int rc;
	*tx = NULL;
	*pending = false;
	memset(block_out, 0, sizeof *block_out);
	if ((rc = rpc_call(c->rpc, "eth_getTransactionByHash", json_pack("[s]", hash), &raw)))
		return rpc_fail(c, rc);
	if (json_is_null(raw))
		goto out;
	json_t *bh = json_object_get(raw, "blockHash");
	if (!bh || json_is_null(bh)) {
		*pending = true;
		*tx = json_copy(raw);
		json_object_set_new(*tx, "receipt", json_null());
		json_object_set_new(*tx, "block", json_null());
		goto out;
	}
	if (!eth_fixed_hex(bh, 32)) {
		rc = fail(c, RPC_EPROTO, "%s: transaction %s: blockHash is malformed", rpc_display(c->rpc), hash);
		goto out;
	}
	if ((rc = rpc_call(c->rpc, "eth_getBlockByHash", json_pack("[O,b]", bh, 0), &blk))) {
		rc = rpc_fail(c, rc);
		goto out;
	}
	if ((rc = header_parse(c, blk, block_out)) || (rc = tx_check(c, raw, block_out, 0)))
		goto out;
	if (!same_hex(json_object_get(raw, "hash"), hash)) {
		rc = fail(c, RPC_EPROTO, "%s: asked for transaction %s, got another", rpc_display(c->rpc), hash);
		goto out;
	}
	if (c->receipts &&
	    (rc = rpc_call(c->rpc, "eth_getTransactionReceipt", json_pack("[s]", hash), &rec))) {
		rc = rpc_fail(c, rc);
		goto out;
	}
	json_t *r = c->receipts ? receipt_for(c, rec, raw) : json_null();
	if (!r) {
		rc = RPC_EPROTO;
		goto out;
	}
	*tx = json_copy(raw);
	json_object_set_new(*tx, "receipt", r);
	json_object_set_new(*tx, "block", block_ref(blk));
out:
	json_decref(raw);
	json_decref(rec);
	json_decref(blk);
	return rc;
}
