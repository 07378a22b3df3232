/* SPDX-License-Identifier: MIT
 * libFuzzer target: every tcia.c parser on the same bytes. They must return 0, -EBADMSG
 * or -ENOMEM and leave nothing allocated (ASan/LSan watch). */
#include <stddef.h>
#include <stdint.h>

#include "tcia.h"
#include "../../src/tcia_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *body = (const char *)data;
	struct record_series_list se;
	struct record_patients pa;
	struct record_studies st;
	struct record_values va;
	struct record_sizes sz;

	if (tcia_parse_series(body, size, &se) == 0)
		record_series_list_clear(&se);
	if (tcia_parse_patients(body, size, &pa) == 0)
		record_patients_clear(&pa);
	if (tcia_parse_studies(body, size, &st) == 0)
		record_studies_clear(&st);
	if (tcia_parse_values(body, size, "Collection", &va) == 0)
		record_values_clear(&va);
	if (tcia_parse_sizes(body, size, &sz) == 0)
		record_sizes_clear(&sz);
	return 0;
}
