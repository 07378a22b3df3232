/* SPDX-License-Identifier: MIT
 * tcia_pick.c — the members TCIA's records take, picked from a streamed element's text in
 * place (jsonpick) and given as tcia.c gives a jansson object's. Part of the tcia module;
 * whatever jsonpick cannot read exactly as jansson would is left to jansson.
 */
#include "tcia.h"
#include "tcia_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "jsonpick.h"

/* Every member a patient, study or series record reads (tcia.c's one_fns). */
static const char *const tcia_pick_keys[] = {
	"Collection",    "PatientId",
	"PatientID",     "StudyInstanceUID",
	"StudyDate",     "StudyDescription",
	"SeriesCount",   "SeriesInstanceUID",
	"Modality",      "BodyPartExamined",
	"Manufacturer",  "SeriesDescription",
	"SeriesNumber",  "SeriesDate",
	"TimeStamp",     "DateReleased",
	"LicenseName",   "LicenseURI",
	"CollectionURI", "ImageCount",
	"FileSize",      NULL,
};

int tcia_picked_new(struct jsonpick **out)
{
	/* TCIA's elements are read with JSON_ALLOW_NUL (tcia.c). */
	return jsonpick_new(tcia_pick_keys, JSONPICK_NUL, out);
}

int tcia_pick_text(const struct jsonpick *p, const char *key, char **out)
{
	const struct jsonpick_value *v = jsonpick_find(p, key);

	*out = NULL;
	if (!v)
		return 0;
	switch (v->type) {
	case JP_STRING:
		*out = tcia_strdup_nul(v->text, v->len);
		break;
	case JP_INTEGER:
	case JP_REAL:
		*out = strdup(v->text);
		break;
	default:
		return 0;
	}
	return *out ? 0 : -ENOMEM;
}

int64_t tcia_pick_int(const struct jsonpick *p, const char *key)
{
	const struct jsonpick_value *v = jsonpick_find(p, key);

	if (!v)
		return -1;
	switch (v->type) {
	case JP_INTEGER:
		return v->i >= 0 ? v->i : -1;
	case JP_REAL:
		return tcia_int_of_real(v->d);
	case JP_STRING:
		return tcia_int_of_string(v->text, v->len);
	default:
		return -1;
	}
}
