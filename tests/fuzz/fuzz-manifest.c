// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * libFuzzer target for the manifest decoder. Whatever it accepts must
 * encode and decode again to the same sessions: a manifest that changes on
 * a round trip would remap sessions to the wrong clients after a kexec.
 */
#include <stdlib.h>

#include "manifest.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct manifest m, again;
	char err[256];
	char *text;

	/* Any bytes as a journal: whatever it applies must still encode to a
	 * manifest that decodes. */
	m = (struct manifest){ 0 };
	if (manifest_journal_apply(&m, (const char *)data, size, err,
				   sizeof(err)) == -ENOMEM)
		abort();
	text = manifest_encode(&m);
	if (!text ||
	    manifest_decode(text, strlen(text), &again, err, sizeof(err)) < 0)
		abort();
	free(text);
	manifest_clear(&again);
	manifest_clear(&m);

	if (manifest_decode((const char *)data, size, &m, err, sizeof(err)) < 0)
		return 0;
	text = manifest_encode(&m);
	if (!text)
		abort();
	if (manifest_decode(text, strlen(text), &again, err, sizeof(err)) < 0)
		abort();
	if (again.n_sessions != m.n_sessions || again.generation != m.generation ||
	    again.next_serial != m.next_serial)
		abort();
	for (size_t i = 0; i < m.n_sessions; i++)
		if (memcmp(&m.sessions[i], &again.sessions[i], sizeof(m.sessions[i])) != 0)
			abort();
	free(text);
	manifest_clear(&m);
	manifest_clear(&again);
	return 0;
}
