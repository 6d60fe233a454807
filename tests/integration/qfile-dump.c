/* qfile-dump.c: test tool: print a queue file's envelope, attributes and content in a line format. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "qfile.h"
#include "queue.h"

/*
 * Usage: qfile-dump FILE. Output: "sender=ADDR", one "rcpt=ADDR orig=ADDR notify=N state=S" per
 * recipient (followed by "orcpt=TYPE;ADDR" when it has one), "attr NAME=VALUE" for the attributes,
 * "arrival=USEC", then "content:" and the content bytes as they are. Exit 1 with a message on stderr
 * when the file does not decode.
 */
int main(int argc, char **argv)
{
        if (argc != 2) {
                fprintf(stderr, "usage: qfile-dump FILE\n");
                return 2;
        }
        int fd = open(argv[1], O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
                fprintf(stderr, "qfile-dump: open %s: %s\n", argv[1], strerror(errno));
                return 1;
        }
        char *data = NULL;
        size_t len = 0;
        int r = queue_read_fd(fd, &data, &len);
        close(fd);
        if (r < 0) {
                fprintf(stderr, "qfile-dump: read %s: %s\n", argv[1], strerror(-r));
                return 1;
        }
        struct qfile_msg m = {0};
        struct qfile_error err = {0};
        r = qfile_decode(data, len, &m, &err);
        if (r < 0) {
                fprintf(stderr, "qfile-dump: %s: %s at offset %" PRIu64 "\n", argv[1],
                        err.reason ? err.reason : strerror(-r), err.offset);
                free(data);
                return 1;
        }
        printf("arrival=%" PRIu64 "\n", m.arrival_usec);
        printf("sender=%s\n", m.sender);
        for (size_t i = 0; i < m.n_rcpts; i++) {
                printf("rcpt=%s orig=%s notify=%u state=%s\n", m.rcpts[i].address,
                       m.rcpts[i].orig_rcpt ? m.rcpts[i].orig_rcpt : "", m.rcpts[i].notify,
                       qfile_rcpt_state_to_string(m.rcpts[i].state));
                if (m.rcpts[i].orcpt && *m.rcpts[i].orcpt)
                        printf("orcpt=%s\n", m.rcpts[i].orcpt);
        }
        const struct {
                const char *name, *value;
        } known[] = {
                {"client_name", m.client_name},     {"client_address", m.client_address},
                {"helo_name", m.helo_name},         {"protocol", m.protocol},
                {"sasl_username", m.sasl_username}, {"envelope_id", m.envelope_id},
                {"origin_queue", m.origin_queue},
        };
        for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
                if (known[i].value)
                        printf("attr %s=%s\n", known[i].name, known[i].value);
        if (m.has_message_size)
                printf("attr size=%" PRIu64 "\n", m.message_size);
        printf("attr ready=%d\n", m.ready ? 1 : 0);
        for (size_t i = 0; i < m.n_extra; i++)
                printf("attr %s=%s\n", m.extra[i].name, m.extra[i].value);
        printf("content:\n");
        fwrite(m.content, 1, m.content_len, stdout);
        qfile_msg_done(&m);
        free(data);
        return 0;
}
