/* SPDX-License-Identifier: MIT
 * libFuzzer target: jsonobj.c against jansson. Any text jansson loads as an object reads
 * member for member alike (strings byte for byte, other values as JSON that loads
 * equal); any other text ends in -EBADMSG or reads without a fault. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "jsonobj.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_member(const struct jsonobj_member *m, const char *key, json_t *value)
{
	json_t *again;

	if (m->klen != strlen(key) || memcmp(m->key, key, m->klen) != 0)
		abort();
	switch (json_typeof(value)) {
	case JSON_NULL:
		if (m->type != JSONOBJ_NULL || m->text)
			abort();
		return;
	case JSON_TRUE:
		if (m->type != JSONOBJ_TRUE)
			abort();
		return;
	case JSON_FALSE:
		if (m->type != JSONOBJ_FALSE)
			abort();
		return;
	case JSON_STRING:
		if (m->type != JSONOBJ_STRING || m->len != json_string_length(value) ||
		    memcmp(m->text, json_string_value(value), m->len) != 0)
			abort();
		return;
	default:
		if (m->type != (json_is_array(value)    ? JSONOBJ_ARRAY
				: json_is_object(value) ? JSONOBJ_OBJECT
							: JSONOBJ_NUMBER))
			abort();
		again = json_loadb(m->text, m->len, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
		if (!again || !json_equal(again, value))
			abort();
		json_decref(again);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data;
	json_t *root = json_loadb(text, size, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, NULL);
	struct jsonobj o = { 0 };
	struct jsonobj_member m;
	const char *key;
	json_t *value;
	int rc;

	jsonobj_start(&o, text, size);
	if (json_is_object(root)) {
		json_object_foreach(root, key, value)
		{
			if (jsonobj_next(&o, &m) != 1)
				abort();
			check_member(&m, key, value);
		}
		if (jsonobj_next(&o, &m) != 0)
			abort();
	} else {
		while ((rc = jsonobj_next(&o, &m)) == 1)
			if (m.klen > size || m.len > size)
				abort();
		if (rc != 0 && rc != -EBADMSG)
			abort();
	}
	jsonobj_release(&o);
	json_decref(root);
	return 0;
}
