/*
 * tls.c - certificates for libmicrohttpd's GnuTLS backend (tls.h).
 *
 * The certificate set (chain + key) and the client trust list in use are
 * two atomic pointers; a reload builds new ones off to the side, checks
 * them (the key must match the first certificate: files rewritten one at
 * a time must not be caught half way), and swaps them in. Replaced ones go
 * on a list freed by tls_free (tls.h says why).
 */
#define _GNU_SOURCE
#include "tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <gnutls/crypto.h>
#include <gnutls/x509.h>
#include <netdb.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define MAX_CHAIN 16
#define MAX_PEER_CHAIN 16
#define MAX_PEM (1u << 20)

/* TLS 1.2 and 1.3 only; GnuTLS's NORMAL ciphers otherwise. */
#define PRIORITIES "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"

struct cert_set {
	struct cert_set *retired_next;
	gnutls_pcert_st pcert[MAX_CHAIN];
	unsigned n;
	gnutls_privkey_t key;
	uint8_t files_hash[32]; /* of the cert and key files' bytes */
	char fingerprint[65];
};

struct trust {
	struct trust *retired_next;
	gnutls_x509_trust_list_t list;
	uint8_t file_hash[32];
};

struct tls {
	char *cert_file, *key_file, *ca_file;
	_Atomic(struct cert_set *) cert;
	_Atomic(struct trust *) trust; /* NULL without a client CA */
	struct cert_set *retired_certs;
	struct trust *retired_trust;
	tls_reject_fn reject;
	void *reject_ud;
};

static _Atomic(tls *) current; /* GnuTLS's callbacks have no user pointer */

/* ---- files -------------------------------------------------------------- */

/* A whole file as a datum, NUL-terminated; the caller wipes it (wipe). */
static int read_file(const char *path, gnutls_datum_t *out, char *err, size_t errlen)
{
	FILE *f = fopen(path, "re");
	out->data = NULL;
	out->size = 0;
	if (!f) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	unsigned char *buf = malloc(MAX_PEM + 1);
	size_t n = buf ? fread(buf, 1, MAX_PEM + 1, f) : 0;
	int bad = !buf || ferror(f) || n > MAX_PEM || n == 0;
	fclose(f);
	if (bad) {
		snprintf(err, errlen, "%s: %s", path, !buf ? "out of memory"
		                                    : n == 0 ? "empty file"
		                                             : "unreadable or larger than 1 MiB");
		free(buf);
		return -1;
	}
	buf[n] = '\0';
	out->data = buf;
	out->size = (unsigned)n;
	return 0;
}

static void wipe(gnutls_datum_t *d)
{
	if (d->data) {
		explicit_bzero(d->data, d->size);
		free(d->data);
	}
	d->data = NULL;
}

static void hash2(const gnutls_datum_t *a, const gnutls_datum_t *b, uint8_t out[32])
{
	gnutls_hash_hd_t h;
	if (gnutls_hash_init(&h, GNUTLS_DIG_SHA256) < 0)
		abort();
	gnutls_hash(h, a->data, a->size);
	if (b)
		gnutls_hash(h, b->data, b->size);
	gnutls_hash_deinit(h, out);
}

/* ---- the certificate set ------------------------------------------------ */

static void cert_set_free(struct cert_set *c)
{
	if (!c)
		return;
	for (unsigned i = 0; i < c->n; i++)
		gnutls_pcert_deinit(&c->pcert[i]);
	gnutls_privkey_deinit(c->key);
	free(c);
}

/* True when key is the private half of the first certificate's key. */
static bool key_matches(struct cert_set *c)
{
	gnutls_pubkey_t pub = NULL;
	unsigned char a[64], b[64];
	size_t na = sizeof a, nb = sizeof b;
	bool ok = gnutls_pubkey_init(&pub) == 0 && gnutls_pubkey_import_privkey(pub, c->key, 0, 0) == 0 &&
	          gnutls_pubkey_get_key_id(pub, 0, a, &na) == 0 &&
	          gnutls_pubkey_get_key_id(c->pcert[0].pubkey, 0, b, &nb) == 0 && na == nb &&
	          memcmp(a, b, na) == 0;
	gnutls_pubkey_deinit(pub);
	return ok;
}

static void fingerprint(struct cert_set *c)
{
	uint8_t d[32];
	gnutls_hash_fast(GNUTLS_DIG_SHA256, c->pcert[0].cert.data, c->pcert[0].cert.size, d);
	for (int i = 0; i < 32; i++)
		snprintf(c->fingerprint + 2 * i, 3, "%02x", d[i]);
}

/* Builds a set from the PEM texts; NULL with err. */
static struct cert_set *cert_set_new(const tls *t, const gnutls_datum_t *cert,
                                     const gnutls_datum_t *key, char *err, size_t errlen)
{
	struct cert_set *c = calloc(1, sizeof *c);
	int rc;
	if (!c) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	c->n = MAX_CHAIN;
	rc = gnutls_pcert_list_import_x509_raw(c->pcert, &c->n, cert, GNUTLS_X509_FMT_PEM,
	                                       GNUTLS_X509_CRT_LIST_FAIL_IF_UNSORTED);
	if (rc < 0) {
		c->n = 0;
		snprintf(err, errlen, "%s: %s", t->cert_file, gnutls_strerror(rc));
		goto fail;
	}
	if ((rc = gnutls_privkey_init(&c->key)) < 0 ||
	    (rc = gnutls_privkey_import_x509_raw(c->key, key, GNUTLS_X509_FMT_PEM, NULL, 0)) < 0) {
		snprintf(err, errlen, "%s: %s", t->key_file, gnutls_strerror(rc));
		goto fail;
	}
	if (!key_matches(c)) {
		snprintf(err, errlen, "%s does not match the certificate of %s", t->key_file,
		         t->cert_file);
		goto fail;
	}
	hash2(cert, key, c->files_hash);
	fingerprint(c);
	return c;
fail:
	cert_set_free(c);
	return NULL;
}

static int load_cert(tls *t, struct cert_set **out, char *err, size_t errlen)
{
	gnutls_datum_t cert, key = {0};
	*out = NULL;
	if (read_file(t->cert_file, &cert, err, errlen) < 0)
		return -1;
	if (read_file(t->key_file, &key, err, errlen) == 0)
		*out = cert_set_new(t, &cert, &key, err, errlen);
	wipe(&cert);
	wipe(&key);
	return *out ? 0 : -1;
}

/* ---- the client CA ------------------------------------------------------ */

static void trust_free(struct trust *tr)
{
	if (!tr)
		return;
	gnutls_x509_trust_list_deinit(tr->list, 1);
	free(tr);
}

static int load_trust(tls *t, struct trust **out, char *err, size_t errlen)
{
	gnutls_datum_t pem;
	struct trust *tr = NULL;
	int rc = -1;
	*out = NULL;
	if (read_file(t->ca_file, &pem, err, errlen) < 0)
		return -1;
	if (!(tr = calloc(1, sizeof *tr)) || gnutls_x509_trust_list_init(&tr->list, 0) < 0) {
		snprintf(err, errlen, "out of memory");
		free(tr);
		tr = NULL;
		goto out;
	}
	int n = gnutls_x509_trust_list_add_trust_mem(tr->list, &pem, NULL, GNUTLS_X509_FMT_PEM, 0, 0);
	if (n <= 0) {
		snprintf(err, errlen, "%s: %s", t->ca_file,
		         n < 0 ? gnutls_strerror(n) : "no CA certificate in the file");
		goto out;
	}
	hash2(&pem, NULL, tr->file_hash);
	*out = tr;
	tr = NULL;
	rc = 0;
out:
	trust_free(tr);
	wipe(&pem);
	return rc;
}

/* ---- handshake callbacks ------------------------------------------------ */

static void peer_address(gnutls_session_t s, char *out, size_t cap)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;
	int fd = gnutls_transport_get_int(s);
	snprintf(out, cap, "?");
	if (fd >= 0 && getpeername(fd, (struct sockaddr *)&ss, &sl) == 0)
		getnameinfo((struct sockaddr *)&ss, sl, out, (socklen_t)cap, NULL, 0, NI_NUMERICHOST);
}

/* NULL when the peer's chain is one the client CA signed for TLS clients. */
static const char *verify_chain(struct trust *tr, const gnutls_datum_t *raw, unsigned n)
{
	gnutls_x509_crt_t crts[MAX_PEER_CHAIN];
	unsigned got = 0, status = 0;
	const char *why = NULL;
	if (n > MAX_PEER_CHAIN)
		return "client certificate chain too long";
	for (; got < n; got++) {
		if (gnutls_x509_crt_init(&crts[got]) < 0) {
			why = "out of memory";
			break;
		}
		if (gnutls_x509_crt_import(crts[got], &raw[got], GNUTLS_X509_FMT_DER) < 0) {
			why = "client certificate unreadable";
			got++; /* initialized: deinit it below */
			break;
		}
	}
	gnutls_typed_vdata_st purpose = {.type = GNUTLS_DT_KEY_PURPOSE_OID,
	                                 .data = (unsigned char *)GNUTLS_KP_TLS_WWW_CLIENT};
	if (!why && (gnutls_x509_trust_list_verify_crt2(tr->list, crts, n, &purpose, 1, 0, &status,
	                                                NULL) < 0 ||
	             status != 0))
		why = "client certificate not trusted (--tls-client-ca)";
	for (unsigned i = 0; i < got; i++)
		gnutls_x509_crt_deinit(crts[i]);
	return why;
}

/* Runs in the handshake once the client's certificate is in, or its
 * absence: the request is GNUTLS_CERT_REQUEST rather than REQUIRE so that
 * this runs (and counts the refusal) when none comes. Nonzero fails the
 * handshake. */
static int verify_client(gnutls_session_t s)
{
	tls *t = atomic_load(&current);
	struct trust *tr = t ? atomic_load(&t->trust) : NULL;
	unsigned n = 0;
	const gnutls_datum_t *raw = gnutls_certificate_get_peers(s, &n);
	const char *why = !tr ? "no client CA"
	                  : !raw || !n ? "no client certificate"
	                               : verify_chain(tr, raw, n);
	if (!why)
		return 0;
	if (t && t->reject) {
		char addr[64];
		peer_address(s, addr, sizeof addr);
		t->reject(addr, why, t->reject_ud);
	}
	return -1;
}

static int retrieve(gnutls_session_t s, const gnutls_datum_t *req_ca, int nreqs,
                    const gnutls_pk_algorithm_t *algos, int nalgos, gnutls_pcert_st **pcert,
                    unsigned int *n, gnutls_privkey_t *key)
{
	(void)req_ca, (void)nreqs, (void)algos, (void)nalgos;
	tls *t = atomic_load(&current);
	struct cert_set *c = t ? atomic_load(&t->cert) : NULL;
	if (!c)
		return -1;
	*pcert = c->pcert;
	*n = c->n;
	*key = c->key;
	/* Called while the ClientHello is processed, before the server asks
	 * for the client's certificate: early enough to ask for one. */
	if (atomic_load(&t->trust)) {
		gnutls_certificate_server_set_request(s, GNUTLS_CERT_REQUEST);
		gnutls_session_set_verify_function(s, verify_client);
	}
	return 0;
}

gnutls_certificate_retrieve_function2 *tls_cert_callback(void)
{
	return retrieve;
}

const char *tls_priorities(void)
{
	return PRIORITIES;
}

/* ---- lifecycle ---------------------------------------------------------- */

int tls_new(tls **out, const tls_files *files, char *err, size_t errlen)
{
	tls *t = calloc(1, sizeof *t);
	struct cert_set *c = NULL;
	struct trust *tr = NULL;
	*out = NULL;
	if (!t || !(t->cert_file = strdup(files->cert)) || !(t->key_file = strdup(files->key)) ||
	    (files->client_ca && !(t->ca_file = strdup(files->client_ca)))) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if (load_cert(t, &c, err, errlen) < 0 || (t->ca_file && load_trust(t, &tr, err, errlen) < 0))
		goto fail;
	atomic_init(&t->cert, c);
	atomic_init(&t->trust, tr);
	tls *none = NULL;
	if (!atomic_compare_exchange_strong(&current, &none, t)) {
		snprintf(err, errlen, "TLS is already set up in this process");
		goto fail;
	}
	*out = t;
	return 0;
fail:
	cert_set_free(c);
	trust_free(tr);
	if (t) {
		atomic_store(&t->cert, NULL);
		atomic_store(&t->trust, NULL);
	}
	tls_free(t);
	return -1;
}

void tls_free(tls *t)
{
	if (!t)
		return;
	tls *self = t;
	atomic_compare_exchange_strong(&current, &self, NULL);
	cert_set_free(atomic_load(&t->cert));
	trust_free(atomic_load(&t->trust));
	while (t->retired_certs) {
		struct cert_set *next = t->retired_certs->retired_next;
		cert_set_free(t->retired_certs);
		t->retired_certs = next;
	}
	while (t->retired_trust) {
		struct trust *next = t->retired_trust->retired_next;
		trust_free(t->retired_trust);
		t->retired_trust = next;
	}
	free(t->cert_file);
	free(t->key_file);
	free(t->ca_file);
	free(t);
}

int tls_reload(tls *t, bool *changed, char *err, size_t errlen)
{
	struct cert_set *c = NULL, *old_c = atomic_load(&t->cert);
	struct trust *tr = NULL, *old_tr = atomic_load(&t->trust);
	*changed = false;
	if (load_cert(t, &c, err, errlen) < 0 || (t->ca_file && load_trust(t, &tr, err, errlen) < 0)) {
		cert_set_free(c);
		return -1;
	}
	if (memcmp(c->files_hash, old_c->files_hash, sizeof c->files_hash)) {
		atomic_store(&t->cert, c);
		old_c->retired_next = t->retired_certs;
		t->retired_certs = old_c;
		*changed = true;
	} else {
		cert_set_free(c);
	}
	if (tr && memcmp(tr->file_hash, old_tr->file_hash, sizeof tr->file_hash)) {
		atomic_store(&t->trust, tr);
		old_tr->retired_next = t->retired_trust;
		t->retired_trust = old_tr;
		*changed = true;
	} else {
		trust_free(tr);
	}
	return 0;
}

void tls_set_reject_hook(tls *t, tls_reject_fn fn, void *userdata)
{
	t->reject = fn;
	t->reject_ud = userdata;
}

bool tls_mutual(const tls *t)
{
	return t && t->ca_file;
}

bool tls_session_ok(const tls *t, void *session)
{
	unsigned n = 0;
	if (!tls_mutual(t))
		return true;
	return session && gnutls_certificate_get_peers(session, &n) && n > 0;
}

void tls_fingerprint(tls *t, char *out, size_t cap)
{
	snprintf(out, cap, "%s", atomic_load(&t->cert)->fingerprint);
}
