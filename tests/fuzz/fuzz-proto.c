// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * libFuzzer target for the protocol decoder: arbitrary bytes arrive on a
 * socket, cut into reads at places the input chooses, and the reader must
 * neither crash nor leak, whatever it makes of them.
 */
#include <fcntl.h>
#include <sys/socket.h>

#include "proto.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct proto_reader r = { 0 };
	size_t off = 0, chunk;
	int sv[2];

	if (size < 1 || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return 0;
	fcntl(sv[0], F_SETFL, O_NONBLOCK);
	fcntl(sv[1], F_SETFL, O_NONBLOCK);
	/* The first byte picks the write size, so short reads and lines split
	 * across reads are both explored. */
	chunk = (size_t)data[0] * 37 + 1;
	data++;
	size--;
	while (off < size) {
		size_t n = size - off < chunk ? size - off : chunk;
		ssize_t w = write(sv[1], data + off, n);

		if (w > 0)
			off += (size_t)w;
		for (;;) {
			struct proto_msg m;
			int q = proto_reader_fill(&r, sv[0]);

			if (q == -EAGAIN)
				break;
			if (q <= 0)
				goto out; /* a full buffer without a line ends it */
			while ((q = proto_reader_next(&r, &m)) != 0) {
				if (q == -EMSGSIZE)
					goto out;
				if (q == 1) {
					/* Touch what a handler would. */
					(void)proto_get_string(m.obj, "cmd");
					(void)proto_valid_name(proto_get_string(m.obj, "id"));
					proto_msg_clear(&m);
				}
			}
		}
	}
out:
	proto_reader_free(&r);
	close(sv[0]);
	close(sv[1]);
	return 0;
}
