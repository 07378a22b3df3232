/* SPDX-License-Identifier: MIT
 * auth.h — bearer tokens for NBIA deployments that still want them (tcia-api.md §1: the
 * legacy v2 flow). A password grant to an OpenID token endpoint with client_id=nbia, then
 * refresh grants; credentials come from a file or the environment, never from argv, and
 * never reach a log line. The current v4 service needs none of this.
 */
#ifndef TCIAFS_AUTH_H
#define TCIAFS_AUTH_H

struct auth;
struct http;

/* The token endpoint used when the credentials do not name one [guess: the one the
 * official client used for the v2 API]. */
#define AUTH_DEFAULT_TOKEN_URL \
	"https://keycloak.dbmi.cloud/auth/realms/TCIA/protocol/openid-connect/token"

/* Reads credentials from a file of `name=value` lines (username, password, and optionally
 * token_url and client_id; `#` starts a comment). The file must not be readable by group
 * or others. Returns 0, -EPERM for loose permissions, -EINVAL for a file without username
 * and password, or -errno; each failure logs one line naming the file, never its text. */
int auth_new_from_file(struct http *http, const char *path, struct auth **out);

/* The same from TCIA_USERNAME, TCIA_PASSWORD and optionally TCIA_TOKEN_URL. Returns 0 with
 * *out NULL when TCIA_USERNAME is not set. */
int auth_new_from_env(struct http *http, struct auth **out);

/* Wipes the secrets and frees. Accepts NULL. */
void auth_free(struct auth *auth);

/* Installs the provider on the http client (see http_set_auth). */
void auth_attach(struct auth *auth, struct http *http);

/* How many token requests were made (for tests and status). */
unsigned long auth_token_requests(struct auth *auth);

#endif
