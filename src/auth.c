/* SPDX-License-Identifier: MIT
 * auth.c — obtains and renews bearer tokens (password grant, then refresh grant) for the
 * http client. One mutex serialises renewals: every request needs the token, so waiting
 * for the one renewal in progress is what each caller would have to do anyway.
 */
#include "auth.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "http.h"
#include "log.h"

/* Renew this many seconds before the service would: clocks and queues are not exact. */
#define AUTH_MARGIN 60

struct auth {
	struct http *http; /* borrowed */
	char *token_url;
	char *client_id;
	char *username;
	char *password;
	pthread_mutex_t lock;
	char *access;           /* protected by lock */
	time_t access_until;    /* protected by lock; already less the renewal margin */
	char *refresh;          /* protected by lock */
	time_t refresh_until;   /* protected by lock; less the margin too */
	unsigned long requests; /* protected by lock */
};

static void auth_wipe(char **s)
{
	if (*s) {
		explicit_bzero(*s, strlen(*s));
		free(*s);
		*s = NULL;
	}
}

void auth_free(struct auth *a)
{
	if (!a)
		return;
	auth_wipe(&a->username);
	auth_wipe(&a->password);
	auth_wipe(&a->access);
	auth_wipe(&a->refresh);
	free(a->token_url);
	free(a->client_id);
	pthread_mutex_destroy(&a->lock);
	free(a);
}

static int auth_create(struct http *http, const char *user, const char *pass, const char *url,
		       const char *client, struct auth **out)
{
	struct auth *a = calloc(1, sizeof(*a));

	*out = NULL;
	if (!a)
		return -ENOMEM;
	pthread_mutex_init(&a->lock, NULL);
	a->http = http;
	a->username = strdup(user);
	a->password = strdup(pass);
	a->token_url = strdup(url && *url ? url : AUTH_DEFAULT_TOKEN_URL);
	a->client_id = strdup(client && *client ? client : "nbia");
	if (!a->username || !a->password || !a->token_url || !a->client_id) {
		auth_free(a);
		return -ENOMEM;
	}
	*out = a;
	return 0;
}

static char *auth_trim(char *s)
{
	char *end;

	while (*s == ' ' || *s == '\t')
		s++;
	end = s + strlen(s);
	while (end > s && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\n' || end[-1] == '\r'))
		*--end = '\0';
	return s;
}

int auth_new_from_file(struct http *http, const char *path, struct auth **out)
{
	char line[1024], *user = NULL, *pass = NULL, *url = NULL, *client = NULL;
	struct stat st;
	FILE *f;
	int fd, rc = -EINVAL;

	*out = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		log_err("token_file %s: %s", path, strerror(-rc));
		return rc;
	}
	if (fstat(fd, &st) < 0 || (st.st_mode & 077)) {
		log_err("token_file %s: readable by others; chmod 600 it first", path);
		close(fd);
		return -EPERM;
	}
	f = fdopen(fd, "r");
	if (!f) {
		close(fd);
		return -ENOMEM;
	}
	while (fgets(line, sizeof(line), f)) {
		char *eq, *key, *val, **slot = NULL;

		key = auth_trim(line);
		if (*key == '#' || *key == '\0' || !(eq = strchr(key, '=')))
			continue;
		*eq = '\0';
		val = auth_trim(eq + 1);
		key = auth_trim(key);
		if (!strcmp(key, "username"))
			slot = &user;
		else if (!strcmp(key, "password"))
			slot = &pass;
		else if (!strcmp(key, "token_url"))
			slot = &url;
		else if (!strcmp(key, "client_id"))
			slot = &client;
		if (slot) {
			auth_wipe(slot);
			*slot = strdup(val);
		}
	}
	explicit_bzero(line, sizeof(line));
	fclose(f);
	if (user && pass)
		rc = auth_create(http, user, pass, url, client, out);
	else
		log_err("token_file %s: needs username= and password= lines", path);
	auth_wipe(&user);
	auth_wipe(&pass);
	free(url);
	free(client);
	return rc;
}

int auth_new_from_env(struct http *http, struct auth **out)
{
	const char *user = getenv("TCIA_USERNAME");
	const char *pass = getenv("TCIA_PASSWORD");

	*out = NULL;
	if (!user || !*user)
		return 0;
	if (!pass) {
		log_err("TCIA_USERNAME is set but TCIA_PASSWORD is not");
		return -EINVAL;
	}
	return auth_create(http, user, pass, getenv("TCIA_TOKEN_URL"), NULL, out);
}

/* Appends name=escaped(value) to a form; returns 0 or -ENOMEM. The old form is wiped. */
static int auth_form_add(char **form, const char *name, const char *value)
{
	char *esc = http_escape(value), *next;
	size_t n;

	if (!esc)
		return -ENOMEM;
	n = (*form ? strlen(*form) : 0) + strlen(name) + strlen(esc) + 3;
	next = malloc(n);
	if (next)
		snprintf(next, n, "%s%s%s=%s", *form ? *form : "", *form ? "&" : "", name, esc);
	auth_wipe(&esc);
	auth_wipe(form);
	*form = next;
	return next ? 0 : -ENOMEM;
}

static long auth_seconds(const json_t *v, long fallback)
{
	if (json_is_integer(v))
		return (long)json_integer_value(v);
	if (json_is_real(v))
		return (long)json_real_value(v);
	if (json_is_string(v))
		return atol(json_string_value(v));
	return fallback;
}

/* Stores a token answer. Called with the lock held. Returns 0, -EBADMSG or -ENOMEM. */
static int auth_take_answer(struct auth *a, const char *body, size_t len)
{
	json_t *root = json_loadb(body, len, 0, NULL), *acc, *ref;
	time_t now = time(NULL);
	long life;
	int rc = -EBADMSG;

	acc = json_object_get(root, "access_token");
	if (!json_is_string(acc)) {
		log_err("token endpoint %s: the answer has no access_token", a->token_url);
		goto out_decref;
	}
	rc = -ENOMEM;
	auth_wipe(&a->access);
	a->access = strdup(json_string_value(acc));
	if (!a->access)
		goto out_decref;
	life = auth_seconds(json_object_get(root, "expires_in"), 300);
	/* Renew a little early, but not so early that a short-lived token is never reused. */
	a->access_until = now + life - (life / 4 < AUTH_MARGIN ? life / 4 : AUTH_MARGIN);
	ref = json_object_get(root, "refresh_token");
	auth_wipe(&a->refresh);
	if (json_is_string(ref)) {
		a->refresh = strdup(json_string_value(ref));
		life = auth_seconds(json_object_get(root, "refresh_expires_in"), 3600);
		a->refresh_until = now + life - (life / 4 < AUTH_MARGIN ? life / 4 : AUTH_MARGIN);
	}
	rc = 0;
out_decref:
	json_decref(root);
	return rc;
}

/* Asks the token endpoint with a refresh grant (when refreshing) or a password grant.
 * Called with the lock held. */
static int auth_request(struct auth *a, bool refreshing)
{
	char *form = NULL, *body = NULL;
	size_t len = 0;
	int rc;

	rc = auth_form_add(&form, "grant_type", refreshing ? "refresh_token" : "password");
	if (rc == 0)
		rc = auth_form_add(&form, "client_id", a->client_id);
	if (rc == 0 && refreshing)
		rc = auth_form_add(&form, "refresh_token", a->refresh);
	if (rc == 0 && !refreshing)
		rc = auth_form_add(&form, "username", a->username);
	if (rc == 0 && !refreshing)
		rc = auth_form_add(&form, "password", a->password);
	if (rc == 0) {
		a->requests++;
		rc = http_post_form(a->http, a->token_url, form, &body, &len);
	}
	auth_wipe(&form);
	if (rc == 0)
		rc = auth_take_answer(a, body, len);
	if (body) {
		explicit_bzero(body, len);
		free(body);
	}
	if (rc < 0)
		log_err("token endpoint %s: %s grant failed: %s", a->token_url,
			refreshing ? "refresh" : "password", strerror(-rc));
	return rc;
}

static int auth_token(void *arg, char **token)
{
	struct auth *a = arg;
	time_t now = time(NULL);
	int rc = 0;

	*token = NULL;
	pthread_mutex_lock(&a->lock);
	if (!a->access || now >= a->access_until) {
		rc = -EACCES;
		if (a->refresh && now < a->refresh_until)
			rc = auth_request(a, true);
		if (rc < 0)
			rc = auth_request(a, false);
	}
	if (rc == 0) {
		*token = strdup(a->access);
		if (!*token)
			rc = -ENOMEM;
	}
	pthread_mutex_unlock(&a->lock);
	return rc;
}

static void auth_rejected(void *arg)
{
	struct auth *a = arg;

	pthread_mutex_lock(&a->lock);
	a->access_until = 0;
	pthread_mutex_unlock(&a->lock);
}

void auth_attach(struct auth *auth, struct http *http)
{
	struct http_auth ha = { auth_token, auth_rejected, auth };

	http_set_auth(http, &ha);
}

unsigned long auth_token_requests(struct auth *auth)
{
	unsigned long n;

	pthread_mutex_lock(&auth->lock);
	n = auth->requests;
	pthread_mutex_unlock(&auth->lock);
	return n;
}
