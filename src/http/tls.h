/*
 * tls.h - TLS for `txscan serve`: libmicrohttpd's GnuTLS backend with the
 * certificate, key and client CA read from files and reread on SIGHUP.
 *
 * MHD is given a certificate callback (MHD_OPTION_HTTPS_CERT_CALLBACK)
 * instead of a fixed certificate: each handshake takes the certificate
 * set current at that moment, so a reload serves the new certificate to
 * new connections while the ones already open keep theirs. A set replaced
 * by a reload is kept until tls_free: a handshake may still be using it,
 * and a set is a few KB (a reload whose files did not change replaces
 * nothing). A reload that fails (a file unreadable, a key that does not
 * match its certificate, a half-written file) keeps the set in use.
 *
 * With a client CA (mutual TLS) every handshake requires a client
 * certificate, checked against the CA (reread on SIGHUP too) with the
 * "TLS client" purpose; a handshake without one, or with one the CA did
 * not sign, fails, and the hook set by tls_set_reject_hook is called.
 *
 * GnuTLS's callback has no user pointer, so there is one tls per
 * process: tls_new fails while another exists.
 */
#ifndef TXS_HTTP_TLS_H
#define TXS_HTTP_TLS_H

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct tls_files {
	const char *cert;      /* PEM, the server certificate then its chain */
	const char *key;       /* PEM private key, unencrypted */
	const char *client_ca; /* PEM CA certificates for client certificates, or NULL */
} tls_files;

typedef struct tls tls;

/* Loads the files. -1 with a message naming the file in err. */
int tls_new(tls **out, const tls_files *files, char *err, size_t errlen);
void tls_free(tls *t);

/* Rereads the files; *changed is set when the certificate, key or CA
 * changed. -1 with err (the old ones stay in use). One thread at a time. */
int tls_reload(tls *t, bool *changed, char *err, size_t errlen);

/* Called on an MHD thread when a client certificate is refused: client
 * is the peer's address ("1.2.3.4", "::1"), why a short reason. Must not
 * block. Set before MHD starts. */
typedef void (*tls_reject_fn)(const char *client, const char *why, void *userdata);
void tls_set_reject_hook(tls *t, tls_reject_fn fn, void *userdata);

bool tls_mutual(const tls *t);

/* True when session (MHD_CONNECTION_INFO_GNUTLS_SESSION) may be served:
 * without a client CA always; with one only when the peer presented a
 * certificate (the handshake verified it). */
bool tls_session_ok(const tls *t, void *session);

/* For MHD: TLS 1.2 and 1.3 only. */
const char *tls_priorities(void);
gnutls_certificate_retrieve_function2 *tls_cert_callback(void);

/* The SHA-256 of the current certificate (DER), hex, for log lines. */
void tls_fingerprint(tls *t, char *out, size_t cap);

#endif
